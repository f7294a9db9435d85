"""Models: training on point-in-time features, the numpy evaluator against LightGBM, calibration, the card,
the registry, and serving in the live pipeline (model.score, reason codes, shadow models)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskguard.app import RiskGuard
from riskguard.config import Settings
from riskguard.decision.warnings import WarningCatalogue
from riskguard.errors import StrategyError
from riskguard.events.schema import Event
from riskguard.models.inputs import load_feature_set, matrix, vector
from riskguard.models.serving import LoadedModel
from riskguard.models.train import train, write
from riskguard.models.trees import TreeEnsemble
from riskguard.replay.engine import replay_features
from riskguard.replay.history import load_history
from riskguard.rules.strategy import compile_strategy
from riskguard.sim.config import WorldConfig
from riskguard.sim.world import simulate
from riskguard.sim.writer import envelope, read_events, write_world

STARTER = (Path(__file__).parent.parent / "src/riskguard/strategies/starter.yaml").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("modelworld")
    write_world(simulate(WorldConfig(accounts=600, days=6, seed=5)), out)
    return out


@pytest.fixture(scope="module")
def trained(world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, object]:
    history = load_history(world)
    feature_set = load_feature_set(STARTER.split("\nlists:")[0] + "\ntimezone: Asia/Shanghai\n")
    result = train(history, feature_set, name="fraud", version=1, rounds=60)
    directory = write(result, tmp_path_factory.mktemp("models") / "fraud" / "v1")
    return LoadedModel.load(directory), result


def test_training_writes_a_card_with_window_metrics_and_importance(trained: tuple[LoadedModel, object]) -> None:
    model, _ = trained
    card = model.card
    assert card["types"] == ["payment", "transfer", "withdrawal"]
    train_part, valid_part = card["data"]["train"], card["data"]["validation"]
    assert train_part["to"] <= valid_part["from"], "validation is later in time than training"
    assert train_part["frauds"] > 0 and valid_part["events"] > 0
    assert 0.5 < card["metrics"]["auc"] <= 1.0
    assert card["params"]["scale_pos_weight"] > 1, "class imbalance weighted"
    assert card["importance"][0]["gain"] >= card["importance"][-1]["gain"]
    assert (model.path / "card.md").read_text().startswith("# Model card: fraud version 1")
    assert model.input_names[-3:] == ["type=payment", "type=transfer", "type=withdrawal"]


def test_the_numpy_evaluator_equals_lightgbm_and_one_row_equals_many(
    world: Path, trained: tuple[LoadedModel, object]
) -> None:
    model, result = trained
    history = load_history(world)
    x = matrix(model.feature_set, replay_features(history, model.feature_specs), history.events)[:3000]
    x[::11, 0] = np.nan
    ours = model.ensemble.raw(x)
    theirs = result.booster.predict(x, raw_score=True)  # type: ignore[attr-defined]
    assert np.abs(ours - theirs).max() < 1e-9
    single = np.array([model.ensemble.raw_one(x[i]) for i in range(200)])
    assert (single == ours[:200]).all()
    scores = model.calibrate(ours)
    assert ((scores >= 0) & (scores <= 100)).all()
    order = np.argsort(ours)
    assert (np.diff(scores[order]) >= 0).all(), "calibration keeps the ranking"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.floats(-5, 5), st.just(float("nan")), st.just(0.0)), min_size=3, max_size=3),
    st.integers(0, 2**31),
)
def test_quickscorer_walks_a_tree_like_the_tree(row: list[float], seed: int) -> None:
    """A random tree with NaN, Zero and None missing rules: exit leaf equals walking the tree."""
    rng = np.random.default_rng(seed)

    def node(depth: int) -> dict:
        if depth == 0 or rng.random() < 0.25:
            return {"leaf_value": float(rng.normal())}
        return {
            "split_feature": int(rng.integers(0, 3)),
            "threshold": float(np.round(rng.normal(), 1)),
            "decision_type": "<=",
            "default_left": bool(rng.random() < 0.5),
            "missing_type": str(rng.choice(["None", "Zero", "NaN"])),
            "left_child": node(depth - 1),
            "right_child": node(depth - 1),
        }

    trees = [node(4) for _ in range(3)]

    def walk(n: dict, x: list[float]) -> float:
        while "leaf_value" not in n:
            value = x[n["split_feature"]]
            if np.isnan(value) and n["missing_type"] != "NaN":
                value = 0.0
            if (n["missing_type"] == "Zero" and abs(value) <= 1e-35) or (
                n["missing_type"] == "NaN" and np.isnan(value)
            ):
                go_left = n["default_left"]
            else:
                go_left = value <= n["threshold"]
            n = n["left_child"] if go_left else n["right_child"]
        return n["leaf_value"]

    ensemble = TreeEnsemble.from_dump({"max_feature_idx": 2, "tree_info": [{"tree_structure": t} for t in trees]})
    expected = 0.0
    for tree in trees:
        expected += walk(tree, row)
    assert ensemble.raw(np.array([row]))[0] == expected
    assert ensemble.raw_one(np.array(row)) == expected


def strategy_with_model(shadow: bool = False) -> str:
    reference = "model: {name: fraud, shadow: [fraud@1]}\n" if shadow else "model: {name: fraud}\n"
    return (
        STARTER.replace("version: 5\n", "version: 8\n" + reference, 1)
        + """
  - id: model_high_risk
    when: 'model.available && model.score >= 0.0'
    action: review
    score: 60
    reason: The fraud model scores this event
"""
    )


def test_a_strategy_reads_model_score_and_shows_reason_codes(
    world: Path, trained: tuple[LoadedModel, object], tmp_path: Path
) -> None:
    model, _ = trained
    keys = WarningCatalogue.from_file(Settings.from_env(environ={}).warnings_file).keys()
    with pytest.raises(StrategyError):  # model.score without a model reference
        compile_strategy(
            STARTER + "\n  - {id: m, when: 'model.score > 1.0', score: 10, reason: m}\n", warning_keys=keys
        )
    guard = RiskGuard(Settings.from_env(environ={}, database_url=f"sqlite:///{tmp_path}/m.db"), background=False)
    try:
        with pytest.raises(Exception, match="no model"):
            guard.publish(strategy_with_model(), actor="test")
        guard.models.register("fraud", 1, model.path, model.card, "test")
        assert guard.models.versions("fraud")[0]["version"] == 1
        guard.publish(strategy_with_model(shadow=True), actor="test")
        events = read_events(world)
        transfer = next(r for r in events.iter_rows(named=True) if r["type"] == "transfer")
        login = next(r for r in events.iter_rows(named=True) if r["type"] == "login")
        result = guard.decide(envelope(transfer), with_explain=True)
        variables = result["explain"]["variables"]
        assert 0.0 <= variables["model.score"] <= 100.0 and variables["model.available"] is True
        assert variables["model.shadow"] == {"fraud@1": pytest.approx(variables["model.score"], abs=1e-3)}
        codes = [r for r in result["reasons"] if r["rule"] is None and r["code"].startswith("MODEL_")]
        assert "model_high_risk" in {r["rule"] for r in result["reasons"]}
        assert 1 <= len(codes) <= 3 and all(r["contribution"] > 0 for r in codes)
        other = guard.decide(envelope(login), with_explain=True)
        assert other["explain"]["variables"]["model.available"] is False
        assert "model.score" not in other["explain"]["variables"]
    finally:
        guard.close()


RELATIVE = """
features:
  - {name: account_avg_7d, entity: account_id, aggregate: avg, field: amount, window: 7d}
  - {name: account_out_7d, entity: account_id, aggregate: sum, field: amount, window: 7d, include_current: false}
inputs: [amount, amount/account_avg_7d, amount/account_out_7d, hour]
"""


def test_amount_relative_to_a_feature_is_the_same_online_and_in_bulk(world: Path) -> None:
    feature_set = load_feature_set(RELATIVE).with_types(["payment"])
    assert feature_set.input_names() == [
        "account_avg_7d", "account_out_7d", "amount", "amount/account_avg_7d", "amount/account_out_7d", "hour"
    ]  # fmt: skip
    history = load_history(world)
    features = replay_features(history, feature_set.model_features)
    x = matrix(feature_set, features, history.events)
    amount, average, earlier = x[:, 2], x[:, 0], x[:, 1]
    usable = ~np.isnan(amount) & (average > 0)
    assert usable.sum() > 100
    assert np.allclose(x[usable, 3], amount[usable] / average[usable], rtol=1e-12)
    assert np.isnan(x[earlier == 0, 4]).all() and np.isnan(x[np.isnan(amount), 3]).all()
    rows = read_events(world).to_dicts()
    for index in [*np.flatnonzero(usable)[:40], *np.flatnonzero(earlier == 0)[:10]]:
        assert rows[index]["event_id"] == history.events.column("event_id")[int(index)]
        event = msgspec.convert(envelope(rows[index]), Event, strict=False)
        values = {name: features.get_column(name)[int(index)] for name in ("account_avg_7d", "account_out_7d")}
        assert np.array_equal(vector(feature_set, values, event)[0], x[index], equal_nan=True)
    for bad in ("amount/nothing", "amount/", "speed"):
        with pytest.raises(StrategyError, match="inputs"):
            load_feature_set(RELATIVE.replace("amount/account_out_7d", bad))
