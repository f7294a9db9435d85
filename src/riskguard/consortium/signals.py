"""Consortium hits are signals, never the only ground for a block.

A strategy breaks that rule when a rule whose condition reads consortium values alone (published
features with a ``consortium.*`` source, or lists named ``consortium_*``) carries ``action: block``, or
when the scores of such rules add up to the block threshold on their own. The gateway refuses to feed a
strategy that breaks it; ``riskguard consortium check-strategy FILE`` shows why.
"""

from __future__ import annotations

import re

from riskguard.rules.strategy import CompiledStrategy

_REFERENCE = re.compile(r"\b(features|lists)\.([a-z][a-z0-9_]*)")
LIST_PREFIX = "consortium_"
SOURCE_PREFIX = "consortium."


def consortium_only_rules(strategy: CompiledStrategy) -> list[str]:
    """Ids of the live rules whose conditions read consortium values and nothing else of the kind."""
    consortium_features = {
        f.name for f in strategy.features if f.aggregate == "published" and (f.source or "").startswith(SOURCE_PREFIX)
    }
    found = []
    for rule in strategy.document.rules:
        if rule.mode != "live":
            continue
        references = set(_REFERENCE.findall(rule.when))
        if not references:
            continue
        if all(
            (kind == "features" and name in consortium_features) or (kind == "lists" and name.startswith(LIST_PREFIX))
            for kind, name in references
        ):
            found.append(rule.id)
    return found


def violations(strategy: CompiledStrategy) -> list[str]:
    rules = {rule.id: rule for rule in strategy.document.rules}
    only = consortium_only_rules(strategy)
    problems = [
        f"rule {rule_id!r} blocks on consortium hits alone; make it review (or add another ground to its condition)"
        for rule_id in only
        if rules[rule_id].action == "block"
    ]
    total = sum(max(rules[rule_id].score, 0) for rule_id in only)
    if only and total >= strategy.document.thresholds.block:
        problems.append(
            f"rules {', '.join(only)} read consortium hits alone and score {total} together, at or above the "
            f"block threshold {strategy.document.thresholds.block}; lower their scores"
        )
    return problems
