"""Replay throughput for a 50-rule strategy, and model inference per event, each beside a baseline measured
in the same run.

- replay: a simulated world decided in bulk by ``replay.engine.decide`` (offline features, bulk CEL, the
  outcome policy); baseline: the same strategy evaluated event by event through its compiled
  ``ExpressionSet`` (rules only, features already computed) on the first 20,000 events.
- inference: one event at a time through the numpy evaluator (``TreeEnsemble.raw_one``) of a 300-tree
  model; baseline: LightGBM's ``Booster.predict`` on one row (``num_threads=1``).

Usage: ``python bench/replay.py [--accounts 20000] [--days 14]``
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import lightgbm
import numpy as np

from riskguard.config import Settings
from riskguard.decision.warnings import WarningCatalogue
from riskguard.models.trees import TreeEnsemble
from riskguard.replay.columns import Columns
from riskguard.replay.engine import decide, device_columns, replay_features
from riskguard.replay.history import load_history
from riskguard.replay.service import compile_for_replay
from riskguard.sim.config import WorldConfig
from riskguard.sim.world import simulate
from riskguard.sim.writer import write_world

STARTER = Path(__file__).parent.parent / "src/riskguard/strategies/starter.yaml"


def fifty_rules(source: str) -> str:
    """The starter strategy cut to its first 50 rules (shadow rules included)."""
    head, rules = source.split("\nrules:\n", 1)
    blocks = ["  - id:" + b for b in rules.split("  - id:")[1:]]
    return head + "\nrules:\n" + "".join(blocks[:50])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--out", type=Path, default=Path("var/bench-replay-world"))
    args = parser.parse_args()
    if not (args.out / "world.json").exists():
        write_world(simulate(WorldConfig(accounts=args.accounts, days=args.days, seed=3)), args.out)
    keys = WarningCatalogue.from_file(Settings.from_env(environ={}).warnings_file).keys()
    strategy = compile_for_replay(fifty_rules(STARTER.read_text(encoding="utf-8")), keys, with_model=False)
    history = load_history(args.out)
    n = len(history.events)
    started, cpu_started = time.perf_counter(), time.process_time()
    decisions = decide(history, strategy)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    t = decisions.timings
    print(
        f"replay, {len(strategy.evaluated)} rules, {len(strategy.features)} features, {n:,} events: "
        f"{n / wall:,.0f} events/s ({wall:.1f} s: features {t['features_s']:.1f} s, stages {t['stages_s']:.1f} s, "
        f"rules {t['rules_s']:.1f} s with {t['rule_evaluations']:,} CEL calls, outcome {t['outcome_s']:.1f} s); "
        f"{n / cpu:,.0f} events per CPU-second; load average {os.getloadavg()[0]:.1f}"
    )
    # baseline: the same rules, one ExpressionSet call per event (features precomputed)
    features = replay_features(history, strategy.features)
    columns = Columns(history.events, features, {s.name: s.cel_type for s in strategy.features})
    device = [v for v in strategy.environment.variables if v.startswith("device.")]
    columns.extra.update(device_columns(columns, device))
    names = [v for v in strategy.environment.variables if not v.startswith(("model.", "lists."))]
    lists = {f"lists.{name}": {} for name in strategy.list_names}
    sample = min(n, 20_000)
    activations = []
    for row in range(sample):
        bindings = dict(lists)
        for name in names:
            column = columns.get(name)
            if column.bound[row]:
                bindings[name] = column.value(row)
        activations.append(bindings)
    started = time.perf_counter()
    for bindings in activations:
        strategy.ruleset.evaluate(bindings)
    base = time.perf_counter() - started
    print(f"  baseline: ExpressionSet per event, rules only, first {sample:,} events: {sample / base:,.0f} events/s")

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50_000, 40))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=len(x)) > 2.5).astype(int)
    params = {"objective": "binary", "num_leaves": 31, "max_depth": 8, "verbose": -1, "num_threads": 2}
    booster = lightgbm.train(params, lightgbm.Dataset(x, y), num_boost_round=300)
    ensemble = TreeEnsemble.from_dump(booster.dump_model())
    rows = x[:2000]
    for label, call in (
        ("numpy evaluator (raw_one)", lambda r: ensemble.raw_one(r)),
        ("baseline: LightGBM predict, 1 row", lambda r: booster.predict(r.reshape(1, -1), num_threads=1)),
    ):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for r in rows:
                call(r)
            best = min(best, (time.perf_counter() - started) / len(rows))
        print(f"inference, {ensemble.n_trees} trees, 40 inputs, {label}: {best * 1e6:.0f} µs per event")


if __name__ == "__main__":
    main()
