"""The offline feature path against the definition (features/reference.py) and the online memory engine:
random streams with out-of-order, late and duplicate events; every input form; the CLI; and a simulated
stream of over 100,000 events computed both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from riskguard.cli.main import app
from riskguard.config import STARTER_STRATEGY
from riskguard.errors import ConfigError, StrategyError, ValidationFailed
from riskguard.events.schema import Event
from riskguard.events.validate import parse_event_obj
from riskguard.features import offline_windows
from riskguard.features.memory import MemoryFeatureEngine
from riskguard.features.offline import offline_features
from riskguard.features.reference import reference_values
from riskguard.features.spec import FeatureSpec
from riskguard.rules.activation import EVENT_DECLARATIONS, event_variables
from riskguard.rules.cel import Environment
from riskguard.rules.strategy import load_strategy
from riskguard.sim.config import WorldConfig
from riskguard.sim.world import simulate
from riskguard.sim.writer import envelope, read_events, write_world

BASE = datetime(2026, 3, 1, tzinfo=UTC)
TRANSFERS = 'event.type == "transfer"'
FAILED_LOGINS = 'event.type == "login" && has(event.attributes.success) && event.attributes.success == false'


def spec(name: str, aggregate: str, **fields: Any) -> FeatureSpec:
    fields.setdefault("entity", "account_id")
    fields.setdefault("window", "10m")
    return FeatureSpec(name=name, aggregate=aggregate, **fields)  # type: ignore[arg-type]


#: every aggregate, both include_current settings, composite keys, guard-only and evaluated filters,
#: attribute fields, and bucket sizes from 1 s (edges exact) to whole-window-sized buckets
SPECS = [
    FeatureSpec(name="excl_share", aggregate="ratio", of=["n_excl", "n"]),  # before its operands
    spec("n", "count"),
    spec("n_excl", "count", include_current=False),
    spec("n_tr_fine", "count", window="2m", granularity="1s", when=TRANSFERS),
    spec("n_coarse", "count", window="1h", granularity="30m"),
    spec("n_failed", "count", when=FAILED_LOGINS, include_current=False),
    spec("n_big", "count", when="event.amount > 500.0"),
    spec("n_late_minutes", "count", when="event.occurred_at.getMinutes() >= 20 && event.account_id != 'a3'"),
    spec("sum_app", "sum", field="amount", when='event.attributes.channel_hint == "app" || event.device_id == "d2"'),
    spec("sum_amt", "sum", field="amount"),
    spec("sum_tr_excl", "sum", field="amount", when=TRANSFERS, include_current=False),
    spec("min_amt", "min", field="amount", window="30m", granularity="1m"),
    spec("max_amt_excl", "max", field="amount", include_current=False),
    spec("avg_amt", "avg", field="amount"),
    spec("avg_amt_excl", "avg", field="amount", window="1h", include_current=False),
    spec("payees", "distinct", field="counterparty_id", when=TRANSFERS),
    spec("payees_excl", "distinct", field="counterparty_id", window="30m", granularity="1m", include_current=False),
    spec("device_accounts", "distinct", entity="device_id", field="account_id", window="1h"),
    spec("kinds", "distinct", field="type", window="2m", granularity="10s"),
    spec("channels", "distinct", entity="device_id", field="attributes.channel_hint", include_current=False),
    spec("amounts", "distinct", field="amount", window="1h"),
    spec("pair_n", "count", entity=["account_id", "counterparty_id"], when=TRANSFERS, include_current=False),
    spec("pair_sum", "sum", entity=["account_id", "counterparty_id"], field="amount", window="1h"),
    spec("first", "first_seen"),
    spec("first_excl", "first_seen", window="1h", include_current=False),
    spec("last", "last_seen", when=TRANSFERS),
    spec("last_excl", "last_seen", entity="device_id", include_current=False),
    FeatureSpec(name="avg_share", aggregate="ratio", of=["sum_amt", "n"]),
    FeatureSpec(name="per_first", aggregate="ratio", of=["avg_amt", "first"]),
]

HINTS = [None, "app", 7, True, [1, 2], {"k": "v"}]

row = st.tuples(
    st.integers(-400, 400),  # seconds from the arrival clock: out of order, some beyond the lateness
    st.sampled_from(["a1", "a2", "a3"]),
    st.sampled_from(["transfer", "transfer", "login", "withdrawal"]),
    st.sampled_from(["p1", "p2", "p3"]),
    st.integers(1, 100_000),  # cents
    st.sampled_from([None, "d1", "d2"]),
    st.booleans(),  # login success
    st.sampled_from(range(len(HINTS))),
)


def make_events(rows: list[Any], repeats: list[int], step: int) -> list[Event]:
    events = []
    for i, (skew, account, kind, payee, cents, device, success, hint) in enumerate(rows):
        attributes: dict[str, Any] = {}
        if kind == "login":
            attributes["success"] = success
        if HINTS[hint] is not None:
            attributes["channel_hint"] = HINTS[hint]
        money = kind != "login"
        events.append(
            Event(
                event_id=f"e{i}",
                type=kind,
                occurred_at=BASE + timedelta(seconds=i * step + skew, microseconds=cents % 997),
                account_id=account,
                amount=Decimal(cents) / 100 if money else None,
                currency="CNY" if money else None,
                counterparty_id=payee if kind == "transfer" else None,
                device_id=device,
                attributes=attributes,
            )
        )
    return events + [events[i] for i in repeats if i < len(events)]  # re-sent: duplicates (or late)


def rows_of(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """offline_features' rows as reference_values gives them: features with a value only."""
    return [{k: v for k, v in r.items() if v is not None and k != "event_id"} for r in frame.to_dicts()]


def differences(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> list[Any]:
    out = []
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        for name in sorted(set(g) | set(w)):
            if g.get(name) != w.get(name) or type(g.get(name)) is not type(w.get(name)):
                out.append((i, name, g.get(name), w.get(name)))
    return out


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(row, min_size=1, max_size=45),
    repeats=st.lists(st.integers(0, 44), max_size=4),
    step=st.sampled_from([1, 15, 60]),
    lateness=st.sampled_from([0, 120, 3600]),
)
def test_random_streams_match_the_definition(rows: list[Any], repeats: list[int], step: int, lateness: int) -> None:
    events = make_events(rows, repeats, step)
    want = reference_values(events, SPECS, lateness_seconds=lateness)
    got = rows_of(offline_features(events, SPECS, lateness_seconds=lateness))
    assert differences(got, want) == []


def test_a_long_shuffled_stream_matches_the_definition() -> None:
    """Hot keys with stragglers: events jittered across bucket edges, a few hours late, many resent."""
    import random

    rnd = random.Random(7)
    rows = [
        (
            rnd.randint(-90, 90) - (rnd.randint(0, 9000) if rnd.random() < 0.03 else 0),
            rnd.choice(["a1", "a2"]),
            rnd.choice(["transfer", "login", "withdrawal"]),
            rnd.choice(["p1", "p2", "p3", "p4"]),
            rnd.randint(1, 10**6),
            rnd.choice([None, "d1"]),
            rnd.random() < 0.7,
            rnd.randrange(len(HINTS)),
        )
        for _ in range(1200)
    ]
    events = make_events(rows, rnd.sample(range(1200), 60), step=5)
    want = reference_values(events, SPECS, lateness_seconds=600)
    got = rows_of(offline_features(events, SPECS, lateness_seconds=600))
    assert differences(got, want) == []


def test_the_paths_for_codes_too_wide_for_int64_give_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the int64 headroom set to nothing, every combined code takes its rank-compressed path and every
    sum its Python-int path: the values must not change."""
    import random

    rnd = random.Random(3)
    rows = [
        (rnd.randint(-400, 400), rnd.choice(["a1", "a2"]), rnd.choice(["transfer", "login"]), rnd.choice(["p1", "p2"]),
         rnd.randint(1, 10**5), rnd.choice([None, "d1", "d2"]), rnd.random() < 0.5, rnd.randrange(len(HINTS)))
        for _ in range(150)
    ]  # fmt: skip
    events = make_events(rows, [3, 30, 90], step=15)
    want = reference_values(events, SPECS, lateness_seconds=120)
    monkeypatch.setattr(offline_windows, "_SAFE", 1)
    assert differences(rows_of(offline_features(events, SPECS, lateness_seconds=120)), want) == []


def test_amounts_beyond_int64_units_stay_exact() -> None:
    amounts = ["999999999999999.9999", "987654321098765.4321", "0.00005", "0.00015", "123.45678"]
    events = [
        Event(
            event_id=f"e{i}",
            type="transfer",
            occurred_at=BASE + timedelta(seconds=i),
            account_id="a",
            amount=Decimal(text),
            currency="CNY",
            counterparty_id="p",
        )
        for i, text in enumerate(amounts)
    ]
    specs = [spec("s", "sum", field="amount"), spec("lo", "min", field="amount"), spec("m", "avg", field="amount")]
    want = reference_values(events, specs)
    assert differences(rows_of(offline_features(events, specs)), want) == []
    assert want[1]["s"] == Decimal("1987654321098765.4320")


# ---------------------------------------------------------------------- input forms and errors
@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(simulate(WorldConfig(accounts=300, days=2, seed=11)), out)
    return out


def starter_specs() -> list[FeatureSpec]:
    return list(load_strategy(Path(STARTER_STRATEGY).read_text(encoding="utf-8")).features)


def test_every_input_form_gives_the_same_values(small_world: Path, tmp_path: Path) -> None:
    frame = read_events(small_world)
    specs = starter_specs()
    from_frame = offline_features(frame, specs)
    frame.write_csv(tmp_path / "events.csv")
    events = [parse_event_obj(envelope(r), max_future_skew_s=None) for r in frame.iter_rows(named=True)]
    for other in (
        offline_features(small_world, specs),  # a world directory
        offline_features(small_world / "events" / "part-00000.parquet", specs),
        offline_features(tmp_path / "events.csv", specs),
        offline_features(events, specs),
        offline_features(frame, specs, workers=1),  # threads change nothing
        offline_features(frame, specs, workers=3),
    ):
        assert rows_of(other) == rows_of(from_frame)
    assert from_frame.columns == ["event_id", *(s.name for s in specs if s.aggregate != "published")]
    assert from_frame.height == frame.height
    assert from_frame.get_column("device_accounts_7d").max() >= 2  # real sharing, not all zeros


def test_bad_histories_and_declarations_are_refused_clearly(tmp_path: Path) -> None:
    good = pl.DataFrame(
        {"event_id": ["e1"], "type": ["login"], "occurred_at": ["2026-03-01T00:00:00Z"], "account_id": ["a"]}
    )
    specs = [spec("n", "count")]
    assert offline_features(good, specs).get_column("n").to_list() == [1]
    with pytest.raises(ValidationFailed, match="account_id: missing column"):
        offline_features(good.drop("account_id"), specs)
    with pytest.raises(ValidationFailed, match=r"events\.0\.occurred_at: '2026-03-01 00:00' is not an ISO-8601"):
        offline_features(good.with_columns(occurred_at=pl.lit("2026-03-01 00:00")), specs)
    with pytest.raises(ValidationFailed, match=r"occurred_at.*UTC offset"):
        offline_features(good.with_columns(occurred_at=pl.lit("2026-03-01T00:00:00")), specs)
    with pytest.raises(ValidationFailed, match="never floats"):
        offline_features(good.with_columns(amount=pl.lit(1.5)), specs)
    with pytest.raises(ValidationFailed, match=r"events\.0\.amount: 'abc' is not a finite decimal"):
        offline_features(good.with_columns(amount=pl.lit("abc")), specs)
    with pytest.raises(ValidationFailed, match="no such file"):
        offline_features(tmp_path / "nope.parquet", specs)
    with pytest.raises(ConfigError, match="lateness_seconds must be 0 or more"):
        offline_features(good, specs, lateness_seconds=-1)
    with pytest.raises(StrategyError, match="declared twice"):
        offline_features(good, [spec("n", "count"), spec("n", "sum", field="amount")])
    with pytest.raises(StrategyError, match="when"):
        offline_features(good, [spec("n", "count", when="event.nope == 1")])


def test_an_empty_history_gives_an_empty_frame() -> None:
    frame = offline_features([], SPECS)
    assert frame.height == 0
    assert frame.columns == ["event_id", *(s.name for s in SPECS)]


AVERAGES = """
name: averages
version: 1
features:
  - {name: n_7d, entity: account_id, aggregate: count, window: 7d}
  - {name: avg_7d, entity: account_id, aggregate: avg, field: amount, window: 7d}
  - {name: per_event, aggregate: ratio, of: [avg_7d, n_7d]}
rules:
  - {id: big, when: 'features.avg_7d > 1000.0', score: 10, reason: Large average}
"""


def test_cli_computes_features_to_parquet(small_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"

    def compute(events: Path, *more: str, strategy: Path = Path(STARTER_STRATEGY)) -> Any:
        options = ["--events", str(events), "--strategy", str(strategy), "--out", str(out), *more]
        return CliRunner().invoke(app, ["features", "compute", *options])

    result = compute(small_world, "--lateness", "30m")
    assert result.exit_code == 0, result.output
    assert "30 features (5 published, not reconstructed offline)" in result.output
    written = pl.read_parquet(out)
    expected = offline_features(small_world, starter_specs(), lateness_seconds=1800)
    assert written.columns == expected.columns
    assert written.equals(expected.select(written.columns).cast(written.schema))  # type: ignore[arg-type]
    averages = tmp_path / "averages.yaml"
    averages.write_text(AVERAGES, encoding="utf-8")
    assert compute(small_world, strategy=averages).exit_code == 0
    written = pl.read_parquet(out)
    assert written.schema["avg_7d"] == pl.Float64 and written.schema["per_event"] == pl.Float64
    exact = offline_features(small_world, load_strategy(AVERAGES).features)
    for name in ("avg_7d", "per_event"):  # Decimal objects written as the doubles rules read
        assert written.get_column(name).to_list() == [None if v is None else float(v) for v in exact[name].to_list()]
    bad = compute(tmp_path / "none.csv")
    assert bad.exit_code == 2
    assert "error:" in bad.output and "Traceback" not in bad.output
    late = compute(small_world, "--lateness", "soon")
    assert late.exit_code == 2 and "--lateness" in late.output


# ---------------------------------------------------------------------- offline equals online
EXTRA = [
    FeatureSpec(name="min_amount_24h", entity="account_id", aggregate="min", field="amount", window="24h"),
    FeatureSpec(
        name="max_amount_24h_excl",
        entity="account_id",
        aggregate="max",
        field="amount",
        window="24h",
        include_current=False,
    ),
    FeatureSpec(name="avg_amount_7d", entity="account_id", aggregate="avg", field="amount", window="7d"),
    FeatureSpec(
        name="payee_first_seen_30d", entity="counterparty_id", aggregate="first_seen", window="30d", when=TRANSFERS
    ),
    FeatureSpec(name="since_last_30d", entity="account_id", aggregate="last_seen", window="30d", include_current=False),
    FeatureSpec(name="device_last_1h", entity="device_id", aggregate="last_seen", window="1h"),
    FeatureSpec(name="share_withdrawn", aggregate="ratio", of=["account_withdrawal_amount_24h", "account_amount_24h"]),
]
#: HyperLogLog p=12 (memory.py): 1.6 % standard error; allow three of them above the exact limit
SKETCH_TOLERANCE = 0.05


def test_offline_equals_online_on_a_simulated_stream() -> None:
    """The issue's parity test: over 100,000 simulated events through the online memory engine, one at a
    time, and through offline_features in bulk: the same values for every event and feature."""
    world = simulate(WorldConfig(accounts=17_000, days=6, seed=2026))
    frame = _envelope_frame(world)
    assert frame.height >= 100_000
    specs = starter_specs() + EXTRA
    offline = rows_of(offline_features(frame, specs))

    engine = MemoryFeatureEngine(lateness_seconds=3600)
    engine.declare(specs, Environment(EVENT_DECLARATIONS))
    limit = engine.distinct_exact_limit
    distinct = {s.name for s in specs if s.aggregate == "distinct"}
    mismatches, sketched = [], 0
    for i, body in enumerate(frame.iter_rows(named=True)):
        event = msgspec.convert(envelope(body), Event)  # as parse_event_obj decodes it, without re-encoding
        online = engine.process(engine.prepare(event, event_variables(event)), [specs])[0]
        want = offline[i]
        if online == want:
            continue
        for name in set(online) | set(want):
            a, b = online.get(name), want.get(name)
            if (
                name in distinct
                and a is not None
                and b is not None
                and b > limit
                and abs(a - b) <= SKETCH_TOLERANCE * b
            ):
                sketched += 1
            elif a != b:
                mismatches.append((body["event_id"], name, a, b))
    assert mismatches[:10] == []
    assert sum(1 for r in offline if r.get("device_accounts_7d", 0) > 1) > 100  # the stream has real sharing


def _envelope_frame(world: Any) -> pl.DataFrame:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        write_world(world, Path(directory))
        return read_events(Path(directory))
