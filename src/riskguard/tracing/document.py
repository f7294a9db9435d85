"""The trace result as clients read it (HTTP, CLI, files): plain JSON types, amounts as decimal strings.

The long lists (every traced transfer, escape and stop, every account) are formatted column-wise with
polars, so a trace of a thousand reports renders in a fraction of a second. Identifiers appear only in
fields named in ``IDENTIFIER_KEYS``, so ``masked`` can hide them for output that leaves the investigation
(CLI tables, files written without ``--reveal``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from riskguard.masking import mask
from riskguard.tracing.alerts import PoisonReach
from riskguard.tracing.engine import Trace
from riskguard.tracing.freeze import FreezeOrder
from riskguard.tracing.ledger import EXIT_NAMES
from riskguard.tracing.money import money
from riskguard.tracing.paths import PathIndex
from riskguard.tracing.returns import ReturnPlan

IDENTIFIER_KEYS = frozenset({"account", "victim_account", "from", "to", "where"})


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _money(column: str) -> pl.Expr:
    value = pl.col(column)
    return (value // 100).cast(pl.String) + pl.lit(".") + (value % 100).cast(pl.String).str.zfill(2)


def _iso(column: str) -> pl.Expr:
    return (
        pl.from_epoch(pl.col(column), time_unit="ms")
        .dt.replace_time_zone("UTC")
        .dt.strftime("%Y-%m-%dT%H:%M:%S%.3f+00:00")
    )


class _Columns:
    """Identifier, time and event-id columns for rows of a trace, gathered in bulk."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.ledger = trace.ledger
        self.reports = pl.Series([v.report_id for v in trace.victims], dtype=pl.String)
        self.victim_accounts = pl.Series([v.account for v in trace.victims], dtype=pl.String)

    def frame(self, rows: list[tuple[Any, ...]], names: list[str]) -> pl.DataFrame:
        frame = pl.DataFrame(rows, schema=dict.fromkeys(names, pl.Int64), orient="row")
        row = frame["row"].to_numpy()
        return frame.with_columns(
            ts=pl.Series(self.ledger.ts[row]),
            event_id=self.ledger.event_id.gather(frame["row"]),
            report_id=self.reports.gather(frame["victim"]),
        )

    def account(self, frame: pl.DataFrame, column: str) -> pl.Series:
        """Account identifiers of a code column; -1 (the victim's own payment) names the victim."""
        codes = frame[column]
        accounts = self.ledger.accounts.gather(codes.clip(0, None))
        victims = self.victim_accounts.gather(frame["victim"])
        return pl.select(pl.when(codes < 0).then(victims).otherwise(accounts)).to_series()


def _transfers(columns: _Columns) -> list[dict[str, Any]]:
    trace = columns.trace
    rows = [(row, -1, to, victim, amount, 1) for row, to, victim, amount in trace.seeds] + trace.flows
    if not rows:
        return []
    frame = columns.frame(rows, ["row", "source", "target", "victim", "amount", "hop"])
    frame = frame.with_columns(sender=columns.account(frame, "source"), receiver=columns.account(frame, "target"))
    return frame.select(
        "event_id",
        at=_iso("ts"),
        **{"from": pl.col("sender"), "to": pl.col("receiver")},
        amount=_money("amount"),
        report_id="report_id",
        hop="hop",
    ).to_dicts()


def _escaped(columns: _Columns) -> list[dict[str, Any]]:
    trace = columns.trace
    if not trace.escapes:
        return []
    frame = columns.frame(trace.escapes, ["row", "account_code", "victim", "amount"])
    kinds = [EXIT_NAMES.get(k, "exit") for k in range(4)]
    kind = pl.Series(kinds).gather(pl.Series(trace.ledger.kind[frame["row"].to_numpy()].astype(np.int64)))
    return (
        frame.with_columns(
            account=columns.account(frame, "account_code"), kind=kind, where=trace.ledger.where.gather(frame["row"])
        )
        .select(
            "report_id",
            "account",
            amount=_money("amount"),
            kind="kind",
            where="where",
            at=_iso("ts"),
            event_id="event_id",
        )
        .to_dicts()
    )


def _stopped(columns: _Columns) -> list[dict[str, Any]]:
    trace = columns.trace
    if not trace.stops:
        return []
    reasons = [s[5] for s in trace.stops]
    frame = columns.frame([s[:5] for s in trace.stops], ["row", "source", "target", "victim", "amount"])
    frame = frame.with_columns(
        sender=columns.account(frame, "source"), receiver=columns.account(frame, "target"), reason=pl.Series(reasons)
    )
    return frame.select(
        "report_id",
        **{"from": pl.col("sender"), "to": pl.col("receiver")},
        amount=_money("amount"),
        reason="reason",
        at=_iso("ts"),
        event_id="event_id",
    ).to_dicts()


def _accounts(columns: _Columns, balances: dict[int, int]) -> list[dict[str, Any]]:
    trace = columns.trace
    ledger = trace.ledger
    if not trace.holdings:
        return []
    codes = list(trace.holdings)
    totals = pl.DataFrame(
        {
            "code": codes,
            "hops": [min(h.hop.values()) for h in trace.holdings.values()],
            "traced_in": [h.traced_in for h in trace.holdings.values()],
            "traced_out": [h.traced_out for h in trace.holdings.values()],
            "held": [h.total for h in trace.holdings.values()],
            "escaped": [h.escaped for h in trace.holdings.values()],
            "balance": [balances[c] if c in balances else ledger.balance_at(c, trace.as_of_row) for c in codes],
            "first": [int(ledger.ts[min(h.first.values())]) for h in trace.holdings.values()],
        },
        schema_overrides={"code": pl.Int64},
    )
    pairs = pl.DataFrame(
        [
            (c, v, amount, h.taint.get(v, 0), h.hop[v])
            for c, h in trace.holdings.items()
            for v, amount in h.in_by.items()
        ],
        schema={"code": pl.Int64, "victim": pl.Int64, "v_in": pl.Int64, "v_held": pl.Int64, "v_hops": pl.Int64},
        orient="row",
    ).sort("code", "victim")
    nested = (
        pairs.with_columns(report_id=columns.reports.gather(pairs["victim"]))
        .group_by("code")
        .agg(victims=pl.struct(report_id="report_id", traced_in=_money("v_in"), held=_money("v_held"), hops="v_hops"))
    )
    frame = totals.join(nested, on="code", how="left").sort(
        ["hops", "traced_in", "code"], descending=[False, True, False]
    )
    return frame.select(
        account=ledger.accounts.gather(frame["code"]),
        hops="hops",
        traced_in=_money("traced_in"),
        traced_out=_money("traced_out"),
        held=_money("held"),
        escaped=_money("escaped"),
        balance=_money("balance"),
        first_traced_at=_iso("first"),
        victims="victims",
    ).to_dicts()


def _evidence(columns: _Columns, orders: list[FreezeOrder], paths: PathIndex, most: int) -> list[list[dict[str, Any]]]:
    """Per freeze order, the evidence chains of its largest victims' shares, formatted in one pass."""
    links = [
        (number, victim, row, source, target, amount)
        for number, order in enumerate(orders)
        for victim, chain in order.evidence(paths, most)
        for row, source, target, amount in chain
    ]
    out: list[list[dict[str, Any]]] = [[] for _ in orders]
    if not links:
        return out
    frame = columns.frame(links, ["order", "victim", "row", "source", "target", "amount"])
    rows = frame.select(
        "order",
        "report_id",
        "event_id",
        at=_iso("ts"),
        sender=columns.account(frame, "source"),
        receiver=columns.account(frame, "target"),
        amount=_money("amount"),
    ).rows()
    current: dict[str, Any] | None = None
    for number, report_id, event_id, at, sender, receiver, amount in rows:
        chains = out[number]
        if current is None or current["report_id"] != report_id or not chains or chains[-1] is not current:
            current = {"report_id": report_id, "links": []}
            chains.append(current)
        current["links"].append({"event_id": event_id, "at": at, "from": sender, "to": receiver, "amount": amount})
    return out


def build(
    trace: Trace,
    orders: list[FreezeOrder],
    plan: ReturnPlan,
    reach: PoisonReach | None,
    *,
    max_paths: int = 5,
) -> dict[str, Any]:
    ledger = trace.ledger
    victims = trace.victims
    ts = ledger.ts
    columns = _Columns(trace)

    names: dict[int, str] = {}
    times: dict[int, str] = {}

    def name(code: int) -> str:
        found = names.get(code)
        if found is None:
            found = names[code] = ledger.name(code)
        return found

    def at(row: int) -> str:
        found = times.get(row)
        if found is None:
            found = times[row] = iso(int(ts[row]))
        return found

    def rid(victim: int) -> str:
        return victims[victim].report_id

    held_v: dict[int, int] = defaultdict(int)
    escaped_v: dict[int, int] = defaultdict(int)
    stopped_v: dict[int, int] = defaultdict(int)
    for holding in trace.holdings.values():
        for victim, amount in holding.taint.items():
            held_v[victim] += amount
    for _r, _a, victim, amount in trace.escapes:
        escaped_v[victim] += amount
    for _r, _f, _t, victim, amount, _w in trace.stops:
        stopped_v[victim] += amount
    seeded = {v.index: sum(a for r, a in v.seeds if r <= trace.as_of_row) for v in victims}
    freezable_v: dict[int, int] = defaultdict(int)
    for order in orders:
        for victim, amount in order.by_victim.items():
            freezable_v[victim] += amount
    returned_v = {v.index: plan.direct.get(v.index, 0) + plan.pooled.get(v.index, 0) for v in victims}

    evidence = _evidence(columns, orders, PathIndex(trace), max_paths)
    freeze = []
    for index, order in enumerate(orders):
        freeze.append(
            {
                "priority": order.priority,
                "account": name(order.account),
                "freezable": money(order.freezable),
                "balance": money(order.balance),
                "held": money(order.held),
                "urgency": order.urgency,
                "outflow_last_window": money(order.outflow_recent),
                "last_outflow_at": iso(int(ts[order.last_outflow_row])) if order.last_outflow_row >= 0 else None,
                "median_dwell_minutes": None if order.dwell_minutes is None else round(order.dwell_minutes, 1),
                "victims": [{"report_id": rid(v), "amount": money(a)} for v, a in sorted(order.by_victim.items())],
                "paths": evidence[index],
            }
        )

    plan_doc = {
        "method": plan.method,
        "victims": [
            {
                "report_id": v.report_id,
                "victim_account": v.account,
                "loss": money(v.loss),
                "recovered_before": money(v.recovered),
                "direct": money(plan.direct.get(v.index, 0)),
                "pooled": money(plan.pooled.get(v.index, 0)),
                "returned": money(returned_v[v.index]),
                "recovery_rate": round(returned_v[v.index] / v.loss, 6),
            }
            for v in victims
        ],
        "accounts": [
            {
                "account": name(a.account),
                "frozen": money(a.frozen),
                "method": a.method,
                "allocations": [{"report_id": rid(v), "amount": money(x)} for v, x in sorted(a.allocations.items())],
                "unallocated": money(a.unallocated),
            }
            for a in plan.accounts
        ],
        "totals": {
            "frozen": money(plan.frozen),
            "allocated": money(plan.allocated),
            "unallocated": money(plan.unallocated),
        },
    }
    alerts = None
    if reach is not None:
        traced = set(trace.holdings)
        alerts = {
            "rule": "poison",
            "note": "accounts victims' money may have reached if any taint tainted everything; for review, never "
            "for amounts; accounts already in the amount trace are not repeated",
            "truncated": reach.truncated,
            "accounts": [
                {
                    "account": name(code),
                    "hops": reach.hops[code],
                    "first_reached_at": iso(int(ts[row])),
                    "report_id": rid(reach.victim[code]),
                }
                for code, row in sorted(reach.first_row.items(), key=lambda kv: (kv[1], kv[0]))
                if code not in traced
            ],
        }
    total_loss = sum(v.loss for v in victims)
    return {
        "as_of": iso(trace.as_of_ms),
        "rule": trace.params.rule,
        "max_hops": trace.params.max_hops,
        "min_amount": money(trace.params.min_amount),
        "currency": ledger.currency,
        "balance_basis": ledger.basis.describe(),
        "summary": {
            "reports": len(victims),
            "reported_loss": money(total_loss),
            "traced": money(sum(seeded.values())),
            "held": money(sum(held_v.values())),
            "escaped": money(sum(escaped_v.values())),
            "stopped": money(sum(stopped_v.values())),
            "freezable": money(sum(o.freezable for o in orders)),
            "returned": money(plan.allocated),
            "accounts": len(trace.holdings),
            "freeze_orders": len(orders),
            "ledger_rows": len(ledger),
            "entries_visited": trace.visited,
        },
        "victims": [
            {
                "report_id": v.report_id,
                "victim_account": v.account,
                "loss": money(v.loss),
                "reported_at": iso(v.reported_ms),
                "traced": money(seeded[v.index]),
                "held": money(held_v[v.index]),
                "freezable": money(freezable_v[v.index]),
                "escaped": money(escaped_v[v.index]),
                "stopped": money(stopped_v[v.index]),
                "notes": v.notes,
            }
            for v in victims
        ],
        "accounts": _accounts(columns, {o.account: o.balance for o in orders}),
        "freeze_orders": freeze,
        "return_plan": plan_doc,
        "escaped": _escaped(columns),
        "stopped": _stopped(columns),
        "transfers": _transfers(columns),
        "alerts": alerts,
    }


def masked(value: Any) -> Any:
    """A copy of a document with every identifier field masked."""
    if isinstance(value, dict):
        return {k: (mask(v) if k in IDENTIFIER_KEYS and isinstance(v, str) else masked(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value
