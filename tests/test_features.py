"""The embedded feature engine against a brute-force oracle (window arithmetic, out-of-order events)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from riskguard.events.schema import Event
from riskguard.features.memory import MemoryFeatureEngine
from riskguard.features.spec import FeatureSpec
from riskguard.rules.activation import EVENT_DECLARATIONS, event_variables
from riskguard.rules.cel import Environment

BASE = datetime(2026, 11, 1, tzinfo=UTC)
ENV = Environment(EVENT_DECLARATIONS)

TRANSFERS = 'event.type == "transfer"'
SPECS = [
    FeatureSpec(name="n_1h", entity="account_id", aggregate="count", window="1h"),
    FeatureSpec(
        name="n_tr_1h_excl", entity="account_id", aggregate="count", window="1h", when=TRANSFERS, include_current=False
    ),
    FeatureSpec(name="sum_2h", entity="account_id", aggregate="sum", field="amount", window="2h", when=TRANSFERS),
    FeatureSpec(name="min_2h", entity="account_id", aggregate="min", field="amount", window="2h", when=TRANSFERS),
    FeatureSpec(
        name="max_2h_excl",
        entity="account_id",
        aggregate="max",
        field="amount",
        window="2h",
        when=TRANSFERS,
        include_current=False,
    ),
    FeatureSpec(name="avg_1h", entity="account_id", aggregate="avg", field="amount", window="1h", when=TRANSFERS),
    FeatureSpec(
        name="payees_1h",
        entity="account_id",
        aggregate="distinct",
        field="counterparty_id",
        window="1h",
        when=TRANSFERS,
    ),
    FeatureSpec(
        name="pair_1h", entity=["account_id", "counterparty_id"], aggregate="count", window="1h", when=TRANSFERS
    ),
    FeatureSpec(name="first_2h", entity="account_id", aggregate="first_seen", window="2h"),
    FeatureSpec(name="last_1h_excl", entity="account_id", aggregate="last_seen", window="1h", include_current=False),
    FeatureSpec(name="last_tr_1h", entity="account_id", aggregate="last_seen", window="1h", when=TRANSFERS),
    FeatureSpec(name="share_tr", aggregate="ratio", of=["sum_2h", "n_1h"]),
]


def make_event(i: int, minute: int, account: str, kind: str, payee: str, cents: int) -> Event:
    transfer = kind == "transfer"
    return Event(
        event_id=f"e{i}",
        type=kind,
        occurred_at=BASE + timedelta(minutes=minute),
        account_id=account,  # type: ignore[arg-type]
        amount=Decimal(cents) / 100 if transfer else None,
        currency="CNY" if transfer else None,
        counterparty_id=payee if transfer else None,
    )


def oracle(history: list[Event], event: Event, spec: FeatureSpec, values: dict[str, object]) -> object:
    """The definition: events of the same key, passing the filter, with time in (t - w, t]."""
    if spec.aggregate == "ratio":
        top, bottom = values.get(spec.of[0]), values.get(spec.of[1])  # type: ignore[index]
        return None if top is None or not bottom else Decimal(top) / Decimal(bottom)  # type: ignore[arg-type]
    t = event.occurred_at
    window = timedelta(seconds=spec.window_seconds)

    def key(e: Event) -> tuple[object, ...]:
        return tuple(getattr(e, f) for f in spec.entity_fields)

    def passes(e: Event) -> bool:
        return spec.when is None or e.type == "transfer"

    pool = [e for e in history if key(e) == key(event) and passes(e) and t - window < e.occurred_at <= t]
    if spec.include_current and passes(event):
        pool.append(event)
    amounts = [e.amount for e in pool]
    times = [(t - e.occurred_at).total_seconds() for e in pool]
    match spec.aggregate:
        case "count":
            return len(pool)
        case "sum":
            return sum(amounts, Decimal(0))
        case "min":
            return min(amounts) if amounts else None
        case "max":
            return max(amounts) if amounts else None
        case "avg":
            return sum(amounts, Decimal(0)) / len(amounts) if amounts else None
        case "first_seen":
            return max(times) if times else None
        case "last_seen":
            return min(times) if times else None
    return len({e.counterparty_id for e in pool})


event_rows = st.lists(
    st.tuples(
        st.integers(0, 400),  # minute: spans several windows, arrives out of order
        st.sampled_from(["a1", "a2", "a3"]),
        st.sampled_from(["transfer", "login"]),
        st.sampled_from(["p1", "p2", "p3", "p4"]),
        st.integers(1, 10_000_00),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(rows=event_rows)
def test_features_match_the_definition(rows: list[tuple[int, str, str, str, int]]) -> None:
    engine = MemoryFeatureEngine(lateness_seconds=10 * 3600)
    engine.declare(SPECS, ENV)
    history: list[Event] = []
    for i, row in enumerate(rows):
        event = make_event(i, *row)
        variables = event_variables(event)
        prepared = engine.prepare(event, variables)
        values = engine.compute(prepared, SPECS)
        for spec in SPECS:
            if spec.entity_fields == ("account_id", "counterparty_id") and event.counterparty_id is None:
                assert spec.name not in values
                continue
            assert values.get(spec.name) == oracle(history, event, spec, values), (spec.name, row)
        engine.observe(prepared)
        history.append(event)


def test_state_is_trimmed_to_the_window() -> None:
    engine = MemoryFeatureEngine(lateness_seconds=0)
    spec = FeatureSpec(name="n", entity="account_id", aggregate="count", window="1h")
    engine.declare([spec], ENV)
    for minute in range(0, 600, 5):
        event = make_event(minute, minute, "a1", "login", "p", 1)
        engine.observe(engine.prepare(event, event_variables(event)))
    aggregate = next(iter(engine._by_signature.values()))
    assert len(aggregate.series["a1"]) <= 13  # one hour of events every five minutes, not ten hours


def test_redeclaring_keeps_state_and_reports_new_specs() -> None:
    engine = MemoryFeatureEngine()
    first = FeatureSpec(name="n", entity="account_id", aggregate="count", window="1h")
    assert engine.declare([first], ENV) == [first]
    event = make_event(1, 0, "a1", "login", "p", 1)
    engine.observe(engine.prepare(event, event_variables(event)))
    renamed = FeatureSpec(name="renamed", entity="account_id", aggregate="count", window="1h")
    extra = FeatureSpec(name="m", entity="account_id", aggregate="count", window="2h")
    assert engine.declare([renamed, extra], ENV) == [extra]
    later = make_event(2, 1, "a1", "login", "p", 1)
    values = engine.compute(engine.prepare(later, event_variables(later)), [renamed])
    assert values["renamed"] == 2  # same definition under a new name: the state carried over


@settings(max_examples=80, deadline=None)
@given(rows=event_rows, drop=st.sets(st.integers(0, 59)))
def test_retracting_an_event_is_as_if_it_never_happened(
    rows: list[tuple[int, str, str, str, int]], drop: set[int]
) -> None:
    full = MemoryFeatureEngine(lateness_seconds=10 * 3600)
    kept = MemoryFeatureEngine(lateness_seconds=10 * 3600)
    full.declare(SPECS, ENV)
    kept.declare(SPECS, ENV)
    events = [make_event(i, *row) for i, row in enumerate(rows)]
    for i, event in enumerate(events):
        full.observe(full.prepare(event, event_variables(event)))
        if i not in drop:
            kept.observe(kept.prepare(event, event_variables(event)))
    for i in sorted(drop):
        if i < len(events):
            full.retract(events[i], event_variables(events[i]))
    for account in ("a1", "a2", "a3"):
        for minute in (0, 200, 400):
            probe = make_event(999, minute, account, "transfer", "p1", 100)
            prepared = full.prepare(probe, event_variables(probe))
            assert full.compute(prepared, SPECS) == kept.compute(prepared, SPECS)
