"""The feature engine's conformance suite: every back end against the definition (features/reference.py),
over random streams with out-of-order, late and duplicate events; plus retraction, redeclaration,
bounded state, snapshots and the sketch above the exact-distinct limit."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskguard.events.schema import Event
from riskguard.features.engine import FeatureEngine
from riskguard.features.memory import MemoryFeatureEngine
from riskguard.features.redis_backend import RedisFeatureEngine
from riskguard.features.reference import reference_values
from riskguard.features.spec import FeatureSpec
from riskguard.rules.activation import EVENT_DECLARATIONS, event_variables
from riskguard.rules.cel import Environment

BASE = datetime(2026, 11, 1, tzinfo=UTC)
ENV = Environment(EVENT_DECLARATIONS)
TRANSFERS = 'event.type == "transfer"'


def spec(name: str, aggregate: str, **fields: Any) -> FeatureSpec:
    fields.setdefault("entity", "account_id")
    fields.setdefault("window", "1h")
    return FeatureSpec(name=name, aggregate=aggregate, **fields)  # type: ignore[arg-type]


SPECS = [
    spec("n_1h", "count"),
    spec("n_tr_1h_excl", "count", when=TRANSFERS, include_current=False),
    spec("n_10m_fine", "count", window="10m", granularity="1m"),
    spec("sum_2h", "sum", field="amount", window="2h", when=TRANSFERS),
    spec("sum_2h_excl", "sum", field="amount", window="2h", include_current=False),
    spec("min_2h", "min", field="amount", window="2h", when=TRANSFERS),
    spec("max_2h_excl", "max", field="amount", window="2h", when=TRANSFERS, include_current=False),
    spec("avg_1h", "avg", field="amount", when=TRANSFERS),
    spec("avg_1d_excl", "avg", field="amount", window="1d", include_current=False),
    spec("payees_1h", "distinct", field="counterparty_id", when=TRANSFERS),
    spec("payees_1d_excl", "distinct", field="counterparty_id", window="1d", include_current=False),
    spec("kinds_6h", "distinct", field="type", window="6h"),
    spec("pair_1h", "count", entity=["account_id", "counterparty_id"], when=TRANSFERS),
    spec("pair_sum_7d", "sum", entity=["account_id", "counterparty_id"], field="amount", window="7d"),
    spec("first_2h", "first_seen", window="2h"),
    spec("first_1d_excl", "first_seen", window="1d", include_current=False),
    spec("last_1h_excl", "last_seen", include_current=False),
    spec("last_tr_1h", "last_seen", when=TRANSFERS),
    spec("payee_n_1h", "count", entity="counterparty_id"),
    FeatureSpec(name="share_tr", aggregate="ratio", of=["sum_2h", "n_1h"]),
]

BACKENDS = ["memory", "redis"]


@pytest.fixture(params=BACKENDS)
def make_engine(request: pytest.FixtureRequest) -> Iterator[Callable[..., FeatureEngine]]:
    """A factory of fresh, empty engines of one back end: ``make_engine(lateness_seconds=..., ...)``
    (each call a new engine with state of its own, so hypothesis examples never share state)."""
    made: list[FeatureEngine] = []
    client = redis.Redis.from_url(request.getfixturevalue("redis_server")) if request.param == "redis" else None

    def factory(**options: Any) -> FeatureEngine:
        engine: FeatureEngine
        if client is not None:  # a fresh namespace of its own on the real Redis
            engine = RedisFeatureEngine(client, namespace="t" + uuid.uuid4().hex[:16], **options)
        else:
            engine = MemoryFeatureEngine(**options)
        made.append(engine)
        return engine

    yield factory
    if client is not None:
        for engine in made:
            assert isinstance(engine, RedisFeatureEngine)
            engine.clear()
        client.close()


def make_event(i: int, second: int, account: str, kind: str, payee: str, cents: int, event_id: str = "") -> Event:
    transfer = kind == "transfer"
    return Event(
        event_id=event_id or f"e{i}",
        type=kind,
        occurred_at=BASE + timedelta(seconds=second),
        account_id=account,  # type: ignore[arg-type]
        amount=Decimal(cents) / 100 if kind != "login" else None,
        currency="CNY" if kind != "login" else None,
        counterparty_id=payee if transfer else None,
    )


def run(engine: FeatureEngine, events: list[Event], specs: list[FeatureSpec]) -> list[dict[str, Any]]:
    engine.declare(specs, ENV)
    return [engine.process(engine.prepare(e, event_variables(e)), [specs])[0] for e in events]


def differences(got: list[dict[str, Any]], want: list[dict[str, Any]], events: list[Event]) -> list[Any]:
    out = []
    for event, g, w in zip(events, got, want, strict=True):
        for name in set(g) | set(w):
            if g.get(name) != w.get(name):
                out.append((event.event_id, name, g.get(name), w.get(name)))
    return out


rows = st.lists(
    st.tuples(
        st.integers(0, 30_000),  # seconds: several windows, arriving out of order
        st.sampled_from(["a1", "a2", "a3"]),
        st.sampled_from(["transfer", "login", "withdrawal"]),
        st.sampled_from(["p1", "p2", "p3", "p4", "p5"]),
        st.integers(1, 10_000_00),
    ),
    min_size=1,
    max_size=50,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=rows, repeats=st.lists(st.integers(0, 49), max_size=5), lateness=st.sampled_from([600, 3600, 36000]))
def test_every_aggregate_matches_the_definition(
    make_engine: Callable[..., FeatureEngine], stream: list[Any], repeats: list[int], lateness: int
) -> None:
    events = [make_event(i, *row) for i, row in enumerate(stream)]
    events += [events[i] for i in repeats if i < len(events)]  # re-sent events: duplicates
    want = reference_values(events, SPECS, lateness_seconds=lateness)
    got = run(make_engine(lateness_seconds=lateness), events, SPECS)
    assert differences(got, want, events) == []


def test_a_long_random_stream_matches_the_definition(make_engine: Callable[..., FeatureEngine]) -> None:
    rnd = random.Random(20261126)
    events, clock = [], 0
    for i in range(1500):
        clock += rnd.randint(0, 120)
        skew = rnd.randint(0, 5400) if rnd.random() < 0.1 else 0  # some events arrive late, a few too late
        events.append(
            make_event(
                i,
                max(0, clock - skew),
                rnd.choice(["a1", "a2", "a3", "a4"]),
                rnd.choice(["transfer", "transfer", "login", "withdrawal"]),
                rnd.choice([f"p{k}" for k in range(12)]),
                rnd.randint(1, 500_000),
            )
        )
    events += rnd.sample(events, 40)
    want = reference_values(events, SPECS, lateness_seconds=3600)
    got = run(make_engine(lateness_seconds=3600), events, SPECS)
    assert differences(got, want, events) == []


def test_a_feature_without_its_entity_is_unknown_not_zero(make_engine: Callable[..., FeatureEngine]) -> None:
    login = make_event(1, 0, "a1", "login", "", 0)
    values = run(make_engine(), [login], SPECS)[0]
    assert "pair_1h" not in values and "payee_n_1h" not in values
    assert values["n_1h"] == 1 and values["sum_2h_excl"] == 0 and "min_2h" not in values


def test_reprocessing_an_event_changes_nothing(make_engine: Callable[..., FeatureEngine]) -> None:
    engine = make_engine()
    events = [make_event(i, i * 60, "a1", "transfer", f"p{i % 3}", 1000 + i) for i in range(10)]
    run(engine, events, SPECS)
    probe = make_event(99, 700, "a1", "transfer", "p9", 5)
    prepared = engine.prepare(probe, event_variables(probe))
    before = engine.compute(prepared, SPECS)
    for event in events:
        engine.process(engine.prepare(event, event_variables(event)), [SPECS])
    assert engine.compute(prepared, SPECS) == before
    assert before["n_1h"] == 11


def test_late_events_are_decided_but_never_folded(make_engine: Callable[..., FeatureEngine]) -> None:
    engine = make_engine(lateness_seconds=600)
    recent = make_event(1, 10_000, "a1", "transfer", "p1", 100)
    late = make_event(2, 10_000 - 1200, "a1", "transfer", "p1", 100)
    after = make_event(3, 10_001, "a1", "transfer", "p1", 100)
    values = run(engine, [recent, late, after], SPECS)
    assert values[1]["n_1h"] == 1  # the late event is decided on its own window (itself)
    assert values[2]["n_1h"] == 2  # ... but never folded: it would have made this 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=rows, drop=st.sets(st.integers(0, 49)))
def test_retracting_an_event_is_as_if_it_never_happened(
    make_engine: Callable[..., FeatureEngine], stream: list[Any], drop: set[int]
) -> None:
    # min, max, first_seen and last_seen keep a bucket's extreme after one of its events is retracted
    # (documented); the additive aggregates and distinct forget it exactly
    exact = [s for s in SPECS if s.aggregate in ("count", "sum", "avg", "distinct")]
    full, kept = make_engine(lateness_seconds=10**6), make_engine(lateness_seconds=10**6)
    full.declare(exact, ENV)
    kept.declare(exact, ENV)
    events = [make_event(i, *row) for i, row in enumerate(stream)]
    for i, event in enumerate(events):
        full.observe(full.prepare(event, event_variables(event)))
        if i not in drop:
            kept.observe(kept.prepare(event, event_variables(event)))
    for i in sorted(drop):
        if i < len(events):
            full.retract(events[i], event_variables(events[i]))
    for account in ("a1", "a2", "a3"):
        for second in (0, 15_000, 30_000):
            probe = make_event(999, second, account, "transfer", "p1", 100)
            assert full.compute(full.prepare(probe, event_variables(probe)), exact) == kept.compute(
                kept.prepare(probe, event_variables(probe)), exact
            )


def test_redeclaring_keeps_state_and_reports_new_specs(make_engine: Callable[..., FeatureEngine]) -> None:
    engine = make_engine()
    first = spec("n", "count")
    assert engine.declare([first], ENV) == [first]
    event = make_event(1, 0, "a1", "login", "p", 1)
    engine.observe(engine.prepare(event, event_variables(event)))
    renamed, extra = spec("renamed", "count"), spec("m", "count", window="2h")
    assert engine.declare([renamed, extra], ENV) == [extra]
    later = make_event(2, 60, "a1", "login", "p", 1)
    values = engine.compute(engine.prepare(later, event_variables(later)), [renamed, extra])
    assert values == {"renamed": 2, "m": 1}  # same definition under a new name: the state carried over


def test_backfill_folds_history_into_new_features_only(make_engine: Callable[..., FeatureEngine]) -> None:
    engine = make_engine()
    old = spec("old", "count")
    engine.declare([old], ENV)
    history = [make_event(i, i * 60, "a1", "transfer", "p1", 100) for i in range(5)]
    new = spec("new", "sum", field="amount")
    assert engine.declare([old, new], ENV) == [new]
    assert engine.backfill([new], ((e, event_variables(e)) for e in history)) == 5
    probe = make_event(9, 400, "a1", "transfer", "p1", 100)
    values = engine.compute(engine.prepare(probe, event_variables(probe)), [old, new])
    assert values == {"old": 1, "new": Decimal(6)}


def test_distinct_switches_to_a_sketch_within_its_error(make_engine: Callable[..., FeatureEngine]) -> None:
    engine = make_engine(distinct_exact_limit=50)
    payees = spec("payees", "distinct", field="counterparty_id", window="1d")
    events = [make_event(i, i, "hot", "transfer", f"p{i}", 100) for i in range(3000)]
    values = run(engine, events, [payees])
    assert [v["payees"] for v in values[:50]] == list(range(1, 51))  # exact below the limit
    assert abs(values[-1]["payees"] - 3000) <= 3000 * 0.05  # p=12: 1.6 % standard error, 3 sigma


def test_memory_state_stays_bounded_by_the_windows() -> None:
    engine = MemoryFeatureEngine(lateness_seconds=0)
    engine.declare([spec("n", "count", window="10m")], ENV)
    for minute in range(0, 6000, 5):
        event = make_event(minute, minute * 60, "a1", "login", "p", 1)
        engine.observe(engine.prepare(event, event_variables(event)))
    (state,) = engine._state
    assert len(state["a1"].bs) <= 3  # ten minutes of events every five minutes, not 100 hours


def test_memory_snapshot_restores_state(tmp_path: Path) -> None:
    events = [make_event(i, i * 37, f"a{i % 4}", "transfer", f"p{i % 7}", 100 + i) for i in range(400)]
    whole = MemoryFeatureEngine(distinct_exact_limit=3)  # sketches too
    want = run(whole, events, SPECS)
    first = MemoryFeatureEngine(distinct_exact_limit=3)
    run(first, events[:250], SPECS)
    first.snapshot(tmp_path / "features.snapshot", position="up to e249")
    second = MemoryFeatureEngine(distinct_exact_limit=3)
    second.declare(SPECS, ENV)
    position, missing = second.restore(tmp_path / "features.snapshot")
    assert (position, missing) == ("up to e249", [])
    got = [second.process(second.prepare(e, event_variables(e)), [SPECS])[0] for e in events[250:]]
    assert got == want[250:]


@pytest.fixture(scope="module")
def simulated_events(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    """A small simulated platform under attack (all seven typologies), as events in arrival order."""
    from riskguard.events.validate import parse_event_obj
    from riskguard.sim.config import WorldConfig
    from riskguard.sim.world import simulate
    from riskguard.sim.writer import iter_events, write_world

    out = tmp_path_factory.mktemp("world")
    write_world(simulate(WorldConfig(accounts=300, days=3, seed=11)), out)
    return [parse_event_obj(body) for body in iter_events(out)][:2500]


def strategy_features(path: Path) -> list[FeatureSpec]:
    from riskguard.rules.strategy import load_strategy

    return list(load_strategy(path.read_text(encoding="utf-8")).features)


def test_the_starter_and_example_strategies_match_the_definition(
    make_engine: Callable[..., FeatureEngine], simulated_events: list[Event]
) -> None:
    from riskguard.config import STARTER_STRATEGY

    starter = strategy_features(Path(STARTER_STRATEGY))
    example = strategy_features(Path(__file__).parent / "data" / "payments.yaml")
    specs = [*starter, *(s for s in example if s.name not in {f.name for f in starter})]
    events = simulated_events
    want = reference_values(events, specs)
    got = run(make_engine(), events, specs)
    assert differences(got, want, events) == []
    assert sum(len(v) for v in got) > len(events) * 10  # the features really had values
