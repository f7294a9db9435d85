"""The bulk replay decides exactly as the live pipeline: every event of a simulated world, decided one at
a time by a RiskGuard (memory features, labels recorded when they became known) and in bulk by replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from riskguard.app import RiskGuard
from riskguard.config import Settings
from riskguard.replay.engine import OUTCOMES, decide
from riskguard.replay.history import load_history
from riskguard.replay.service import compile_for_replay
from riskguard.sim.config import WorldConfig
from riskguard.sim.world import simulate
from riskguard.sim.writer import envelope, write_world

STARTER = (Path(__file__).parent.parent / "src/riskguard/strategies/starter.yaml").read_text(encoding="utf-8")
FRAUD_LABEL = """'event.type == "label" && event.attributes.label == "fraud"'"""
LABEL_FEATURES = f"""features:
  - {{name: account_frauds_30d, entity: account_id, aggregate: count, window: 30d, when: {FRAUD_LABEL}}}
  - {{name: device_fraud_value_7d, entity: device_id, aggregate: sum, field: amount, window: 7d, when: {FRAUD_LABEL}}}
"""
LABEL_RULES = """
  - id: known_fraud_account
    when: 'features.account_frauds_30d >= 1'
    action: review
    score: 60
    reason: The account has confirmed frauds in the last 30 days
  - id: device_fraud_value
    when: 'features.device_fraud_value_7d > 1000.0'
    score: 30
    reason: Confirmed fraud value on this device in 7 days
"""


def label_aware_strategy() -> str:
    source = STARTER.replace("version: 5\n", "version: 7\n", 1).replace("features:\n", LABEL_FEATURES, 1)
    return source + LABEL_RULES


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replayworld")
    write_world(simulate(WorldConfig(accounts=300, days=3, seed=21)), out)
    return out


def test_replay_equals_the_live_pipeline_event_by_event(world: Path, tmp_path: Path) -> None:
    source = label_aware_strategy()
    history = load_history(world)
    settings = Settings.from_env(environ={}, database_url=f"sqlite:///{tmp_path}/live.db")
    guard = RiskGuard(settings, background=False)
    try:
        guard.publish(source, actor="test")
        strategy = compile_for_replay(source, guard.warnings.keys(), with_model=False)
        replayed = decide(history, strategy)
        labels = history.labels.sort("labelled_at")
        label_rows = labels.to_dicts()
        label_us = labels.get_column("labelled_at").dt.epoch("us").to_numpy()
        watermark = np.maximum.accumulate(history.events.t_us)
        rows = pl.concat([pl.read_parquet(p) for p in sorted((world / "events").glob("*.parquet"))]).to_dicts()
        given = 0
        mismatches = []
        label_rules_fired = 0
        for index, row in enumerate(rows):
            due = int(np.searchsorted(label_us, watermark[index], side="right"))
            if due > given:
                guard.add_labels(
                    [
                        {
                            "event_id": item["event_id"],
                            "entity_kind": item["entity_kind"],
                            "entity_value": item["entity_value"],
                            "label": item["label"],
                            "source": "test",
                            "typology": item["typology"],
                            "labelled_at": item["labelled_at"],
                            "note": None,
                        }
                        for item in label_rows[given:due]
                    ]
                )
                given = due
            live = guard.decide(envelope(row))
            fired = sorted(r["rule"] for r in live["reasons"] if r["rule"])
            decision, score = OUTCOMES[int(replayed.decision[index])], int(replayed.score[index])
            expected = (decision, score, sorted(replayed.fired_rules(index)))
            if (live["decision"], live["score"], fired) != expected:
                mismatches.append((row["event_id"], (live["decision"], live["score"], fired), expected))
            label_rules_fired += bool({"known_fraud_account", "device_fraud_value"} & set(fired))
        assert given > 0, "labels became known during the stream"
        assert label_rules_fired > 0, "the label-aware rules fired on later events"
        assert not mismatches, mismatches[:5]
        assert len(rows) > 2000
    finally:
        guard.close()
