"""CEL compilation and evaluation, strategy documents and the outcome policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskguard.config import STARTER_STRATEGY, WARNINGS_CATALOGUE
from riskguard.decision.outcome import outcome
from riskguard.decision.warnings import WarningCatalogue
from riskguard.errors import StrategyError
from riskguard.rules.cel import Environment, EvalError
from riskguard.rules.strategy import RuleSpec, Thresholds, compile_strategy, load_strategy

from conftest import EXAMPLE_STRATEGY

WARNINGS = WarningCatalogue.from_file(WARNINGS_CATALOGUE).keys()


def test_unknown_names_and_type_errors_are_refused_at_compile_time() -> None:
    env = Environment({"event.amount": "double", "features.n": "int", "event.attributes": "map"})
    with pytest.raises(StrategyError, match=r"undeclared reference to 'features\.typo'"):
        env.compile("features.typo > 1", where="rules[0]")
    with pytest.raises(StrategyError, match="no matching overload"):
        env.compile('event.amount > "5000"', where="rules[0]")
    with pytest.raises(StrategyError, match="no matching overload"):
        env.compile("event.amount > 5000", where="rules[0]")  # amounts are doubles: write 5000.0
    with pytest.raises(StrategyError, match="must be a bool"):
        env.compile("features.n + 1", where="rules[0]")
    with pytest.raises(StrategyError, match="Syntax error"):
        env.compile("features.n >", where="rules[0]")


def test_missing_values_are_errors_that_guards_absorb() -> None:
    env = Environment({"event.type": "string", "event.amount": "double", "event.attributes": "map"})
    assert isinstance(env.compile("event.amount > 1.0", where="r").evaluate({"event.type": "login"}), EvalError)
    guarded = env.compile('event.type == "transfer" && event.amount > 1.0', where="r")
    assert guarded.evaluate({"event.type": "login"}) is False
    attribute = env.compile("has(event.attributes.x) && event.attributes.x == 1", where="r")
    assert attribute.evaluate({"event.attributes": {}}) is False
    assert attribute.evaluate({"event.attributes": {"x": 1}}) is True


STARTER = compile_strategy(Path(STARTER_STRATEGY).read_text(encoding="utf-8"), warning_keys=WARNINGS)

values = st.fixed_dictionaries(
    {
        "event.type": st.sampled_from(
            ["transfer", "login", "withdrawal", "signup", "complaint", "payment", "loan_application", "device_bind"]
        ),
        "event.account_id": st.sampled_from(["a1", "a2"]),
        "event.attributes": st.fixed_dictionaries(
            {},
            optional={
                "success": st.booleans(),
                "remark": st.sampled_from(["安全账户", "rent", "refund"]),
                "emulator": st.booleans(),
                "account_age_days": st.integers(0, 30),
            },
        ),
    },
    optional={
        "event.amount": st.floats(0, 1e6),
        "event.phone": st.sampled_from(["13800000000", "13900000000"]),
        **{
            f"features.{f.name}": (st.integers(0, 30) if f.cel_type == "int" else st.floats(0, 3e5))
            for f in STARTER.features
        },
        "lists.blocked_devices": st.sampled_from([{}, {"d1": True}]),
        "event.device_id": st.just("d1"),
    },
)


@settings(max_examples=400, deadline=None)
@given(activation=values)
def test_combined_evaluation_equals_rule_by_rule(activation: dict[str, object]) -> None:
    for name in STARTER.list_names:
        activation.setdefault(f"lists.{name}", {})
    for _ in range(2):  # the second pass runs on the plan the first one made
        combined = STARTER.ruleset.evaluate(activation)
        one_by_one = [member.evaluate(activation) for member in STARTER.ruleset.members]
        assert [r is True for r in combined] == [r is True for r in one_by_one]
        assert [isinstance(r, EvalError) for r in combined] == [isinstance(r, EvalError) for r in one_by_one]


def test_the_starter_strategy_meets_its_size() -> None:
    assert len(STARTER.document.rules) >= 50
    assert len(STARTER.features) >= 20


def test_the_example_strategy_loads() -> None:
    compiled = compile_strategy(EXAMPLE_STRATEGY, warning_keys=WARNINGS)
    assert [r.id for r in compiled.evaluated] == ["blocked_device", "shared_device_large_transfer"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("version: 1", "version: 0"), "positive integer"),
        (("version: 1", "version: one"), "strategy.version: Expected `int`"),
        (("window: 7d", "window: 7 weeks"), "is not a window"),
        (("window: 7d", "window: 365d"), "1m to 180d"),
        (("window: 1h,", "window: 30s,"), "1m to 180d"),
        (("aggregate: sum", "aggregate: median"), "Invalid enum value 'median'"),
        (("entity: device_id, aggregate", "entity: colour, aggregate"), "not a key field"),
        (("warning: scam_transfer", "warning: nonexistent"), "no warning 'nonexistent'"),
        (("id: shared_device_large_transfer", "id: blocked_device"), "used twice"),
        (("block: 90", "block: 30"), "challenge <= review <= block"),
        (("action: review", "action: freeze"), "Invalid enum value 'freeze'"),
        (("mode: live", "mode: sometimes"), "Invalid enum value 'sometimes'"),
        (("features.device_accounts_7d >= 3", 'features.device_accounts_7d >= "three"'), "no matching overload"),
        (("'event.device_id in lists.blocked_devices'", "'event.device_id in lists.unknown'"), "undeclared"),
        (("reason: Device is on the block list", "reason: ' '"), "say why"),
        (("name: payments", "name: 'pay ments'"), "strategy.name"),
        (("when: 'event.type == \"transfer\"'}", "when: 'event.amount'}"), "must be a bool"),
    ],
)
def test_bad_strategies_are_refused_with_a_clear_message(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in EXAMPLE_STRATEGY
    with pytest.raises(StrategyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_strategy(EXAMPLE_STRATEGY.replace(old, new, 1), warning_keys=WARNINGS)


def test_yaml_errors_are_strategy_errors() -> None:
    with pytest.raises(StrategyError, match="not valid YAML"):
        load_strategy("name: [")
    with pytest.raises(StrategyError, match="mapping"):
        load_strategy("- a\n- b\n")


def rule(action: str | None, score: int) -> RuleSpec:
    return RuleSpec(id="r", when="true", reason="x", action=action, score=score)  # type: ignore[arg-type]


def test_outcome_policy() -> None:
    t = Thresholds(block=90, review=60, challenge=40)
    assert outcome([], t) == ("allow", 0)
    assert outcome([rule(None, 45)], t) == ("challenge", 45)
    assert outcome([rule(None, 30), rule(None, 35)], t) == ("review", 65)
    assert outcome([rule("challenge", 10), rule(None, 85)], t) == ("block", 95)  # thresholds can raise an action
    assert outcome([rule("block", 0)], t) == ("block", 0)
    assert outcome([rule("allow", 0), rule(None, 95)], t) == ("allow", 95)  # allow-list suppresses thresholds
    assert outcome([rule("allow", 0), rule("block", 100)], t) == ("block", 100)  # but never an explicit block
    assert outcome([rule(None, 100), rule(None, 100)], t) == ("block", 100)  # clamped
    assert outcome([rule(None, -50), rule(None, 20)], t) == ("allow", 0)


def with_features(*lines: str) -> str:
    extra = "".join(f"  - {line}\n" for line in lines)
    return EXAMPLE_STRATEGY.replace("lists:\n", extra + "lists:\n", 1)


def test_every_aggregate_declares_and_type_checks() -> None:
    source = with_features(
        "{name: min_amount_24h, entity: account_id, aggregate: min, field: amount, window: 24h}",
        "{name: max_amount_24h, entity: account_id, aggregate: max, field: amount, window: 24h}",
        "{name: avg_amount_7d, entity: account_id, aggregate: avg, field: amount, window: 7d}",
        "{name: first_seen_device_30d, entity: device_id, aggregate: first_seen, window: 30d}",
        "{name: since_last_login_30d, entity: account_id, aggregate: last_seen, window: 30d, include_current: false}",
        "{name: amount_vs_average, aggregate: ratio, of: [account_amount_24h, avg_amount_7d]}",
    ).replace(
        "features.device_accounts_7d >= 3'",
        "features.device_accounts_7d >= 3 && features.amount_vs_average > 5.0 && features.since_last_login_30d > 60.0'",
    )
    compiled = compile_strategy(source, warning_keys=WARNINGS)
    assert compiled.environment.variables["features.amount_vs_average"] == "double"
    assert compiled.environment.variables["features.first_seen_device_30d"] == "double"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{name: r, aggregate: ratio, of: [account_amount_24h, nope]}", "'nope' is not a (non-ratio) feature"),
        ("{name: r, aggregate: ratio, of: [account_amount_24h]}", "names two features"),
        ("{name: r, aggregate: ratio, of: [a, b], window: 1h}", "a ratio takes only `of`"),
        ("{name: m, entity: account_id, aggregate: min, window: 1h}", "min needs a field"),
        ("{name: m, entity: account_id, aggregate: max, field: device_id, window: 1h}", "max works on amount"),
        ("{name: s, entity: account_id, aggregate: first_seen, field: amount, window: 1h}", "takes no field"),
        ("{name: s, entity: account_id, aggregate: last_seen}", "give a window"),
        ("{name: s, aggregate: count, window: 1h}", "name at least one event field"),
        ("{name: s, entity: account_id, aggregate: count, window: 1h, of: [a, b]}", "only a ratio takes `of`"),
    ],
)
def test_bad_feature_declarations(line: str, message: str) -> None:
    with pytest.raises(StrategyError, match=re.escape(message)):
        compile_strategy(with_features(line), warning_keys=WARNINGS)
