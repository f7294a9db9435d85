"""Decides a whole history with a strategy (and optionally a model), in isolated state.

The decision is the production one, stage by stage, computed column-wise:

- **features**: ``offline_features`` over the history (with label events where they became known), which
  equals the memory engine event by event (tests/test_features_offline.py);
- **lists**: the given snapshot (default: empty — nothing of the live installation is read);
- **device**: the production ``DeviceService.evaluate`` on a throwaway in-memory registry, once per
  distinct (device present, attributes) for unsigned events and per event for signed ones;
- **model**: ``models.serving`` scores in bulk with the same evaluator the live stage uses;
- **rules**: the strategy's own compiled CEL, in bulk (bulk.py);
- **outcome**: ``decision.outcome.outcome`` once per distinct set of fired live rules.

Nothing touches the database, the live feature state or the published values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

from riskguard.accountsec.replay import accountsec_columns
from riskguard.decision.outcome import outcome
from riskguard.device.reputation import FLAGS
from riskguard.device.tables import device_keys
from riskguard.features.label_events import admits_labels
from riskguard.features.offline import offline_features
from riskguard.features.spec import FeatureSpec
from riskguard.replay.bulk import ERROR, TRUE, BulkRules, factorize
from riskguard.replay.columns import Column, Columns, inverse_codes
from riskguard.replay.events import event_at
from riskguard.replay.history import History, with_label_events
from riskguard.rules.strategy import CompiledStrategy

OUTCOMES = ("allow", "challenge", "review", "block")


@dataclass
class Decisions:
    """One strategy's decisions over a history (row order)."""

    strategy: CompiledStrategy
    event_ids: pl.Series
    decision: np.ndarray  # index into OUTCOMES
    score: np.ndarray
    results: np.ndarray  # events × evaluated rules: 1 matched, 0 not, 2 error
    rule_ids: list[str]
    modes: list[str]
    model_score: np.ndarray | None = None  # NaN where the model did not score
    features: pl.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def take(self, rows: np.ndarray) -> Decisions:
        """The decisions of some events only (``rows``: a boolean mask over the history)."""
        return Decisions(
            strategy=self.strategy,
            event_ids=self.event_ids.filter(pl.Series(rows)),
            decision=self.decision[rows],
            score=self.score[rows],
            results=self.results[rows],
            rule_ids=self.rule_ids,
            modes=self.modes,
            model_score=None if self.model_score is None else self.model_score[rows],
            features=None if self.features is None else self.features.filter(pl.Series(rows)),
            timings=self.timings,
        )

    def matched(self, rule: int) -> np.ndarray:
        return self.results[:, rule] == TRUE

    def decision_names(self) -> list[str]:
        return [OUTCOMES[int(i)] for i in self.decision]

    def fired_rules(self, row: int) -> list[str]:
        return [r for j, r in enumerate(self.rule_ids) if self.results[row, j] == TRUE and self.modes[j] == "live"]

    def errored(self, row: int) -> list[str]:
        return [r for j, r in enumerate(self.rule_ids) if self.results[row, j] == ERROR]


def merged_specs(strategy: CompiledStrategy, extra: list[FeatureSpec]) -> list[FeatureSpec]:
    """The strategy's features plus ``extra`` ones (a model's), each name once."""
    specs = {s.name: s for s in strategy.features}
    for spec in extra:
        specs.setdefault(spec.name, spec)
    return list(specs.values())


def replay_features(history: History, specs: list[FeatureSpec], *, lateness_seconds: float = 3600.0) -> pl.DataFrame:
    """Point-in-time feature values per history event (row order), label events folded where known."""
    labelled = any(admits_labels(s.when) for s in specs if s.stateful)
    if labelled and history.labels.height:
        stream, origin = with_label_events(history)
        frame = offline_features(stream, specs, lateness_seconds=lateness_seconds)
        return frame.filter(pl.Series(origin >= 0))
    return offline_features(history.events.frame, specs, lateness_seconds=lateness_seconds)


def device_columns(columns: Columns, names: list[str]) -> dict[str, Column]:
    """``device.*`` from the production device service over an empty, throwaway registry."""
    from riskguard.device.service import DeviceService

    if not names:
        return {}
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    device_keys.create(engine)
    service = DeviceService(engine)
    try:
        events = columns.events
        attr_inverse, attr_dicts = columns.attributes()
        device = events.column("device_id")
        has_device = device.is_not_null().to_numpy()
        # an unsigned event on an empty registry is judged by whether it names a device and by the client
        # flags among its attributes (device/reputation.py); a signed one is evaluated on its own
        flags = [tuple(d.get(f) is True for f in FLAGS) for d in attr_dicts]
        flag_codes, _ = inverse_codes(flags)
        signed = np.array(["device_signature" in d for d in attr_dicts], dtype=bool)[attr_inverse]
        code = flag_codes[attr_inverse] * 2 + has_device
        code = np.where(signed, -1 - np.arange(len(events)), code)
        rows, inverse = factorize(code.reshape(-1, 1))
        values = [service.evaluate(event_at(events, int(r)), observe=False) for r in rows]
    finally:
        service.close()
        engine.dispose()
    return {name: Column.from_distinct(inverse, [v[name] for v in values], numeric=True) for name in names}


def decide(
    history: History,
    strategy: CompiledStrategy,
    *,
    model: Any | None = None,
    lists: dict[str, set[str]] | None = None,
    lateness_seconds: float = 3600.0,
    features: pl.DataFrame | None = None,
) -> Decisions:
    """The strategy's decision for every event of the history."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    extra_specs = list(model.feature_specs) if model is not None else []
    if features is None:
        features = replay_features(history, merged_specs(strategy, extra_specs), lateness_seconds=lateness_seconds)
    timings["features_s"] = time.perf_counter() - started
    types = {s.name: s.cel_type for s in strategy.features}
    columns = Columns(history.events, features, types, lists=lists or {})
    declared = strategy.environment.variables
    t0 = time.perf_counter()
    columns.extra.update(device_columns(columns, [n for n in declared if n.startswith("device.")]))
    columns.extra.update(accountsec_columns(columns, list(declared)))  # takeover.*, account.* (accountsec/replay.py)
    model_score = None
    if model is not None:
        model_columns, model_score = model.columns(columns, features)
        columns.extra.update(model_columns)
    else:
        columns.extra.update(absent_model_columns(declared, len(columns)))
    timings["stages_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bulk = BulkRules(strategy)
    results = bulk.run(columns)
    timings["rules_s"] = time.perf_counter() - t0
    timings["rule_evaluations"] = bulk.evaluations
    t0 = time.perf_counter()
    decision, score = outcomes(strategy, results)
    timings["outcome_s"] = time.perf_counter() - t0
    return Decisions(
        strategy=strategy,
        event_ids=history.events.column("event_id"),
        decision=decision,
        score=score,
        results=results,
        rule_ids=[r.id for r in strategy.evaluated],
        modes=[r.mode for r in strategy.evaluated],
        model_score=model_score,
        features=features,
        timings=timings,
    )


def absent_model_columns(declared: dict[str, str], n: int) -> dict[str, Column]:
    """``model.*`` where no model is given: unbound, as in a live installation without one."""
    names = [name for name in declared if name.startswith("model.")]
    return {name: Column(np.zeros(n, bool), np.full(n, -1, np.int64), lambda _i: None) for name in names}


def outcomes(strategy: CompiledStrategy, results: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The outcome policy, called once per distinct set of fired live rules."""
    live = np.array([r.mode == "live" for r in strategy.evaluated], dtype=bool)
    fired = (results == TRUE) & live
    n = len(results)
    if n == 0:
        return np.zeros(0, np.int8), np.zeros(0, np.int64)
    words = [
        fired[:, k : k + 62].astype(np.int64) @ (np.int64(1) << np.arange(min(62, fired.shape[1] - k), dtype=np.int64))
        for k in range(0, fired.shape[1], 62)
    ] or [np.zeros(n, np.int64)]
    first, inverse = factorize(np.stack(words, axis=1))
    unique = fired[first]
    decisions = np.zeros(len(unique), dtype=np.int8)
    scores = np.zeros(len(unique), dtype=np.int64)
    rules = strategy.evaluated
    for k, mask in enumerate(unique):
        chosen = [rule for rule, on in zip(rules, mask.tolist(), strict=True) if on]
        name, value = outcome(chosen, strategy.document.thresholds)
        decisions[k] = OUTCOMES.index(name)
        scores[k] = value
    return decisions[inverse], scores[inverse]
