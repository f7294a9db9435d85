"""The outcome policy: fired rules and their summed score → allow / challenge / review / block.

1. The score is the sum of the fired live rules' scores, clamped to 0..100.
2. If any fired live rule carries an action other than ``allow``, the most severe of those actions
   is a floor for the decision.
3. If a live ``allow`` rule fired (an allow-list), the score thresholds are not applied: the decision
   is that floor, or ``allow``.
4. Otherwise the decision is the more severe of the floor and the score against the thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

from riskguard.rules.strategy import SEVERITY, RuleSpec, Thresholds


def score_of(rules: Sequence[RuleSpec]) -> int:
    return max(0, min(100, sum(rule.score for rule in rules)))


def threshold_action(score: int, thresholds: Thresholds) -> str:
    if score >= thresholds.block:
        return "block"
    if score >= thresholds.review:
        return "review"
    if score >= thresholds.challenge:
        return "challenge"
    return "allow"


def more_severe(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if SEVERITY[a] >= SEVERITY[b] else b


def outcome(fired: Sequence[RuleSpec], thresholds: Thresholds) -> tuple[str, int]:
    score = score_of(fired)
    floor: str | None = None
    allow_listed = False
    for rule in fired:
        if rule.action == "allow":
            allow_listed = True
        elif rule.action is not None:
            floor = more_severe(floor, rule.action)
    if allow_listed:
        return floor or "allow", score
    return more_severe(floor, threshold_action(score, thresholds)) or "allow", score
