"""Retrospective review (倒查复盘) of one event: what happened around it, what was decided, what came out
later, and which rules of the current (or a candidate) strategy would have stopped it — and when.

The document:

- ``event``: the event; ``entities``: its identifiers (account, device, IP, phone, card, counterparty,
  merchant) — the people and things involved;
- ``timeline``: every event within ``days`` before and after that shares one of those identifiers, in
  time order, each with the decision recorded at the time (database mode) and the decision the reviewed
  strategy gives it in an isolated replay (its rules, score and feature values);
- ``labels`` and ``victim_reports`` that name those events or identifiers, with when each became known;
- ``would_have_caught``: the rules of the reviewed strategy that match the event, and the first event of
  the timeline up to it that the strategy flags (challenge, review or block): the earliest point at which
  the chain could have been stopped.

Identifiers are masked (riskguard.masking) unless the caller may see them; unmasked views are audited.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import numpy as np
import polars as pl

from riskguard.errors import NotFound
from riskguard.events.schema import IDENTIFIER_FIELDS, from_stored
from riskguard.features.offline_input import load_events
from riskguard.masking import mask
from riskguard.privacy.fields import open_document
from riskguard.privacy.service import lookup_keys, open_rows
from riskguard.replay.engine import OUTCOMES, decide
from riskguard.replay.history import History, read_labels
from riskguard.rules.strategy import CompiledStrategy

MAX_TIMELINE = 500
DAY_US = 86_400_000_000


def _iso(t_us: int) -> str:
    return datetime.fromtimestamp(int(t_us) / 1e6, UTC).isoformat()


def _compile(source: str) -> CompiledStrategy:
    from riskguard.config import Settings
    from riskguard.decision.warnings import WarningCatalogue

    keys = WarningCatalogue.from_file(Settings.from_env().warnings_file).keys()
    return _compiled(source, frozenset(keys))


@functools.lru_cache(maxsize=8)
def _compiled(source: str, warning_keys: frozenset[str]) -> CompiledStrategy:
    """Compiled once per strategy text (an investigator reviews many events against one strategy)."""
    from riskguard.replay.service import compile_for_replay

    return compile_for_replay(source, warning_keys, with_model=False)


def _default_source() -> str:
    from riskguard.config import Settings

    return Path(Settings.from_env().starter_strategy).read_text(encoding="utf-8")


def review(
    history: History,
    event_id: str,
    strategy: CompiledStrategy,
    *,
    days: float = 7.0,
    recorded: dict[str, dict[str, Any]] | None = None,
    unmask: bool = False,
) -> dict[str, Any]:
    """The retrospective of ``event_id`` over ``history`` (which must hold the feature windows before it)."""
    frame = history.events.frame
    ids = frame.get_column("event_id")
    found = (ids == event_id).arg_true()
    if len(found) == 0:
        raise NotFound(f"no event {event_id!r} in the history")
    row = int(found[0])
    target = frame.row(row, named=True)
    t0 = int(history.events.t_us[row])
    involved = {f: target[f] for f in IDENTIFIER_FIELDS if target.get(f) is not None}
    values = set(involved.values())
    window = (history.events.t_us >= t0 - days * DAY_US) & (history.events.t_us <= t0 + days * DAY_US)
    shares = np.zeros(len(frame), dtype=bool)
    for field in IDENTIFIER_FIELDS:
        shares |= frame.get_column(field).is_in(list(values)).fill_null(False).to_numpy()
    rows = np.flatnonzero(window & shares)
    if len(rows) > MAX_TIMELINE:
        nearest = np.argsort(np.abs(history.events.t_us[rows] - t0), kind="stable")[:MAX_TIMELINE]
        rows = np.sort(rows[nearest])
    decisions = decide(history, strategy)
    show = (lambda v: v) if unmask else mask
    features = decisions.features
    feature_names = [s.name for s in strategy.features if features is not None and s.name in features.columns]
    timeline = []
    for r in rows.tolist():
        item = frame.row(r, named=True)
        entry: dict[str, Any] = {
            "event_id": item["event_id"],
            "type": item["type"],
            "occurred_at": _iso(history.events.t_us[r]),
            "amount": item["amount"],
            "identifiers": {f: show(item[f]) for f in IDENTIFIER_FIELDS if item.get(f) is not None},
            "shares": sorted(f for f in IDENTIFIER_FIELDS if item.get(f) is not None and item[f] in values),
            "replayed": {
                "decision": OUTCOMES[int(decisions.decision[r])],
                "score": int(decisions.score[r]),
                "rules": decisions.fired_rules(r),
                "features": _features(features, feature_names, r),
            },
        }
        if recorded is not None and item["event_id"] in recorded:
            entry["recorded"] = recorded[item["event_id"]]
        entry["target"] = r == row
        timeline.append(entry)
    timeline_ids = {e["event_id"] for e in timeline}
    labels = history.labels.filter(
        pl.col("event_id").is_in(list(timeline_ids)) | pl.col("entity_value").is_in(list(values))
    ).sort("labelled_at")
    flagged_before = [e for e in timeline if e["occurred_at"] <= _iso(t0) and e["replayed"]["decision"] != "allow"]
    first = flagged_before[0] if flagged_before else None
    document: dict[str, Any] = {
        "event_id": event_id,
        "event": {
            "type": target["type"],
            "occurred_at": _iso(t0),
            "amount": target["amount"],
            "identifiers": {f: show(v) for f, v in involved.items()},
        },
        "strategy": {"name": strategy.name, "version": strategy.version},
        "window": {"from": _iso(t0 - int(days * DAY_US)), "to": _iso(t0 + int(days * DAY_US))},
        "timeline": timeline,
        "labels": [
            {
                "event_id": lab["event_id"],
                "entity": None if lab["entity_kind"] is None else f"{lab['entity_kind']}:{show(lab['entity_value'])}",
                "label": lab["label"],
                "typology": lab["typology"],
                "labelled_at": lab["labelled_at"].isoformat(),
                "known_after_event_hours": round((lab["labelled_at"].timestamp() * 1e6 - t0) / 3.6e9, 2),
            }
            for lab in labels.iter_rows(named=True)
        ],
        "victim_reports": _reports(history, timeline_ids, values, show),
        "would_have_caught": {
            "decision": OUTCOMES[int(decisions.decision[row])],
            "score": int(decisions.score[row]),
            "rules": decisions.fired_rules(row),
            "first_flagged": None
            if first is None
            else {
                "event_id": first["event_id"],
                "occurred_at": first["occurred_at"],
                "rules": first["replayed"]["rules"],
                "hours_before_event": round(
                    (t0 - datetime.fromisoformat(first["occurred_at"]).timestamp() * 1e6) / 3.6e9, 2
                ),
            },
        },
        "masked": not unmask,
    }
    return document


def _features(features: pl.DataFrame | None, names: list[str], row: int) -> dict[str, Any]:
    if features is None:
        return {}
    out = {}
    for name in names:
        value = features.get_column(name)[row]
        if value is not None:
            out[name] = value if isinstance(value, (int, float)) else str(value)
    return out


def _reports(history: History, ids: set[str], values: set[str], show: Any) -> list[dict[str, Any]]:
    if history.reports is None or history.reports.is_empty():
        return []
    reports = history.reports.filter(
        pl.col("event_ids").list.eval(pl.element().is_in(list(ids))).list.any()
        | pl.col("account_id").is_in(list(values))
        | pl.col("payees").list.eval(pl.element().is_in(list(values))).list.any()
    )
    return [
        {
            "report_id": r["report_id"],
            "reported_at": r["reported_at"].isoformat(),
            "account_id": show(r["account_id"]),
            "typology": r["typology"],
            "script": r["script"],
            "amount": r["amount"],
            "payments": [e for e in r["event_ids"] if e in ids],
        }
        for r in reports.iter_rows(named=True)
    ]


def _window_history(history: History, t0: int, days: float, strategy: CompiledStrategy) -> History:
    """The part of the history the review needs: the timeline and the feature windows before it."""
    longest = max((s.window_seconds for s in strategy.features), default=0) + 3600
    low = t0 - int(days * DAY_US) - longest * 1_000_000
    high = t0 + int(days * DAY_US)
    keep = (history.events.t_us >= low) & (history.events.t_us <= high)
    if keep.all():
        return history
    return History(load_events(history.events.frame.filter(pl.Series(keep))), history.labels, history.reports)


def from_history(
    history: History, event_id: str, *, strategy_source: str | None = None, days: float = 7.0, unmask: bool = False
) -> dict[str, Any]:
    """The retrospective from a history file or simulated world."""
    strategy = _compile(strategy_source or _default_source())
    ids = history.events.column("event_id")
    found = (ids == event_id).arg_true()
    if len(found) == 0:
        raise NotFound(f"no event {event_id!r} in the history")
    t0 = int(history.events.t_us[int(found[0])])
    return review(_window_history(history, t0, days, strategy), event_id, strategy, days=days, unmask=unmask)


def from_database(
    guard: Any,
    event_id: str,
    *,
    strategy_source: str | None = None,
    days: float = 7.0,
    unmask: bool = False,
    actor: str = "system",
) -> dict[str, Any]:
    """The retrospective from the live database: events, recorded decisions and labels (read only)."""
    from sqlalchemy import select

    from riskguard.store.tables import decisions as decisions_table
    from riskguard.store.tables import events as events_table
    from riskguard.store.tables import labels as labels_table

    payload = guard.events.payloads([event_id]).get(event_id)
    if payload is None:
        raise NotFound(f"no event {event_id!r}")
    target = from_stored(payload)
    strategy = _compile(strategy_source or guard.live.source)
    longest = max((s.window_seconds for s in strategy.features), default=0) + 3600
    low = target.occurred_at - timedelta(days=days, seconds=longest)
    high = target.occurred_at + timedelta(days=days)
    with guard.engine.connect() as connection:
        rows = connection.execute(
            select(events_table.c.event_id, events_table.c.payload)
            .where(events_table.c.occurred_at >= low, events_table.c.occurred_at <= high)
            .order_by(events_table.c.received_at, events_table.c.event_id)
        ).all()
        events = [from_stored(r.payload) for r in rows]
        values = [v for v in (getattr(target, f) for f in IDENTIFIER_FIELDS) if v is not None]
        ids = [e.event_id for e in events]
        keys = lookup_keys(guard.engine, values)  # entity values are tokens at rest
        label_rows = [
            SimpleNamespace(**row)
            for row in open_rows(
                connection,
                [
                    r._asdict()
                    for r in connection.execute(
                        select(labels_table).where(
                            labels_table.c.event_id.in_(ids) | labels_table.c.entity_value.in_(keys)
                        )
                    )
                ],
                "entity_value",
                "note",
            )
        ]
        recorded_rows = connection.execute(
            select(decisions_table.c.event_id, decisions_table.c.body).where(decisions_table.c.event_id.in_(ids))
        ).all()
    recorded = {}
    for r in recorded_rows:
        body = msgspec.json.decode(open_document(r.body))  # decision bodies are sealed at rest
        explain = body.get("explain", {})
        recorded[r.event_id] = {
            "decision": body.get("decision"),
            "score": body.get("score"),
            "rules": [reason.get("rule") for reason in body.get("reasons", []) if reason.get("rule")],
            "reasons": [reason.get("code") for reason in body.get("reasons", [])],
            "strategy": body.get("strategy"),
            "features": explain.get("features", {}),
            "decided_at": body.get("decided_at"),
        }
    labels = read_labels(
        pl.DataFrame(
            {
                "event_id": [r.event_id for r in label_rows],
                "entity_kind": [r.entity_kind for r in label_rows],
                "entity_value": [r.entity_value for r in label_rows],
                "label": [r.label for r in label_rows],
                "typology": [r.typology for r in label_rows],
                "labelled_at": pl.Series(
                    [
                        r.labelled_at.astimezone(UTC) if r.labelled_at.tzinfo else r.labelled_at.replace(tzinfo=UTC)
                        for r in label_rows
                    ],
                    dtype=pl.Datetime("us", "UTC"),
                ),
            },
            schema_overrides={k: pl.String for k in ("event_id", "entity_kind", "entity_value", "label", "typology")},
        )
    )
    history = History(load_events(events), labels)
    document = review(history, event_id, strategy, days=days, recorded=recorded, unmask=unmask)
    if unmask:
        guard.audit.record(actor, "retro.unmasked_view", event_id, {"days": days})
    return document


def readable(document: dict[str, Any]) -> str:
    """The retrospective as text an investigator reads."""
    event = document["event"]
    caught = document["would_have_caught"]
    lines = [
        f"Retrospective of {document['event_id']}: {event['type']} at {event['occurred_at']}"
        + (f", amount {event['amount']}" if event["amount"] else ""),
        "involved: " + ", ".join(f"{k}={v}" for k, v in event["identifiers"].items()),
        f"strategy {document['strategy']['name']} v{document['strategy']['version']} would decide "
        f"{caught['decision']} (score {caught['score']}; rules: {', '.join(caught['rules']) or 'none'})",
    ]
    first = caught["first_flagged"]
    if first is None:
        lines.append("no event of the chain up to it would have been flagged")
    else:
        lines.append(
            f"first flag in the chain: {first['event_id']} at {first['occurred_at']} "
            f"({first['hours_before_event']} h before) by {', '.join(first['rules'])}"
        )
    lines.append("")
    lines.append(
        f"timeline ({len(document['timeline'])} events, {document['window']['from']} to {document['window']['to']}):"
    )
    for entry in document["timeline"]:
        replayed = entry["replayed"]
        recorded = entry.get("recorded")
        mark = ">>" if entry["target"] else "  "
        was = f" recorded {recorded['decision']}" if recorded else ""
        lines.append(
            f"{mark} {entry['occurred_at'][:19]} {entry['type']:<16} {entry['amount'] or '':>12} "
            f"shares {','.join(entry['shares']):<28} replay {replayed['decision']:<9}{was} "
            f"{', '.join(replayed['rules'])}"
        )
    if document["labels"]:
        lines.append("")
        lines.append("labels that followed:")
        for label in document["labels"]:
            lines.append(
                f"  {label['labelled_at'][:19]} {label['label']} {label['typology'] or ''} "
                f"{label['event_id'] or label['entity']} (+{label['known_after_event_hours']} h)"
            )
    if document["victim_reports"]:
        lines.append("")
        lines.append("victim reports:")
        for report in document["victim_reports"]:
            lines.append(
                f"  {report['reported_at'][:19]} {report['typology']} {report['amount']} by {report['account_id']}"
            )
    return "\n".join(lines)
