"""Tracing invariants under hypothesis: money is conserved per account, never exceeds the reported loss,
never exceeds a balance; and the indexed, heap-driven tracer agrees exactly with a naive row-by-row
reference that applies each rule's definition to every account."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskguard.tracing.engine import TraceParams, run
from riskguard.tracing.ledger import CREDIT, PAYMENT, TRANSFER, WITHDRAWAL, Ledger
from riskguard.tracing.reports import ReportIn, resolve
from riskguard.tracing.rules import RULES
from riskguard.tracing.tracer import Tracer

ACCOUNTS = [f"a{i}" for i in range(5)]
VICTIMS = ["v0", "v1", "v2"]
T0 = 1_767_225_600_000


@st.composite
def worlds(draw: Any) -> dict[str, Any]:
    """A small random ledger with victims paying mules, mules moving money on, exits and clean credits."""
    n = draw(st.integers(3, 28))
    rows = []
    ts = T0
    for i in range(n):
        ts += draw(st.sampled_from([0, 1, 1000]))
        kind = draw(st.sampled_from(["victim", "transfer", "transfer", "withdrawal", "payment", "credit", "off"]))
        amount = draw(st.integers(1, 5_000))
        row: dict[str, Any] = {"event_id": f"e{i}", "ts": ts, "amount": amount}
        if kind == "victim":
            row |= {
                "kind": "transfer",
                "account": draw(st.sampled_from(VICTIMS)),
                "counterparty": draw(st.sampled_from(ACCOUNTS)),
                "wallet": draw(st.booleans()),
            }
        elif kind == "transfer":
            payer, payee = draw(st.lists(st.sampled_from(ACCOUNTS + VICTIMS[:1]), min_size=2, max_size=2, unique=True))
            row |= {"kind": "transfer", "account": payer, "counterparty": payee, "wallet": True}
        elif kind == "off":
            row |= {
                "kind": "transfer",
                "account": draw(st.sampled_from(ACCOUNTS)),
                "counterparty": "outside-1",
                "off_platform": True,
            }
        elif kind == "withdrawal":
            row |= {"kind": "withdrawal", "account": draw(st.sampled_from(ACCOUNTS)), "card": "card-1"}
        elif kind == "payment":
            row |= {
                "kind": "payment",
                "account": draw(st.sampled_from(ACCOUNTS)),
                "merchant": "m-1",
                "wallet": draw(st.booleans()),
            }
        else:
            row |= {"kind": "credit", "account": draw(st.sampled_from(ACCOUNTS + VICTIMS))}
        rows.append(row)
    opening = None
    if draw(st.booleans()):
        opening = {a: draw(st.integers(0, 3_000)) for a in ACCOUNTS + VICTIMS}
    return {"rows": rows, "opening": opening}


def build(world: dict[str, Any]) -> Ledger:
    frame = pl.DataFrame(world["rows"], schema_overrides={"ts": pl.Int64, "amount": pl.Int64}, infer_schema_length=None)
    return Ledger.from_frame(frame, opening=world["opening"])


def reports_for(world: dict[str, Any], data: Any) -> list[ReportIn]:
    reports = []
    for victim in VICTIMS:
        ids = [
            r["event_id"]
            for r in world["rows"]
            if r["kind"] == "transfer" and r["account"] == victim and r.get("counterparty") in ACCOUNTS
        ]
        if not ids:
            continue
        chosen = data.draw(st.lists(st.sampled_from(ids), min_size=1, unique=True))
        total = sum(r["amount"] for r in world["rows"] if r["event_id"] in chosen)
        loss = data.draw(st.integers(1, total + 2_000))
        reports.append(
            ReportIn(
                victim_account=victim,
                loss=Decimal(loss) / 100,
                reported_at=datetime.fromtimestamp((T0 + 10**7) / 1000, UTC),
                event_ids=chosen,
            )
        )
    return reports


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def drawn(world: dict[str, Any], data: Any) -> tuple[Ledger, list[Any], str] | None:
    """The world's ledger, resolved reports of some of its victims, and a rule (None: no victim paid)."""
    ledger = build(world)
    reports = reports_for(world, data)
    if not reports:
        return None
    return ledger, resolve(ledger, reports), data.draw(st.sampled_from(RULES))


@SETTINGS
@given(world=worlds(), data=st.data())
def test_money_is_conserved_and_never_exceeds_the_loss_or_a_balance(world: dict[str, Any], data: Any) -> None:
    case = drawn(world, data)
    if case is None:
        return
    ledger, victims, rule = case
    params_hops = data.draw(st.integers(1, 5))
    minimum = data.draw(st.sampled_from([0, 1, 50, 500]))
    # as of every row in turn: held money never exceeds the balance at that moment
    for as_of_row in range(len(ledger)):
        as_of = int(ledger.ts[as_of_row])
        if as_of_row + 1 < len(ledger) and int(ledger.ts[as_of_row + 1]) == as_of:
            continue  # rows at the same millisecond are one moment
        trace = run(ledger, victims, TraceParams(rule=rule, max_hops=params_hops, min_amount=minimum, as_of_ms=as_of))
        for account, holding in trace.holdings.items():
            assert holding.traced_in == holding.traced_out + holding.total + holding.escaped
            assert 0 <= holding.total <= ledger.balance_at(account, trace.as_of_row)
            assert all(amount > 0 for amount in holding.taint.values())
            assert sum(holding.taint.values()) == holding.total
            assert max(holding.hop.values()) <= params_hops
        ended = trace.held_by_victim()
        for _r, _a, victim, amount in trace.escapes:
            ended[victim] = ended.get(victim, 0) + amount
        for _r, _f, _t, victim, amount, why in trace.stops:
            assert why in ("hop_limit", "min_amount")
            ended[victim] = ended.get(victim, 0) + amount
        for victim in victims:
            seeded = sum(a for r, a in victim.seeds if r <= trace.as_of_row)
            assert ended.get(victim.index, 0) == seeded <= victim.loss


@SETTINGS
@given(world=worlds(), data=st.data())
def test_the_tracer_agrees_with_a_naive_row_by_row_reference(world: dict[str, Any], data: Any) -> None:
    case = drawn(world, data)
    if case is None:
        return
    ledger, victims, rule = case
    minimum = data.draw(st.sampled_from([0, 1, 200]))
    trace = run(ledger, victims, TraceParams(rule=rule, max_hops=50, min_amount=minimum, as_of_ms=T0 + 10**7))
    expected = reference(ledger, world, victims, rule, minimum)
    got = {
        ledger.name(a): (h.total, h.traced_in, h.traced_out, h.escaped)
        for a, h in trace.holdings.items()
        if h.traced_in
    }
    assert got == {a: v for a, v in expected.items() if v[1]}


def reference(ledger: Ledger, world: dict[str, Any], victims: list[Any], rule: str, minimum: int) -> dict[str, tuple]:
    """Scalar traced money per account, every account and row visited in order, balances recomputed here."""
    rows = sorted(enumerate(world["rows"]), key=lambda kv: (kv[1]["ts"], kv[0]))
    rows = [r for _, r in rows]
    seeds = {ledger.event_id[row]: amount for v in victims for row, amount in v.seeds}

    def moves(r: dict[str, Any]) -> tuple[str | None, str | None]:
        kind = r["kind"]
        if kind == "credit":
            return None, r["account"]
        wallet = kind == "withdrawal" or r.get("wallet", True) is not False
        payee = r["counterparty"] if kind == "transfer" and not r.get("off_platform") else None
        return (r["account"] if wallet else None), payee

    # opening balances: given, raised to the smallest that keeps every wallet non-negative
    running: dict[str, int] = {}
    lowest: dict[str, int] = {}
    for r in rows:
        payer, payee = moves(r)
        if payer:
            running[payer] = running.get(payer, 0) - r["amount"]
            lowest[payer] = min(lowest.get(payer, 0), running[payer])
        if payee:
            running[payee] = running.get(payee, 0) + r["amount"]
    given = world["opening"] or {}
    balance = {a: max(given.get(a, 0), -lowest.get(a, 0)) for a in set(running) | set(given)}
    taint = dict.fromkeys(balance, 0)
    inflow = dict(balance)  # fifo: inflow axis position (the opening balance came first)
    outflow = dict.fromkeys(balance, 0)
    lots: dict[str, list[list[int]]] = {a: [] for a in balance}  # fifo [start, end, traced]
    stack: dict[str, list[list[int]]] = {a: [[b, 0]] for a, b in balance.items()}  # lifo [size, traced]
    stats = {a: [0, 0, 0] for a in balance}  # in, out, escaped
    for r in rows:
        payer, payee = moves(r)
        amount = r["amount"]
        carried = 0
        if payer:
            before, held = balance[payer], taint[payer]
            if rule == "libr":
                carried = min(held, max(0, amount - (before - held)))
            elif rule == "proportional":
                carried = held if amount >= before else held * amount // before
            elif rule == "fifo":
                start, end = outflow[payer], outflow[payer] + amount
                for lot in lots[payer]:
                    if lot[1] <= start or lot[0] >= end or not lot[2]:
                        continue
                    used = min(lot[1], end) - max(lot[0], start)
                    length = lot[1] - max(lot[0], start)
                    part = lot[2] if used >= length else lot[2] * used // length
                    carried += part
                    lot[2] -= part
                    lot[0] = max(lot[0], start) + used
            else:
                left = amount
                while left:
                    size, traced = stack[payer][-1]
                    if size <= left:
                        carried += traced
                        stack[payer].pop()
                        left -= size
                    else:
                        part = traced * left // size
                        carried += part
                        stack[payer][-1] = [size - left, traced - part]
                        left = 0
            balance[payer] -= amount
            outflow[payer] += amount
            taint[payer] -= carried
            if carried:
                if payee:
                    stats[payer][1] += carried
                else:
                    stats[payer][2] += carried
        if payee:
            arriving = seeds.get(r["event_id"], 0) + (carried if carried >= minimum else 0)
            balance[payee] += amount
            taint[payee] += arriving
            stats[payee][0] += arriving
            lots[payee].append([inflow[payee], inflow[payee] + amount, arriving])
            inflow[payee] += amount
            stack[payee].append([amount, arriving])
    return {a: (taint[a], *stats[a]) for a in balance}


def test_rule_definitions_on_a_worked_example() -> None:
    """M1 holds 500 of its own; a victim pays it 1,000; M1 sends 1,200 to M2; M2 withdraws 700, then sends
    300 to L. Each rule's answer, worked by hand."""
    rows = [
        {"event_id": "c0", "ts": 0, "kind": "credit", "account": "M1", "amount": 500},
        {
            "event_id": "e1",
            "ts": 1,
            "kind": "transfer",
            "account": "V",
            "counterparty": "M1",
            "amount": 1000,
            "wallet": False,
        },
        {"event_id": "e2", "ts": 2, "kind": "transfer", "account": "M1", "counterparty": "M2", "amount": 1200},
        {"event_id": "e3", "ts": 3, "kind": "withdrawal", "account": "M2", "card": "card-9", "amount": 700},
        {"event_id": "e4", "ts": 4, "kind": "transfer", "account": "M2", "counterparty": "L", "amount": 300},
    ]
    ledger = Ledger.from_frame(pl.DataFrame(rows, infer_schema_length=None))
    report = ReportIn(
        victim_account="V", loss=Decimal("10.00"), reported_at=datetime(2026, 1, 1, tzinfo=UTC), event_ids=["e1"]
    )
    expected = {
        # libr: M1 spends its 500 first, so 700 of the 1,200 is traced; M2 (700 of 1,200 traced) withdraws
        # 700: its 500 clean first, 200 escapes; the last 300 are all traced money
        "libr": {"M1": 300, "M2": 200, "L": 300},
        # proportional: 1,200 × 1,000/1,500 = 800; 700 × 800/1,200 = 466 escapes; 300 × 334/500 = 200
        "proportional": {"M1": 200, "M2": 134, "L": 200},
        # fifo: the 500 left first, then 700 of the victim's; M2's lot is 700/1,200 traced: 408 escape, 175 on
        "fifo": {"M1": 300, "M2": 117, "L": 175},
        # lifo: the newest 1,000 left first; M2's lot of 1,200 (1,000 traced): 583 escape, 250 on
        "lifo": {"M1": 0, "M2": 167, "L": 250},
    }
    for rule, held in expected.items():
        outcome = Tracer(rule, min_amount=0, alerts=False).run(ledger, [report])
        got = {ledger.name(a): h.total for a, h in outcome.trace.holdings.items()}
        assert got == held, rule
        assert sum(e[3] for e in outcome.trace.escapes) + sum(held.values()) == 1000


def test_libr_never_lets_clean_deposits_refill_traced_money() -> None:
    rows = [
        {
            "event_id": "e1",
            "ts": 1,
            "kind": "transfer",
            "account": "V",
            "counterparty": "M",
            "amount": 1000,
            "wallet": False,
        },
        {"event_id": "e2", "ts": 2, "kind": "withdrawal", "account": "M", "card": "c", "amount": 900},
        {"event_id": "c3", "ts": 3, "kind": "credit", "account": "M", "amount": 5000},
        {"event_id": "e4", "ts": 4, "kind": "withdrawal", "account": "M", "card": "c", "amount": 50},
    ]
    ledger = Ledger.from_frame(pl.DataFrame(rows, infer_schema_length=None))
    report = ReportIn(
        victim_account="V", loss=Decimal(10), reported_at=datetime(2026, 1, 1, tzinfo=UTC), event_ids=["e1"]
    )
    outcome = Tracer("libr", min_amount=0).run(ledger, [report])
    (holding,) = outcome.trace.holdings.values()
    assert holding.total == 100  # the lowest balance since the money arrived, however much came in later
    assert outcome.orders[0].freezable == 100
    assert outcome.document["balance_basis"]["basis"] == "reconstructed"


def test_rows_of_every_kind_are_read() -> None:
    assert (TRANSFER, PAYMENT, WITHDRAWAL, CREDIT) == (0, 1, 2, 3)
