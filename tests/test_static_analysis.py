"""What the rule engine knows from a condition's text (rules/static.py)."""

from __future__ import annotations

import pytest

from riskguard.rules.activation import EVENT_DECLARATIONS
from riskguard.rules.static import analyse, variables_of

DECLARED = {**EVENT_DECLARATIONS, "features.n": "int", "lists.blocked": "set"}


@pytest.mark.parametrize(
    ("source", "guards", "guard_only", "strict"),
    [
        ('event.type == "transfer"', [("event.type", {"transfer"})], True, True),
        ('event.type == "transfer" && event.amount > 5.0', [("event.type", {"transfer"})], False, False),
        ('(event.type == "a" || event.type == "b") && features.n > 1', [("event.type", {"a", "b"})], False, False),
        ('event.type in ["a", "b"] && features.n > 1', [("event.type", {"a", "b"})], False, False),
        ('"login" == event.type', [("event.type", {"login"})], True, True),
        ('event.type == "a" || event.type == "b"', [("event.type", {"a", "b"})], True, False),
        ('event.type == "a" && features.n > 1 || event.amount > 1.0', [], False, False),
        ('event.type == "a" ? features.n > 1 : false', [], False, False),
        ("event.device_id in lists.blocked", [], False, True),
        ('has(event.attributes.x) && event.attributes.x == "a && b"', [], False, False),
        ('event.type == "a\\"b" && features.n > 1', [], False, False),  # escapes: not recognised
        ('event.channel == "app" || event.type == "login"', [], False, False),  # two variables
    ],
)
def test_guards_and_strictness(source: str, guards: list[tuple[str, set[str]]], guard_only: bool, strict: bool) -> None:
    facts = analyse(source, DECLARED)
    assert [(name, set(values)) for name, values in facts.guards] == guards
    assert facts.guard_only is guard_only
    assert facts.strict is strict


def test_variables_are_the_longest_declared_prefixes_outside_strings() -> None:
    source = 'event.attributes.remark.contains("event.phone") && features . n > 1 && event.device_id in lists.blocked'
    assert variables_of(source, DECLARED) == {"event.attributes", "features.n", "event.device_id", "lists.blocked"}
