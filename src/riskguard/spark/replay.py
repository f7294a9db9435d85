"""A replay's decisions on Spark: the history split into partitions, each decided on an executor with the
in-process replay's own code (``replay.engine.decide``: stages, bulk CEL rules, outcome policy).

What runs where:

- **features** (point-in-time, stateful over the whole stream) are computed once, in-process, exactly as
  the in-process replay computes them (``replay_features``), and travel with the events;
- **everything per event** — the device stage on a throwaway registry, the takeover sequence detector,
  the model, the strategy's rules and the outcome — runs per partition through ``mapInArrow``: each
  partition compiles the strategy from its text and calls ``decide`` on its rows with their features. The
  history is partitioned **by account**, each partition in arrival order: every step is a function of the
  event, its features and (the sequence detector) the account's earlier events, so a partition's
  decisions are the in-process decisions of its rows;
- the **report** is built from the decisions, put back in history order, by ``replay.report.build``.

``SparkDecider`` has the signature of ``engine.decide``, so ``replay.service.run`` takes it as its decider
and writes the same report files as in-process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from riskguard.features.offline_input import ENVELOPE
from riskguard.models.variables import DECLARATIONS as MODEL_DECLARATIONS
from riskguard.replay.engine import Decisions, merged_specs, replay_features
from riskguard.replay.history import History
from riskguard.rules.strategy import CompiledStrategy

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

ROW = "_row"
FEATURE = "f:"


@dataclass(frozen=True)
class _Job:
    """What each partition needs, sent to the executors (plain values only)."""

    source: str
    warning_keys: tuple[str, ...]
    with_model: bool
    model_path: str | None
    lists: dict[str, set[str]]
    feature_schema: dict[str, Any]


def _decide_partition(job: _Job, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    from riskguard.features.offline_input import load_events
    from riskguard.replay.engine import decide
    from riskguard.replay.service import compile_for_replay

    tables = [pl.from_arrow(batch) for batch in batches]
    tables = [t for t in tables if isinstance(t, pl.DataFrame) and t.height]
    if not tables:
        return
    frame = pl.concat(tables).sort(ROW)  # arrival order: the per-account stages are stateful
    strategy = compile_for_replay(job.source, job.warning_keys, with_model=job.with_model)
    model = None
    if job.model_path is not None:
        from riskguard.models.registry import load_model

        model = load_model(job.model_path, None)
    events = load_events(frame.select(ENVELOPE))
    history = History(events, pl.DataFrame())
    features = frame.select(
        [pl.col(FEATURE + name).cast(dtype).alias(name) for name, dtype in job.feature_schema.items()]
    )
    decided = decide(history, strategy, model=model, lists=job.lists, features=features)
    width = decided.results.shape[1]
    results = (
        pa.FixedSizeListArray.from_arrays(pa.array(decided.results.astype(np.int8).ravel()), width)
        if width
        else (pa.array([[] for _ in range(frame.height)], type=pa.list_(pa.int8())))
    )
    model_score = decided.model_score if decided.model_score is not None else np.full(frame.height, np.nan)
    yield pa.RecordBatch.from_arrays(
        [
            pa.array(frame[ROW].to_numpy()),
            pa.array(decided.decision.astype(np.int8)),
            pa.array(decided.score.astype(np.int64)),
            results.cast(pa.list_(pa.int8())),
            pa.array(model_score.astype(np.float64)),
        ],
        names=[ROW, "decision", "score", "results", "model_score"],
    )


class SparkDecider:
    """``engine.decide`` with the per-event work on Spark (see the module docstring)."""

    def __init__(self, spark: SparkSession, warning_keys: tuple[str, ...] | list[str], *, partitions: int = 0) -> None:
        self.spark = spark
        self.warning_keys = tuple(sorted(warning_keys))
        self.partitions = partitions or int(spark.conf.get("spark.sql.shuffle.partitions") or 8)
        self.timings: dict[str, float] = {}

    def __call__(
        self,
        history: History,
        strategy: CompiledStrategy,
        *,
        model: Any | None = None,
        lists: dict[str, set[str]] | None = None,
        lateness_seconds: float = 3600.0,
        features: pl.DataFrame | None = None,
    ) -> Decisions:
        import time

        import pyarrow as pa

        started = time.perf_counter()
        extra = list(model.feature_specs) if model is not None else []
        if features is None:
            features = replay_features(history, merged_specs(strategy, extra), lateness_seconds=lateness_seconds)
        features_s = time.perf_counter() - started
        started = time.perf_counter()
        n = len(history.events)
        table = history.events.frame.select(ENVELOPE).with_columns(pl.Series(ROW, np.arange(n, dtype=np.int64)))
        table = pl.concat([table, features.rename({c: FEATURE + c for c in features.columns})], how="horizontal")
        job = _Job(
            source=strategy.source,
            warning_keys=self.warning_keys,
            with_model=all(name in strategy.environment.variables for name in MODEL_DECLARATIONS),
            model_path=str(Path(model.path).resolve()) if model is not None else None,
            lists={k: set(v) for k, v in (lists or {}).items()},
            feature_schema=dict(features.schema),
        )
        frame = self.spark.createDataFrame(table.to_arrow(compat_level=pl.CompatLevel.oldest()))
        schema = f"{ROW} long, decision byte, score long, results array<byte>, model_score double"
        # by account, in arrival order: every account's whole history in one partition, as the stateful
        # per-account stages (the takeover.* sequence detector) need it
        parts = frame.repartition(self.partitions, "account_id").sortWithinPartitions(ROW)
        out = parts.mapInArrow(lambda batches: _decide_partition(job, batches), schema)
        collected = pl.from_arrow(out.toArrow())
        assert isinstance(collected, pl.DataFrame)
        if collected.height != n:
            raise RuntimeError(f"the Spark replay decided {collected.height} of {n} events")
        collected = collected.sort(ROW)
        width = len(strategy.evaluated)
        results = (
            np.asarray(collected["results"].to_list(), dtype=np.int8).reshape(n, width)
            if n
            else np.zeros((0, width), np.int8)
        )
        model_score = collected["model_score"].to_numpy() if model is not None else None
        _ = pa  # pyarrow is needed by toArrow; imported here so a missing install fails before Spark starts
        return Decisions(
            strategy=strategy,
            event_ids=history.events.column("event_id"),
            decision=collected["decision"].to_numpy().astype(np.int8),
            score=collected["score"].to_numpy().astype(np.int64),
            results=results,
            rule_ids=[r.id for r in strategy.evaluated],
            modes=[r.mode for r in strategy.evaluated],
            model_score=model_score,
            features=features,
            timings={"features_s": features_s, "spark_s": time.perf_counter() - started},
        )
