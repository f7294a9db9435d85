"""The pipeline stages of models: ``model`` (before rules) binds ``model.*`` from the model the live
strategy references and scores its shadow models; ``model_reasons`` (after rules) adds the model's top
three reason codes to the decision's ``reasons`` when a fired live rule read the model.

The strategy's ``model:`` names the model (``NAME``, ``NAME@VERSION``); the model's features must be
declared by the strategy (same names), so the scores use the values the feature stage computed. Models are
loaded from the registry once per version. A model that cannot be loaded or scored fails the stage, which
the pipeline handles under the stage's policy (fail-open by default: decided without the model, marked
degraded).
"""

from __future__ import annotations

import re
from typing import Any

from riskguard.decision.stages import Context
from riskguard.errors import StrategyError
from riskguard.models.registry import ModelRegistry
from riskguard.models.serving import LoadedModel
from riskguard.rules.strategy import CompiledStrategy

_READS_MODEL = re.compile(r"\bmodel\s*\.")


def reads_model(source: str) -> bool:
    return _READS_MODEL.search(source) is not None


def check_features(model: LoadedModel, strategy: CompiledStrategy) -> None:
    """The strategy must declare every feature the model reads, with the same definition."""
    declared = {spec.name: spec.signature for spec in strategy.features}
    for spec in model.feature_specs:
        if declared.get(spec.name) != spec.signature:
            state = "declares it differently" if spec.name in declared else "does not declare it"
            raise StrategyError(
                f"model {model.label} reads the feature {spec.name!r}; strategy {strategy.name} v{strategy.version} "
                f"{state} (copy the declaration from the model's features.yaml)"
            )


def check_model(registry: ModelRegistry, strategy: CompiledStrategy) -> None:
    """Refuses a strategy whose referenced models are not registered or read undeclared features."""
    ref = strategy.document.model
    if ref is None:
        return
    main = ref.name if ref.version is None else f"{ref.name}@{ref.version}"
    for label in (main, *ref.shadow):
        check_features(registry.load(label), strategy)


class ModelStage:
    name = "model"

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self._checked: set[tuple[int, str]] = set()

    def model_of(self, strategy: CompiledStrategy, ref: str) -> LoadedModel:
        model = self.registry.load(ref)
        key = (id(strategy), model.label)
        if key not in self._checked:
            check_features(model, strategy)
            self._checked.add(key)
        return model

    def run(self, ctx: Context) -> None:
        ref = ctx.live.document.model
        if ref is None:
            return
        label = ref.name if ref.version is None else f"{ref.name}@{ref.version}"
        model = self.model_of(ctx.live, label)
        found = model.score_event(ctx.features, ctx.event)
        ctx.extra["model.available"] = found is not None
        ctx.extra["model.name"] = model.name
        ctx.extra["model.version"] = model.version
        if found is not None:
            ctx.extra["model.score"] = found[0]
            ctx.extra["_model_inputs"] = (model, found[1])
        shadow: dict[str, float | None] = {}
        for other in ref.shadow:
            candidate = self.model_of(ctx.live, other)
            scored = candidate.score_event(ctx.features, ctx.event)
            shadow[candidate.label] = None if scored is None else round(scored[0], 4)
        if shadow:
            ctx.extra["model.shadow"] = shadow


class ModelReasonStage:
    """After the rules: the model's reason codes, when a fired live rule read ``model.*``."""

    name = "model_reasons"

    def run(self, ctx: Context) -> None:
        inputs: tuple[Any, Any] | None = ctx.extra.pop("_model_inputs", None)
        if inputs is None:
            return
        if any(reads_model(rule.when) for rule in ctx.fired_live):
            model, x = inputs
            ctx.stage_reasons.extend(model.reasons(x))
