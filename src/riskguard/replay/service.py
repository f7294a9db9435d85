"""``replay``: a history, one strategy (and model), optionally a second to compare; report files."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from riskguard.errors import StrategyError
from riskguard.models.inputs import matrix
from riskguard.models.registry import ModelRegistry, load_model
from riskguard.models.serving import LoadedModel
from riskguard.models.variables import DECLARATIONS as MODEL_DECLARATIONS
from riskguard.replay import html, report
from riskguard.replay.engine import Decisions, decide
from riskguard.replay.history import History
from riskguard.rules.strategy import CompiledStrategy, compile_strategy


def compile_for_replay(source: str, warning_keys: Collection[str], *, with_model: bool) -> CompiledStrategy:
    """A strategy compiled as publishing would, with ``model.*`` declared when a model is given."""
    return compile_strategy(
        source, warning_keys=warning_keys, extra_declarations=MODEL_DECLARATIONS if with_model else None
    )


def model_for(strategy: CompiledStrategy, ref: str | None, registry: ModelRegistry | None) -> LoadedModel | None:
    """The model a replay uses: ``ref`` (a directory or NAME[@N]) or the one the strategy names."""
    if ref is None and strategy.document.model is not None:
        named = strategy.document.model
        ref = named.name if named.version is None else f"{named.name}@{named.version}"
    if ref is None:
        return None
    model = load_model(ref, registry)
    declared = {s.name: s.signature for s in strategy.features}
    for spec in model.feature_specs:
        if spec.name in declared and declared[spec.name] != spec.signature:
            raise StrategyError(
                f"model {model.label} reads a feature {spec.name!r} that {strategy.name} declares differently"
            )
    return model


def label_of(strategy: CompiledStrategy, model: LoadedModel | None) -> str:
    text = f"{strategy.name} v{strategy.version}"
    return text if model is None else f"{text} + {model.label}"


def run(
    history: History,
    strategies: list[tuple[CompiledStrategy, LoadedModel | None]],
    *,
    out: Path | None = None,
    lists: dict[str, set[str]] | None = None,
    lateness_seconds: float = 3600.0,
    report_since_us: int | None = None,
    decider: Callable[..., Decisions] = decide,
) -> tuple[dict[str, Any], list[Decisions]]:
    """Decides the history with each (strategy, model) and builds the report (written under ``out``) on
    the events from ``report_since_us`` (the earlier ones only warm up the features). ``decider``: how the
    decisions are computed (``engine.decide`` in-process; ``spark.replay.SparkDecider`` on Spark)."""
    results: list[tuple[str, Decisions]] = []
    for strategy, model in strategies:
        decisions = decider(history, strategy, model=model, lists=lists, lateness_seconds=lateness_seconds)
        results.append((label_of(strategy, model), decisions))
    if report_since_us is not None:
        keep = history.events.t_us >= report_since_us
        history = history.take(keep)
        results = [(label, decisions.take(keep)) for label, decisions in results]
    drift_inputs: dict[str, np.ndarray] = {}
    timezone = "UTC"
    last_model = strategies[-1][1]
    last = results[-1][1]
    if last_model is not None and last.features is not None:
        timezone = last_model.feature_set.timezone
        x = matrix(last_model.feature_set, last.features, history.events)
        names = last_model.input_names
        for item in last_model.card.get("importance", [])[:5]:
            if item["input"] in names:
                drift_inputs[item["input"]] = x[:, names.index(item["input"])]
    document = report.build(history, results, drift_inputs=drift_inputs, timezone=timezone)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (out / "report.html").write_text(html.render(document), encoding="utf-8")
        frame = {"event_id": history.events.column("event_id")}
        for index, (_label, decisions) in enumerate(results):
            suffix = "" if index == 0 else "_vs"
            frame[f"decision{suffix}"] = pl.Series([report.OUTCOMES[i] for i in decisions.decision.tolist()])
            frame[f"score{suffix}"] = pl.Series(decisions.score)
            if decisions.model_score is not None:
                frame[f"model_score{suffix}"] = pl.Series(decisions.model_score)
        pl.DataFrame(frame).write_parquet(out / "decisions.parquet")
    return document, [d for _, d in results]
