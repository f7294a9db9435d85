"""What every feature back end shares: declarations resolved into a plan, the per-event preparation
(time, filters, keys, contributions), and the step from a back end's window aggregates to the values
rules read (adding the current event, published values and ratios).

A back end implements ``_exchange``: for one event, the aggregate of each declared feature over its read
range (the event itself excluded), folding the event into state in the same step — on Redis, in one round
trip. The semantics are those of features/reference.py; the conformance suite holds every back end to it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from riskguard.events.schema import Event
from riskguard.features.label_events import LABEL_TYPE, admits_labels
from riskguard.features.published import PublishedIndex
from riskguard.features.spec import FeatureSpec
from riskguard.features.values import (
    MICROS,
    amount_units,
    average,
    entity_key,
    field_token,
    micros,
    seconds_between,
    units_amount,
)
from riskguard.rules.cel import Environment, ExpressionSet

#: Kinds of state, one per aggregate; the numbers are what the Redis script receives.
KIND_CODES = {"count": 1, "sum": 2, "avg": 3, "min": 4, "max": 5, "first_seen": 6, "last_seen": 7, "distinct": 8}
DEFAULT_DISTINCT_EXACT_LIMIT = 1024


class Feature:
    """One stateful declaration (its signature), as a back end maintains it."""

    __slots__ = ("entity", "filter", "g_us", "include_current", "index", "kind", "spec", "takes", "width")

    def __init__(self, spec: FeatureSpec, index: int, entity: int, filter_index: int | None) -> None:
        self.spec = spec
        self.index = index  # position among the engine's features
        self.kind = spec.aggregate
        self.entity = entity  # position among the engine's entity tuples
        self.filter = filter_index
        self.g_us = spec.granularity_seconds * MICROS
        self.width = spec.buckets  # window length in buckets
        self.include_current = spec.include_current
        # what an event contributes: 1 (an occurrence), 2 (its amount in units), 3 (its field's token)
        self.takes = 2 if spec.aggregate in ("sum", "min", "max", "avg") else 3 if spec.aggregate == "distinct" else 1


class Prepared(NamedTuple):
    """What every step needs of one event, worked out once."""

    event: Event
    t_us: int
    keys: list[str | None]  # per entity tuple
    items: list[Any]  # per feature: the event's contribution, None when it adds nothing


class FeatureEngine(ABC):
    """The shared plan; subclasses keep the state."""

    def __init__(
        self,
        *,
        lateness_seconds: float = 3600.0,
        published: PublishedIndex | None = None,
        distinct_exact_limit: int = DEFAULT_DISTINCT_EXACT_LIMIT,
    ) -> None:
        self.lateness = lateness_seconds
        self.lateness_us = int(lateness_seconds * MICROS)
        self.published = published or PublishedIndex()
        self.distinct_exact_limit = distinct_exact_limit
        self.features: list[Feature] = []
        self._entities: list[tuple[str, ...]] = []
        self._filters: ExpressionSet | None = None
        self._filter_sources: list[str] = []
        self._binding: dict[int, tuple[Sequence[FeatureSpec], Any]] = {}
        self.late_events = 0
        self.duplicate_events = 0

    # ------------------------------------------------------------------ declarations
    @property
    def max_window_seconds(self) -> int:
        return max((f.spec.window_seconds for f in self.features), default=0)

    @property
    def compile_seconds(self) -> float:
        return 0.0 if self._filters is None else self._filters.compile_seconds

    def declare(self, specs: Iterable[FeatureSpec], event_env: Environment) -> list[FeatureSpec]:
        """Makes the engine maintain ``specs`` (kept with their state if declared before, under any name).

        Returns the stateful specs that are new, whose state must be backfilled from the event log.
        """
        specs = list(specs)
        wanted = {spec.signature: spec for spec in specs if spec.stateful}
        old = {f.spec.signature: f for f in self.features}
        new = [spec for sig, spec in wanted.items() if sig not in old]
        sources = list(dict.fromkeys(spec.when for spec in wanted.values() if spec.when))
        entities = list(dict.fromkeys(spec.entity_fields for spec in specs if spec.entity_fields))
        features = [
            Feature(
                spec,
                index,
                entities.index(spec.entity_fields),
                sources.index(spec.when) if spec.when else None,
            )
            for index, spec in enumerate(wanted.values())
        ]
        filters = event_env.compile_set([(s, f"feature filter {s!r}") for s in sources])
        self._redeclare(features, [old.get(f.spec.signature) for f in features])
        self.features = features
        self._entities = entities
        self._filter_sources = sources
        self._filters = filters
        self._binding = {}
        return new

    @abstractmethod
    def _redeclare(self, features: list[Feature], previous: list[Feature | None]) -> None:
        """Carries state over: ``previous[i]`` is the old declaration of ``features[i]`` (None: new)."""

    # ------------------------------------------------------------------ per event
    def prepare(self, event: Event, event_vars: dict[str, Any]) -> Prepared:
        matches: list[bool] = []
        if self._filter_sources and self._filters is not None:
            matches = [r is True for r in self._filters.evaluate(event_vars)]
        keys = [entity_key(event, fields) for fields in self._entities]
        units = None if event.amount is None else amount_units(event.amount)
        tokens: dict[str, str | None] = {}
        items: list[Any] = []
        for feature in self.features:
            if keys[feature.entity] is None or (feature.filter is not None and not matches[feature.filter]):
                items.append(None)
            elif event.type == LABEL_TYPE and not admits_labels(feature.spec.when):
                items.append(None)  # label events count only where a feature asks for them
            elif feature.takes == 1:
                items.append(1)
            elif feature.takes == 2:
                items.append(units)
            else:
                field = feature.spec.field or ""
                if field not in tokens:
                    tokens[field] = field_token(event, field)
                items.append(tokens[field])
        return Prepared(event, micros(event.occurred_at), keys, items)

    def process(
        self, prepared: Prepared, strategies: Sequence[Sequence[FeatureSpec]], *, observe: bool = True
    ) -> list[dict[str, Any]]:
        """The values of each strategy's features for this event (read before the event is folded in),
        then, when ``observe``, the event folded into state: one step (one round trip on Redis)."""
        probes = [
            item if feature.kind == "distinct" and feature.include_current else None
            for feature, item in zip(self.features, prepared.items, strict=True)
        ]
        aggregates, duplicate = self._exchange(prepared, probes, observe)
        return [self._values(prepared, aggregates, duplicate, specs) for specs in strategies]

    def compute(self, prepared: Prepared, specs: Sequence[FeatureSpec]) -> dict[str, Any]:
        """The values of ``specs`` for the event, state unchanged."""
        return self.process(prepared, [specs], observe=False)[0]

    def observe(self, prepared: Prepared) -> None:
        """Folds the event into state (no values wanted)."""
        self._exchange(prepared, [None] * len(self.features), True)

    @abstractmethod
    def _exchange(self, prepared: Prepared, probes: list[Any], fold: bool) -> tuple[list[Any], bool]:
        """Per feature, the aggregate of folded state over the event's read range, without the event
        (``distinct``: the count including ``probes[i]`` unless the event is a duplicate); then folds the
        event when ``fold`` and it is neither late nor a duplicate. Returns (aggregates, duplicate).

        Aggregates: count → int; sum → units; avg → (units, n); min, max → units or None; first_seen,
        last_seen → µs or None; distinct → int; anything (ignored) for a feature whose key the event lacks.
        """

    @abstractmethod
    def retract(self, event: Event, event_vars: dict[str, Any]) -> None:
        """Undoes ``observe``: the event's decision could not be recorded, so it never happened."""

    @abstractmethod
    def backfill(self, specs: Iterable[FeatureSpec], events: Iterable[tuple[Event, dict[str, Any]]]) -> int:
        """Folds logged events (in arrival order) into the state of ``specs`` only; returns how many."""

    # ------------------------------------------------------------------ values
    def _values(
        self, prepared: Prepared, aggregates: list[Any], duplicate: bool, specs: Sequence[FeatureSpec]
    ) -> dict[str, Any]:
        bound, published, ratios = self._bound(specs)
        values: dict[str, Any] = {}
        t_us = prepared.t_us
        keys = prepared.keys
        for name, feature in bound:
            if keys[feature.entity] is None:
                continue  # the event lacks the entity: the feature is unknown, not zero
            aggregate = aggregates[feature.index]
            item = None if duplicate or not feature.include_current else prepared.items[feature.index]
            value = finish(feature.kind, aggregate, item, t_us)
            if value is not None:
                values[name] = value
        for name, source, index in published:
            key = prepared.keys[index]
            if key is not None:
                found = self.published.get(source, key)
                if found is not None:
                    values[name] = found
        for name, numerator, denominator in ratios:
            top, bottom = values.get(numerator), values.get(denominator)
            if top is not None and bottom:
                values[name] = Decimal(top) / Decimal(bottom)
        return values

    def _bound(self, specs: Sequence[FeatureSpec]) -> tuple[list[Any], list[Any], list[Any]]:
        """A strategy's feature list resolved once per declaration."""
        cached = self._binding.get(id(specs))
        if cached is not None and cached[0] is specs:
            return cached[1]
        by_signature = {f.spec.signature: f for f in self.features}
        bound = [(spec.name, by_signature[spec.signature]) for spec in specs if spec.stateful]
        published = [
            (spec.name, spec.source, self._entities.index(spec.entity_fields))
            for spec in specs
            if spec.aggregate == "published"
        ]
        ratios = [(spec.name, spec.of[0], spec.of[1]) for spec in specs if spec.derived and spec.of]
        self._binding[id(specs)] = (specs, (bound, published, ratios))
        return bound, published, ratios


def finish(kind: str, aggregate: Any, item: Any, t_us: int) -> Any:
    """A feature's value from its state aggregate and the current event's contribution (None: none)."""
    match kind:
        case "count":
            return aggregate + (item is not None)
        case "distinct":
            return aggregate
        case "sum":
            return units_amount(aggregate + (item or 0))
        case "avg":
            units, n = aggregate
            if item is not None:
                units, n = units + item, n + 1
            return average(units, n) if n else None
        case "min":
            best = aggregate if item is None else (item if aggregate is None else min(aggregate, item))
            return None if best is None else units_amount(best)
        case "max":
            best = aggregate if item is None else (item if aggregate is None else max(aggregate, item))
            return None if best is None else units_amount(best)
        case "first_seen":
            first = aggregate if item is None else (t_us if aggregate is None else min(aggregate, t_us))
            return None if first is None else seconds_between(t_us, first)
        case "last_seen":
            if item is not None:
                return 0.0
            return None if aggregate is None else seconds_between(t_us, aggregate)
    raise AssertionError(kind)
