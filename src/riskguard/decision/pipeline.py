"""The decision path, top-down: features → lists → rules → shadow → outcome → warning.

Each stage runs under its policy (config.StagePolicy): a stage that raises is skipped — fail-open
decides without it, fail-closed also floors the decision at ``closed_action`` — and a stage that
overruns its budget is reported; either way the decision says ``degraded: true`` and which stage.
Recording (store/writer.py) and idempotency live in app.py, around this pure function of state.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from riskguard.config import StagePolicy
from riskguard.decision.outcome import more_severe, outcome
from riskguard.decision.stages import Context, FeatureStage, ListStage, RuleStage, ShadowStage, Stage
from riskguard.decision.warnings import WarningCatalogue
from riskguard.events.schema import Event
from riskguard.rules.activation import event_variables
from riskguard.rules.cel import EvalError
from riskguard.rules.strategy import SEVERITY, CompiledStrategy

log = logging.getLogger("riskguard.decision")


class Pipeline:
    def __init__(
        self,
        stages: list[Stage],
        policies: dict[str, StagePolicy],
        warnings: WarningCatalogue,
        *,
        closed_action: str = "review",
        default_locale: str = "en",
    ) -> None:
        self.stages = stages
        self.policies = policies
        self.warnings = warnings
        self.closed_action = closed_action
        self.default_locale = default_locale

    @classmethod
    def standard(
        cls,
        features: FeatureStage,
        lists: ListStage,
        policies: dict[str, StagePolicy],
        warnings: WarningCatalogue,
        **options: Any,
    ) -> Pipeline:
        return cls([features, lists, RuleStage(), ShadowStage()], policies, warnings, **options)

    def run(
        self, event: Event, live: CompiledStrategy, shadow: CompiledStrategy | None, *, observe: bool = True
    ) -> tuple[dict[str, Any], Context]:
        started = time.perf_counter()
        ctx = Context(event=event, event_vars=event_variables(event), live=live, shadow=shadow, observe=observe)
        for stage in self.stages:
            self._run_stage(stage, ctx)
        body = self._outcome(ctx)
        body["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return body, ctx

    def _run_stage(self, stage: Stage, ctx: Context) -> None:
        policy = self.policies.get(stage.name) or StagePolicy(budget_ms=50.0, failure="open")
        t0 = time.perf_counter()
        try:
            stage.run(ctx)
        except Exception as exc:
            log.exception("stage %s failed", stage.name)
            ctx.degradations.append(
                {"stage": stage.name, "reason": f"failed: {type(exc).__name__}", "policy": policy.failure}
            )
            if policy.failure == "closed":
                ctx.floor = more_severe(ctx.floor, self.closed_action)
            return
        finally:
            ctx.timings[stage.name] = (time.perf_counter() - t0) * 1000
        elapsed = ctx.timings[stage.name] - ctx.compile_ms.get(stage.name, 0.0)
        if elapsed > policy.budget_ms:
            ctx.degradations.append(
                {"stage": stage.name, "reason": f"over budget: {elapsed:.1f} ms > {policy.budget_ms:g} ms"}
            )

    def _outcome(self, ctx: Context) -> dict[str, Any]:
        strategy = ctx.live
        decision, score = outcome(ctx.fired_live, strategy.document.thresholds)
        reasons = [{"code": r.reason_code, "rule": r.id, "message": r.reason} for r in ctx.fired_live]
        if ctx.floor is not None and SEVERITY[ctx.floor] > SEVERITY[decision]:
            decision = ctx.floor
        for item in ctx.degradations:
            if item.get("policy") == "closed":
                reasons.append(
                    {
                        "code": f"DEGRADED_{item['stage'].upper()}",
                        "rule": None,
                        "message": f"the {item['stage']} stage failed; decided fail-closed",
                    }
                )
        reasons.extend(ctx.stage_reasons)
        warning = None
        locale = ctx.event.locale or self.default_locale
        if decision != "allow":
            ranked = sorted(
                (r for r in ctx.fired_live if r.warning),
                key=lambda r: (SEVERITY.get(r.action or "allow", 0), r.score),
                reverse=True,
            )
            if ranked:
                warning = self.warnings.render(ranked[0].warning, locale)  # type: ignore[arg-type]
        shadow: dict[str, Any] = {
            "rules": [{"id": r.id, "action": r.action, "score": r.score} for r in ctx.fired_shadow],
        }
        if ctx.fired_shadow:
            with_shadow, shadow_score = outcome(ctx.fired_live + ctx.fired_shadow, strategy.document.thresholds)
            shadow["decision_with_shadow_rules"] = with_shadow
            shadow["score_with_shadow_rules"] = shadow_score
        if ctx.shadow_result is not None:
            shadow["strategy"] = ctx.shadow_result
        return {
            "event_id": ctx.event.event_id,
            "decision": decision,
            "score": score,
            "reasons": reasons,
            "warning": warning,
            "strategy": {"name": strategy.name, "version": strategy.version},
            "shadow": shadow,
            "degraded": bool(ctx.degradations),
            "degradations": ctx.degradations,
            "decided_at": datetime.now(UTC).isoformat(),
        }


def explain(ctx: Context) -> dict[str, Any]:
    """The feature values and rule outcomes behind a decision, stored with it in compact form.

    Only matched and failed rules are listed; ``expand_rules`` turns this into one entry per rule of the
    strategy version (versions are immutable, so the full list is recoverable from the document).
    """
    matched: list[str] = []
    errors: dict[str, str] = {}
    for rule, result in zip(ctx.live.evaluated, ctx.results, strict=False):
        if result is True:
            matched.append(rule.id)
        elif isinstance(result, EvalError):
            errors[rule.id] = result.message
    return {
        "features": {k: (v if isinstance(v, int) else str(v)) for k, v in ctx.features.items()},
        "missing_features": [s.name for s in ctx.live.features if s.name not in ctx.features],
        "lists": {name: sorted(members) for name, members in ctx.lists.items() if members},
        "matched": matched,
        "errors": errors,
        "stage_ms": {k: round(v, 3) for k, v in ctx.timings.items()},
        "variables": dict(ctx.extra),  # what later stages bound for rules (device.*, ...)
    }


def expand_rules(stored: dict[str, Any], rules: list[tuple[str, str]]) -> dict[str, Any]:
    """The stored explanation with ``rules``: every rule of the strategy, in order, and its outcome."""
    matched = set(stored.get("matched", ()))
    errors = stored.get("errors", {})
    outcomes = []
    for rule_id, mode in rules:
        if mode == "off":
            outcomes.append({"id": rule_id, "mode": mode, "matched": None})
            continue
        entry: dict[str, Any] = {"id": rule_id, "mode": mode, "matched": rule_id in matched}
        if rule_id in errors:
            entry["error"] = errors[rule_id]
        outcomes.append(entry)
    view = {k: v for k, v in stored.items() if k not in ("matched", "errors")}
    view["rules"] = outcomes
    return view
