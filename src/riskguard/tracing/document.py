"""The trace result as clients read it (HTTP, CLI, files): plain JSON types, amounts as decimal strings.

Identifiers appear only in fields named in ``IDENTIFIER_KEYS``, so ``masked`` can hide them for output
that leaves the investigation (CLI tables, files written without ``--reveal``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

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
    rows_needed = sorted(
        {r for r, *_ in trace.flows}
        | {r for r, *_ in trace.escapes}
        | {r for r, *_ in trace.stops}
        | {r for r, *_ in trace.seeds}
        | {o.last_outflow_row for o in orders if o.last_outflow_row >= 0}
    )
    event_ids = (
        dict(zip(rows_needed, ledger.event_id.gather(rows_needed).to_list(), strict=True)) if rows_needed else {}
    )
    names: dict[int, str] = {}

    def name(code: int) -> str:
        found = names.get(code)
        if found is None:
            found = names[code] = ledger.name(code)
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

    balances = {o.account: o.balance for o in orders}
    accounts = []
    for code, holding in sorted(trace.holdings.items(), key=lambda kv: (min(kv[1].hop.values()), -kv[1].traced_in)):
        accounts.append(
            {
                "account": name(code),
                "hops": min(holding.hop.values()),
                "traced_in": money(holding.traced_in),
                "traced_out": money(holding.traced_out),
                "held": money(holding.total),
                "escaped": money(holding.escaped),
                "balance": money(balances[code] if code in balances else ledger.balance_at(code, trace.as_of_row)),
                "first_traced_at": iso(int(ts[min(holding.first.values())])),
                "victims": [
                    {
                        "report_id": rid(v),
                        "traced_in": money(amount),
                        "held": money(holding.taint.get(v, 0)),
                        "hops": holding.hop[v],
                    }
                    for v, amount in sorted(holding.in_by.items())
                ],
            }
        )

    paths = PathIndex(trace)

    def link(row: int, source: int, target: int, amount: int, victim: int) -> dict[str, Any]:
        return {
            "event_id": event_ids.get(row),
            "at": iso(int(ts[row])),
            "from": victims[victim].account if source < 0 else name(source),
            "to": name(target),
            "amount": money(amount),
        }

    freeze = []
    for order in orders:
        evidence = []
        for victim, _amount in sorted(order.by_victim.items(), key=lambda kv: -kv[1])[:max_paths]:
            chain = paths.path(order.account, victim)
            evidence.append({"report_id": rid(victim), "links": [link(*c, victim) for c in chain]})
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
                "paths": evidence,
            }
        )

    escaped = [
        {
            "report_id": rid(victim),
            "account": victims[victim].account if account < 0 else name(account),
            "amount": money(amount),
            "kind": EXIT_NAMES.get(int(ledger.kind[row]), "exit"),
            "where": ledger.where[row],
            "at": iso(int(ts[row])),
            "event_id": event_ids.get(row),
        }
        for row, account, victim, amount in trace.escapes
    ]
    stopped = [
        {
            "report_id": rid(victim),
            "from": name(source),
            "to": name(target),
            "amount": money(amount),
            "reason": why,
            "at": iso(int(ts[row])),
            "event_id": event_ids.get(row),
        }
        for row, source, target, victim, amount, why in trace.stops
    ]
    transfers = [
        link(row, -1, target, amount, victim) | {"report_id": rid(victim), "hop": 1}
        for row, target, victim, amount in trace.seeds
    ]
    transfers += [
        link(row, source, target, amount, victim)
        | {"report_id": rid(victim), "hop": trace.holdings[target].hop[victim]}
        for row, source, target, victim, amount in trace.flows
    ]

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
        "accounts": accounts,
        "freeze_orders": freeze,
        "return_plan": plan_doc,
        "escaped": escaped,
        "stopped": stopped,
        "transfers": transfers,
        "alerts": alerts,
    }


def masked(value: Any) -> Any:
    """A copy of a document with every identifier field masked."""
    if isinstance(value, dict):
        return {k: (mask(v) if k in IDENTIFIER_KEYS and isinstance(v, str) else masked(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value
