"""Pipeline stages. Each one reads and extends the decision context; later capabilities (models,
graph, devices) are new stages that declare their CEL variables, not changes to the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from riskguard.events.schema import IDENTIFIER_FIELDS, Event
from riskguard.features.engine import FeatureEngine
from riskguard.rules.cel import EvalError
from riskguard.rules.strategy import CompiledStrategy, RuleSpec


@dataclass
class Context:
    """Everything known about one event while it is being decided."""

    event: Event
    event_vars: dict[str, Any]
    live: CompiledStrategy
    shadow: CompiledStrategy | None
    observe: bool = True  # fold the event into feature state (False for a dry run)
    features: dict[str, Any] = field(default_factory=dict)
    shadow_features: dict[str, Any] = field(default_factory=dict)
    lists: dict[str, dict[str, bool]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # variables contributed by later stages
    results: list[bool | EvalError] = field(default_factory=list)
    fired_live: list[RuleSpec] = field(default_factory=list)
    fired_shadow: list[RuleSpec] = field(default_factory=list)
    shadow_result: dict[str, Any] | None = None
    degradations: list[dict[str, str]] = field(default_factory=list)
    compile_ms: dict[str, float] = field(default_factory=dict)  # one-off plan learning, outside budgets
    floor: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    stage_reasons: list[dict[str, Any]] = field(default_factory=list)  # reason entries stages add (model codes)

    def activation(self, features: dict[str, Any], lists: dict[str, dict[str, bool]]) -> dict[str, Any]:
        bindings = dict(self.event_vars)
        for name, value in features.items():
            bindings["features." + name] = value if isinstance(value, int) else float(value)
        for name, members in lists.items():
            bindings["lists." + name] = members
        bindings.update(self.extra)
        return bindings


class Stage(Protocol):
    name: str

    def run(self, ctx: Context) -> None: ...


class FeatureStage:
    """Computes the live and shadow strategies' features, then folds the event into their state."""

    name = "features"

    def __init__(self, engine: FeatureEngine) -> None:
        self.engine = engine

    def run(self, ctx: Context) -> None:
        before = self.engine.compile_seconds
        prepared = self.engine.prepare(ctx.event, ctx.event_vars)
        ctx.compile_ms[self.name] = (self.engine.compile_seconds - before) * 1000
        if ctx.shadow is not None and ctx.shadow.features:
            ctx.features, ctx.shadow_features = self.engine.process(
                prepared, [ctx.live.features, ctx.shadow.features], observe=ctx.observe
            )
        else:
            (ctx.features,) = self.engine.process(prepared, [ctx.live.features], observe=ctx.observe)


class ListIndex:
    """In-memory membership of every named list: {list: {value: expires_at or None}}."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, datetime | None]] = {}

    def replace(self, entries: dict[str, dict[str, datetime | None]]) -> None:
        self.entries = entries

    def members(self, names: tuple[str, ...], event: Event, now: datetime) -> dict[str, dict[str, bool]]:
        """For each list, the event's identifier values that are on it (unexpired).

        A rule's ``event.device_id in lists.blocked_devices`` then asks about the event's own values,
        which is what list rules do; the lists themselves never enter the CEL activation whole.
        """
        values = [v for v in (getattr(event, f) for f in IDENTIFIER_FIELDS) if v is not None]
        result: dict[str, dict[str, bool]] = {}
        for name in names:
            entries = self.entries.get(name)
            hits: dict[str, bool] = {}
            if entries:
                for value in values:
                    if value in entries:
                        expires = entries[value]
                        if expires is None or expires > now:
                            hits[value] = True
            result[name] = hits
        return result


class ListStage:
    name = "lists"

    def __init__(self, index: ListIndex) -> None:
        self.index = index

    def run(self, ctx: Context) -> None:
        names = ctx.live.list_names
        if ctx.shadow is not None:
            names = tuple(dict.fromkeys(names + ctx.shadow.list_names))
        ctx.lists = self.index.members(names, ctx.event, datetime.now(UTC))


class RuleStage:
    """Evaluates the live strategy's live and shadow rules in one CEL call."""

    name = "rules"

    def run(self, ctx: Context) -> None:
        strategy = ctx.live
        before = strategy.ruleset.compile_seconds
        ctx.results = strategy.ruleset.evaluate(ctx.activation(ctx.features, ctx.lists))
        ctx.compile_ms[self.name] = (strategy.ruleset.compile_seconds - before) * 1000
        for rule, result in zip(strategy.evaluated, ctx.results, strict=True):
            if result is True:
                (ctx.fired_live if rule.mode == "live" else ctx.fired_shadow).append(rule)


class ShadowStage:
    """Evaluates a whole challenger strategy on the same event; recorded, never enforced."""

    name = "shadow"

    def run(self, ctx: Context) -> None:
        from riskguard.decision.outcome import outcome

        strategy = ctx.shadow
        if strategy is None:
            return
        before = strategy.ruleset.compile_seconds
        results = strategy.ruleset.evaluate(ctx.activation(ctx.shadow_features, ctx.lists))
        ctx.compile_ms[self.name] = (strategy.ruleset.compile_seconds - before) * 1000
        fired = [r for r, ok in zip(strategy.evaluated, results, strict=True) if ok is True and r.mode == "live"]
        decision, score = outcome(fired, strategy.document.thresholds)
        ctx.shadow_result = {
            "name": strategy.name,
            "version": strategy.version,
            "decision": decision,
            "score": score,
            "rules": [rule.id for rule in fired],
        }
