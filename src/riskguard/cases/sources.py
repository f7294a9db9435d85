"""Alert sources and the sync that pulls them into the inbox, idempotently.

Each source keeps a cursor in ``case_sync`` (the time of the last row read); a sync reads the rows since
the cursor minus a short overlap (``OVERLAP``: decisions are stamped before their group commit lands, so a
row can appear slightly behind the cursor) and records them by their source key, so reading a row twice
changes nothing. A sync with nothing new costs one indexed query per source: cheap enough to run on every
inbox page load (``CaseService.sync(max_age=...)`` skips it when the last one is recent).

Sources and what each alert carries:

- ``review``: every decision ``review`` (key: the event id); amount at risk: the event's amount; score:
  the decision's; entities: the event's account, counterparty, device, phone, card, address, merchant;
  evidence: the decision's reasons, strategy and the event's summary.
- ``graph``: rings and dense blocks of ``graph_alerts`` (key: the graph alert's key); amount at risk: what
  the member accounts sent out during the group's activity (at most the last 30 days of it); entities:
  members and binding identifiers.
- ``complaint``: suspected agent and intermediary rings of ``complaint_alerts``; the same amount rule;
  entities: the accounts and the contact phones, devices and agent phones of the member records.
- ``trace``: every stored trace with freeze orders or held money (key: the trace id); amount at risk: the
  victims' reported loss; entities: the victims' accounts and the accounts holding traced money.
- ``leak``: account security's leak-outreach alerts (``leak_alerts``, one per registered leak; key: its
  key ``leak:<id>``); score: the leak alert's (40..100); amount at risk: what the affected accounts sent out
  in the 30 days before the leak was discovered (the money targeted scams can reach), as for rings;
  entities: the affected accounts (pseudonymous ids — the leak itself holds only tokens). They never merge
  with other alerts (inbox.NO_MERGE_SOURCES) and their accounts are not labelled when a case closes.
- ``access``: the privacy Revealer's insider-access alerts (``privacy_alerts``: bulk, volume, off_hours,
  canary; key: the privacy alert's); score: theirs (0..1); no money moves, so the amount at risk is a fixed
  notional equivalent (``ACCESS_AT_RISK``: 1,000,000 for canary and bulk, 100,000 for volume and
  off-hours), which puts a canary or bulk alert above any alert with an expected loss under 900,000;
  entity: the ``actor`` who revealed (who may then not work it, see CaseService). A canary alert's
  evidence leaves out which accounts are canaries (the inbox is read by the staff a canary watches).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from riskguard.accountsec.tables import leak_alerts
from riskguard.cases import records, sealing
from riskguard.cases.entities import ACTOR, of_event, of_members
from riskguard.cases.inbox import AlertIn, AlertInbox, Recorded
from riskguard.cases.tables import case_alerts, case_sync
from riskguard.complaints.tables import complaint_alerts
from riskguard.graph.tables import graph_alerts
from riskguard.privacy.tables import privacy_alerts
from riskguard.store.tables import utcnow
from riskguard.tracing.store import traces

OVERLAP = timedelta(seconds=10)
RING_WINDOW = timedelta(days=30)
BATCH = 2000


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Cursors:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def get(self, source: str) -> tuple[datetime | None, datetime | None]:
        """(cursor, when the source was last synced)."""
        with self._engine.connect() as connection:
            row = connection.execute(select(case_sync).where(case_sync.c.source == source)).first()
        if row is None:
            return None, None
        return (datetime.fromisoformat(row.cursor) if row.cursor else None), row.synced_at

    def set(self, source: str, cursor: datetime | None, now: datetime) -> None:
        text = _iso(cursor) if cursor is not None else ""
        statement = self._insert(case_sync).values(source=source, cursor=text, synced_at=now)
        if cursor is None:  # nothing read yet: only the time of the sync
            statement = statement.on_conflict_do_update(index_elements=[case_sync.c.source], set_={"synced_at": now})
        else:
            statement = statement.on_conflict_do_update(
                index_elements=[case_sync.c.source], set_={"cursor": text, "synced_at": now}
            )
        with self._engine.begin() as connection:
            connection.execute(statement)


# ---------------------------------------------------------------------- review decisions
def review_alert(item: records.Decided) -> AlertIn:
    payload = item.payload
    reasons = item.reasons()
    codes = ", ".join(r["code"] or r["rule"] or "" for r in reasons[:3])
    amount = payload.get("amount")
    money = f" {amount} {payload.get('currency') or ''}".rstrip() if amount is not None else ""
    body = item.body or {}
    return AlertIn(
        source="review",
        source_key=item.event_id,
        kind=item.type,
        title=f"Review: {item.type}{money}" + (f" ({codes})" if codes else ""),
        score=item.score or 0,
        amount=amount,
        entities=of_event(payload),
        occurred_at=_aware(item.occurred_at),
        evidence={
            "event_id": item.event_id,
            "type": item.type,
            "occurred_at": _aware(item.occurred_at).isoformat(),
            "account_id": payload.get("account_id"),
            "counterparty_id": payload.get("counterparty_id"),
            "amount": amount,
            "currency": payload.get("currency"),
            "decision": item.decision,
            "score": item.score,
            "reasons": reasons,
            "strategy": body.get("strategy"),
        },
    )


def _known_keys(engine: Engine, source: str, keys: list[str]) -> set[str]:
    with engine.connect() as connection:
        return {
            key
            for (key,) in connection.execute(
                select(case_alerts.c.source_key)
                .where(case_alerts.c.source == source)
                .where(case_alerts.c.source_key.in_(keys))
            )
        }


def sync_reviews(engine: Engine, inbox: AlertInbox, cursors: Cursors, now: datetime) -> Recorded:
    """Review decisions since the cursor; only those not yet in the inbox are read in full."""
    cursor, _ = cursors.get("review")
    out = Recorded()
    since = None if cursor is None else cursor - OVERLAP
    after: tuple[datetime, str] | None = None
    while True:
        keys = records.reviews_since(engine, since, BATCH, after)
        if not keys:
            break
        known = _known_keys(engine, "review", [k for k, _ in keys])
        new = [k for k, _ in keys if k not in known]
        if new:
            out.add(inbox.record([review_alert(r) for r in records.by_ids(engine, new)], now=now, skip_known=True))
        out.unchanged += len(keys) - len(new)
        after = (keys[-1][1], keys[-1][0])
        last = _aware(after[0])
        cursor = max(cursor, last) if cursor is not None else last
        if len(keys) < BATCH:
            break
    cursors.set("review", cursor, now)
    return out


# ---------------------------------------------------------------------- graph and complaint rings
def _ring_amount(engine: Engine, accounts: list[str], first: datetime | None, last: datetime | None) -> Any:
    if not accounts:
        return 0
    until = last
    since = first
    if until is not None and (since is None or until - since > RING_WINDOW):
        since = until - RING_WINDOW
    return records.money_moved(engine, accounts, since, until)


def _ms(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def _row_alert(
    source: str, row: Any, evidence: dict[str, Any], *, title: str, amount: Any, entities: list[Any], at: datetime
) -> AlertIn:
    """An inbox alert from a row of an alert table (store/alerts.py shape): its key, kind and score as
    stored."""
    return AlertIn(
        source=source,
        source_key=row.key,
        kind=row.kind,
        title=title,
        score=row.score,
        amount=amount,
        entities=entities,
        occurred_at=at,
        evidence=evidence,
    )


def graph_alert(engine: Engine, row: Any) -> AlertIn:
    evidence = sealing.loads(row.evidence)
    members = [str(m) for m in evidence.get("members", [])]
    identifiers = evidence.get("binding") or evidence.get("identifiers") or []
    first, last = _ms(evidence.get("first_activity_ms")), _ms(evidence.get("last_activity_ms"))
    when = last or _aware(row.last_seen_at)
    label = "Ring" if row.kind == "ring" else "Dense block"
    amount = _ring_amount(engine, members, first, last)
    title = f"{label} of {len(members)} accounts"
    entities = of_members(members, identifiers)
    evidence = {"graph_alert_id": row.id, **evidence}
    return _row_alert("graph", row, evidence, title=title, amount=amount, entities=entities, at=when)


def complaint_alert(engine: Engine, row: Any) -> AlertIn:
    evidence = sealing.loads(row.evidence)
    members = evidence.get("members", [])
    accounts = sorted({m["account_id"] for m in members if m.get("account_id")})
    identifiers = [
        {"kind": kind, "value": m[field]}
        for m in members
        for field, kind in (("contact_phone", "phone"), ("agent_phone", "phone"), ("device_id", "device"))
        if m.get(field)
    ]
    times = sorted(datetime.fromisoformat(m["occurred_at"]) for m in members if m.get("occurred_at"))
    first, last = (times[0], times[-1]) if times else (None, None)
    name = "Agent ring" if row.kind == "agent_ring" else "Loan intermediary ring"
    return _row_alert(
        "complaint",
        row,
        {"complaint_alert_id": row.id, **evidence},
        title=f"{name}: {evidence.get('customers', len(accounts))} customers",
        amount=_ring_amount(engine, accounts, first, last),
        entities=of_members(accounts, identifiers),
        at=last or _aware(row.last_seen_at),
    )


def leak_alert(engine: Engine, row: Any) -> AlertIn:
    evidence = sealing.loads(row.evidence)
    accounts = [str(a) for a in evidence.get("accounts", [])]
    discovered = evidence.get("discovered_at")
    when = _aware(datetime.fromisoformat(discovered)) if discovered else _aware(row.first_seen_at)
    total = evidence.get("accounts_total", len(accounts))
    return _row_alert(
        "leak",
        row,
        {"leak_alert_id": row.id, **evidence},
        title=f"Leak {evidence.get('leak', row.key)}: {total} affected accounts to contact",
        amount=_ring_amount(engine, accounts, when - RING_WINDOW, when),
        entities=of_members(accounts),
        at=when,
    )


#: notional amount at risk of an access alert, by kind (see the module docstring)
ACCESS_AT_RISK = {
    "canary": Decimal(1_000_000),
    "bulk": Decimal(1_000_000),
    "volume": Decimal(100_000),
    "off_hours": Decimal(100_000),
}
ACCESS_TITLES = {
    "canary": "Canary record opened",
    "bulk": "Bulk reveal refused",
    "volume": "Reveal volume far above habit",
    "off_hours": "Off-hours reveal burst",
}


def access_alert(engine: Engine, row: Any) -> AlertIn:
    evidence = sealing.loads(row.evidence)
    actor = str(evidence.get("actor") or "unknown")
    if row.kind == "canary":  # which accounts are canaries stays with whoever made them
        canaries = evidence.pop("canaries", [])
        evidence.pop("target", None)
        evidence["canaries_opened"] = len(canaries)
    at = evidence.get("at")
    return _row_alert(
        "access",
        row,
        {"privacy_alert_id": row.id, **evidence},
        title=f"{ACCESS_TITLES.get(row.kind, row.kind)} by {actor}",
        amount=ACCESS_AT_RISK.get(row.kind, Decimal(100_000)),
        entities=[(ACTOR, actor[:256])],
        at=_aware(datetime.fromisoformat(at)) if at else _aware(row.last_seen_at),
    )


def _sync_table(
    engine: Engine,
    inbox: AlertInbox,
    cursors: Cursors,
    now: datetime,
    source: str,
    table: Any,
    convert: Callable[[Engine, Any], AlertIn],
) -> Recorded:
    cursor, _ = cursors.get(source)
    query = select(table).order_by(table.c.last_seen_at, table.c.id)
    if cursor is not None:
        query = query.where(table.c.last_seen_at >= cursor - OVERLAP)
    with engine.connect() as connection:
        rows = [row for row in connection.execute(query).all() if row.status == "open"]
        seen: dict[str, datetime] = {}
        keys = [row.key for row in rows]
        for start in range(0, len(keys), 500):
            seen.update(
                connection.execute(
                    select(case_alerts.c.source_key, case_alerts.c.last_seen_at)
                    .where(case_alerts.c.source == source)
                    .where(case_alerts.c.source_key.in_(keys[start : start + 500]))
                ).all()
            )
    # rows read again in the overlap and not changed since they were recorded cost nothing
    fresh = [row for row in rows if row.key not in seen or _aware(seen[row.key]) < _aware(row.last_seen_at)]
    out = inbox.record([convert(engine, row) for row in fresh], now=now)
    out.unchanged += len(rows) - len(fresh)
    if rows:
        last = max(_aware(r.last_seen_at) for r in rows)
        cursor = max(cursor, last) if cursor is not None else last
    cursors.set(source, cursor, now)
    return out


# ---------------------------------------------------------------------- traces
def trace_alert(trace_id: str, created_at: datetime, document: dict[str, Any]) -> AlertIn | None:
    summary = document.get("summary", {})
    orders = document.get("freeze_orders", [])
    victims = document.get("victims", [])
    if not orders and summary.get("held") in (None, "0.00"):
        return None
    accounts = [v["victim_account"] for v in victims] + [o["account"] for o in orders]
    paid = [link["at"] for o in orders for chain in o.get("paths", []) for link in chain.get("links", [])[:1]]
    when = min((datetime.fromisoformat(at) for at in paid), default=_aware(created_at))  # the victims' payments
    return AlertIn(
        source="trace",
        source_key=trace_id,
        kind="trace",
        title=f"Trace {trace_id}: {summary.get('reports', len(victims))} victim reports, "
        f"{summary.get('freezable', '0.00')} freezable",
        score=1,
        amount=summary.get("reported_loss"),
        entities=of_members(accounts),
        occurred_at=when,
        evidence={
            "trace_id": trace_id,
            "summary": summary,
            "victims": [{k: v.get(k) for k in ("report_id", "victim_account", "loss", "held")} for v in victims][:50],
            "freeze_orders": [
                {k: o.get(k) for k in ("priority", "account", "freezable", "urgency")} for o in orders[:50]
            ],
        },
    )


def sync_traces(engine: Engine, inbox: AlertInbox, cursors: Cursors, now: datetime) -> Recorded:
    cursor, _ = cursors.get("trace")
    query = select(traces.c.trace_id, traces.c.created_at, traces.c.document).order_by(traces.c.created_at)
    if cursor is not None:
        query = query.where(traces.c.created_at >= cursor - OVERLAP)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    alerts = []
    for row in rows:
        alert = trace_alert(row.trace_id, row.created_at, sealing.loads(row.document))
        if alert is not None:
            alerts.append(alert)
    out = inbox.record(alerts, now=now, skip_known=True)
    if rows:
        last = max(_aware(r.created_at) for r in rows)
        cursor = max(cursor, last) if cursor is not None else last
    cursors.set("trace", cursor, now)
    return out


def sync_all(engine: Engine, inbox: AlertInbox, now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Pulls every source once; returns per source how many alerts were new, updated, merged, unchanged."""
    now = now or utcnow()
    cursors = Cursors(engine)
    return {
        "review": sync_reviews(engine, inbox, cursors, now).as_dict(),
        "graph": _sync_table(engine, inbox, cursors, now, "graph", graph_alerts, graph_alert).as_dict(),
        "complaint": _sync_table(engine, inbox, cursors, now, "complaint", complaint_alerts, complaint_alert).as_dict(),
        "trace": sync_traces(engine, inbox, cursors, now).as_dict(),
        "leak": _sync_table(engine, inbox, cursors, now, "leak", leak_alerts, leak_alert).as_dict(),
        "access": _sync_table(engine, inbox, cursors, now, "access", privacy_alerts, access_alert).as_dict(),
    }
