"""Strategy documents: versioned YAML with declared features, lists, rules and score thresholds.

``load_strategy`` parses and checks a document; ``compile_strategy`` type-checks every CEL condition
against the variables the pipeline's stages declare, so a strategy that names an unknown feature or
compares a number with a string is refused before it can be published.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import yaml

from riskguard.accountsec.variables import DECLARATIONS as ACCOUNTSEC_DECLARATIONS
from riskguard.device.variables import DECLARATIONS as DEVICE_DECLARATIONS
from riskguard.errors import StrategyError
from riskguard.events.schema import IDENTIFIER_FIELDS
from riskguard.features.spec import FeatureSpec, check_spec
from riskguard.rules.activation import EVENT_DECLARATIONS
from riskguard.rules.cel import Environment, ExpressionSet

ACTIONS = ("allow", "challenge", "review", "block")
SEVERITY = {"allow": 0, "challenge": 1, "review": 2, "block": 3}
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
RULE_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ListSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    entity: str
    kind: Literal["block", "allow", "watch"] = "block"
    description: str = ""


class RuleSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: str
    when: str
    reason: str
    action: Literal["allow", "challenge", "review", "block"] | None = None
    score: int = 0
    code: str | None = None
    warning: str | None = None
    mode: Literal["live", "shadow", "off"] = "live"
    description: str = ""

    @property
    def reason_code(self) -> str:
        return self.code or self.id.upper()


class Thresholds(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    block: int = 90
    review: int = 60
    challenge: int = 40


class ModelRef(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The model a strategy's rules read as ``model.*`` (docs/models.md); ``shadow`` models are scored and
    recorded, never read by rules (``NAME`` or ``NAME@VERSION``)."""

    name: str
    version: int | None = None
    shadow: list[str] = []


class StrategyDocument(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    version: int
    rules: list[RuleSpec]
    description: str = ""
    features: list[FeatureSpec] = []
    lists: list[ListSpec] = []
    thresholds: Thresholds = Thresholds()
    model: ModelRef | None = None


@dataclass
class CompiledStrategy:
    """A checked strategy, ready to evaluate: its rules compiled into one expression set."""

    document: StrategyDocument
    source: str
    checksum: str
    environment: Environment
    evaluated: list[RuleSpec]  # live and shadow rules, in document order
    ruleset: ExpressionSet
    list_names: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.document.name

    @property
    def version(self) -> int:
        return self.document.version

    @property
    def features(self) -> list[FeatureSpec]:
        return self.document.features

    @property
    def lists(self) -> list[ListSpec]:
        return self.document.lists


def _convert_error(exc: msgspec.ValidationError) -> StrategyError:
    text = str(exc)
    if " - at `$" in text:
        reason, path = text.rsplit(" - at `$", 1)
        return StrategyError(f"strategy{path.rstrip('`')}: {reason}")
    return StrategyError(f"strategy: {text}")


def load_strategy(source: str) -> StrategyDocument:
    """Parses YAML text into a strategy document (structure only; see compile_strategy for CEL)."""
    try:
        raw = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise StrategyError(f"strategy is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise StrategyError("strategy must be a YAML mapping with name, version, rules, ...")
    try:
        document = msgspec.convert(raw, StrategyDocument)
    except msgspec.ValidationError as exc:
        raise _convert_error(exc) from None
    _check_document(document)
    return document


def _check_document(doc: StrategyDocument) -> None:
    if not NAME.match(doc.name):
        raise StrategyError("strategy.name: letters, digits, '.', '_' and '-', starting with a letter")
    if doc.version < 1:
        raise StrategyError("strategy.version: must be a positive integer")
    if not doc.rules:
        raise StrategyError("strategy.rules: at least one rule")
    t = doc.thresholds
    if not (0 < t.challenge <= t.review <= t.block <= 100):
        raise StrategyError("strategy.thresholds: need 0 < challenge <= review <= block <= 100")
    names: set[str] = set()
    for index, spec in enumerate(doc.features):
        check_spec(spec, index)
        if spec.name in names:
            raise StrategyError(f"features[{index}]: a feature named {spec.name!r} is declared twice")
        names.add(spec.name)
    stateful = {spec.name for spec in doc.features if not spec.derived}
    for index, spec in enumerate(doc.features):
        for part in spec.of or ():
            if part not in stateful:
                raise StrategyError(
                    f"features[{index}] ({spec.name}).of: {part!r} is not a (non-ratio) feature of this strategy"
                )
    list_names: set[str] = set()
    for index, spec in enumerate(doc.lists):
        if not RULE_ID.match(spec.name):
            raise StrategyError(f"lists[{index}].name: lower-case letters, digits and _, starting with a letter")
        if spec.name in list_names:
            raise StrategyError(f"lists[{index}]: the list {spec.name!r} is declared twice")
        if spec.entity not in IDENTIFIER_FIELDS:
            raise StrategyError(f"lists[{index}].entity: {spec.entity!r} is not one of {', '.join(IDENTIFIER_FIELDS)}")
        list_names.add(spec.name)
    ids: set[str] = set()
    for index, rule in enumerate(doc.rules):
        where = f"rules[{index}] ({rule.id})"
        if not RULE_ID.match(rule.id):
            raise StrategyError(f"{where}.id: lower-case letters, digits and _, starting with a letter")
        if rule.id in ids:
            raise StrategyError(f"{where}: the rule id {rule.id!r} is used twice")
        ids.add(rule.id)
        if not -100 <= rule.score <= 100:
            raise StrategyError(f"{where}.score: must be between -100 and 100")
        if rule.action is None and rule.score == 0:
            raise StrategyError(f"{where}: a rule needs an action, a score, or both")
        if not rule.reason.strip():
            raise StrategyError(f"{where}.reason: say why the rule fires; it is shown to analysts")


def declarations(document: StrategyDocument, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every variable a strategy's rules may use: event fields, its features and lists, the standard
    stages' variables (``device.*``) and any extra stage's."""
    names = dict(EVENT_DECLARATIONS)
    names.update(DEVICE_DECLARATIONS)
    names.update(ACCOUNTSEC_DECLARATIONS)  # takeover.* and account.* (accountsec stage)
    for spec in document.features:
        names[f"features.{spec.name}"] = spec.cel_type
    for spec in document.lists:
        names[f"lists.{spec.name}"] = "set"
    if document.model is not None:
        from riskguard.models.variables import DECLARATIONS as MODEL_DECLARATIONS

        names.update(MODEL_DECLARATIONS)
    if extra:
        names.update(extra)
    return names


def compile_strategy(
    source: str,
    *,
    warning_keys: Collection[str],
    extra_declarations: Mapping[str, str] | None = None,
) -> CompiledStrategy:
    document = load_strategy(source)
    environment = Environment(declarations(document, extra_declarations))
    event_env = Environment(EVENT_DECLARATIONS)
    for index, spec in enumerate(document.features):
        if spec.when:
            event_env.compile(spec.when, where=f"features[{index}] ({spec.name}).when")
    for index, rule in enumerate(document.rules):
        if rule.warning is not None and rule.warning not in warning_keys:
            raise StrategyError(
                f"rules[{index}] ({rule.id}).warning: no warning {rule.warning!r} in the "
                f"catalogue (known: {', '.join(sorted(warning_keys))})"
            )
        environment.compile(rule.when, where=f"rules[{index}] ({rule.id}).when")
    evaluated = [rule for rule in document.rules if rule.mode != "off"]
    ruleset = environment.compile_set([(rule.when, rule.id) for rule in evaluated])
    return CompiledStrategy(
        document=document,
        source=source,
        checksum=hashlib.sha256(source.encode()).hexdigest(),
        environment=environment,
        evaluated=evaluated,
        ruleset=ruleset,
        list_names=tuple(spec.name for spec in document.lists),
    )


def as_dict(document: StrategyDocument) -> dict[str, Any]:
    return msgspec.to_builtins(document)
