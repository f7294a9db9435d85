"""The embedded feature engine: windowed count, sum and distinct per entity, in process memory.

State is rebuilt at start-up by replaying the durable event log over the longest window (the log is
the source of truth, so a crash loses nothing), and each key's history is trimmed to its window as it
is touched, so memory stays bounded by the traffic inside the windows. Windows slide on event time
(``occurred_at``): the window of an event at ``t`` is ``(t - w, t]``; events may arrive out of order.
The full feature engine (more aggregates, Redis, offline parity) builds on this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from riskguard.events.schema import Event
from riskguard.features.published import PublishedIndex
from riskguard.features.spec import FeatureSpec
from riskguard.rules.cel import Environment, ExpressionSet


def _key(event: Event, fields: tuple[str, ...]) -> Any:
    if len(fields) == 1:
        return getattr(event, fields[0])
    values = tuple(getattr(event, f) for f in fields)
    return None if any(v is None for v in values) else values


def _field_value(event: Event, field: str) -> Any:
    if field.startswith("attributes."):
        value = event.attributes.get(field[len("attributes.") :])
        return value if isinstance(value, (str, int, bool)) else (None if value is None else str(value))
    return getattr(event, field)


def _insert(stamps: array[float], ts: float) -> int:
    """Inserts ``ts`` keeping ``stamps`` sorted (appending in the usual in-order case); returns its index."""
    if not stamps or stamps[-1] <= ts:
        stamps.append(ts)
        return len(stamps) - 1
    i = bisect_right(stamps, ts)
    stamps.insert(i, ts)
    return i


def _discard(stamps: array[float], ts: float) -> None:
    i = bisect_left(stamps, ts)
    if i < len(stamps) and stamps[i] == ts:
        del stamps[i]


class _Aggregate(ABC):
    """One declared feature's state: key → time-sorted history within the window.

    Timestamps live in ``array('d')``: compact, and not tracked by Python's garbage collector, whose
    full collections would otherwise walk every key of every feature (pauses of hundreds of ms).
    """

    __slots__ = ("entity_index", "fields", "filter_index", "series", "spec", "window")

    def __init__(self, spec: FeatureSpec, filter_index: int | None) -> None:
        self.spec = spec
        self.fields = spec.entity_fields
        self.window = float(spec.window_seconds)
        self.filter_index = filter_index
        self.entity_index = 0
        self.series: dict[Any, Any] = {}

    def contribution(self, event: Event) -> Any:
        return 1

    @abstractmethod
    def value(self, key: Any, ts: float, current: Any | None) -> Any:
        """The aggregate over ``(ts - window, ts]`` for ``key``, plus ``current``'s contribution if given."""

    @abstractmethod
    def add(self, key: Any, ts: float, contribution: Any, horizon: float) -> None:
        """Folds one event in; history older than ``horizon`` may be forgotten."""

    @abstractmethod
    def remove(self, key: Any, ts: float, contribution: Any) -> None:
        """Takes back one contribution made by ``add`` (a decision whose recording failed)."""


class _Count(_Aggregate):
    """key → array of event times."""

    __slots__ = ()

    def value(self, key: Any, ts: float, current: Any | None) -> int:
        stamps = self.series.get(key)
        n = 0
        if stamps:
            hi = len(stamps) if stamps[-1] <= ts else bisect_right(stamps, ts)
            n = hi - bisect_right(stamps, ts - self.window)
        return n + (1 if current is not None else 0)

    def add(self, key: Any, ts: float, contribution: Any, horizon: float) -> None:
        stamps = self.series.get(key)
        if stamps is None:
            stamps = self.series[key] = array("d")
        _insert(stamps, ts)
        if stamps[0] < horizon:
            del stamps[: bisect_right(stamps, horizon)]

    def remove(self, key: Any, ts: float, contribution: Any) -> None:
        stamps = self.series.get(key)
        if stamps:
            _discard(stamps, ts)


class _Amounts(_Aggregate):
    """key → (array of event times, list of exact amounts in the same order): sum, min, max, avg."""

    __slots__ = ()

    def contribution(self, event: Event) -> Any:
        return event.amount

    def window_amounts(self, key: Any, ts: float) -> list[Decimal]:
        state = self.series.get(key)
        if not state or not state[0]:
            return []
        stamps, amounts = state
        hi = len(stamps) if stamps[-1] <= ts else bisect_right(stamps, ts)
        lo = bisect_right(stamps, ts - self.window)
        return amounts[lo:hi] if hi > lo else []

    def add(self, key: Any, ts: float, contribution: Any, horizon: float) -> None:
        state = self.series.get(key)
        if state is None:
            state = self.series[key] = (array("d"), [])
        stamps, amounts = state
        amounts.insert(_insert(stamps, ts), contribution)
        if stamps[0] < horizon:
            cut = bisect_right(stamps, horizon)
            del stamps[:cut]
            del amounts[:cut]

    def remove(self, key: Any, ts: float, contribution: Any) -> None:
        state = self.series.get(key)
        if not state:
            return
        stamps, amounts = state
        for i in range(bisect_left(stamps, ts), bisect_right(stamps, ts)):
            if amounts[i] == contribution:
                del stamps[i]
                del amounts[i]
                return


class _Sum(_Amounts):
    __slots__ = ()

    def value(self, key: Any, ts: float, current: Any | None) -> Decimal:
        total = sum(self.window_amounts(key, ts), Decimal(0))
        return total + current if current is not None else total


class _Min(_Amounts):
    __slots__ = ()

    def value(self, key: Any, ts: float, current: Any | None) -> Decimal | None:
        amounts = self.window_amounts(key, ts)
        if current is not None:
            amounts = [*amounts, current]
        return min(amounts) if amounts else None


class _Max(_Amounts):
    __slots__ = ()

    def value(self, key: Any, ts: float, current: Any | None) -> Decimal | None:
        amounts = self.window_amounts(key, ts)
        if current is not None:
            amounts = [*amounts, current]
        return max(amounts) if amounts else None


class _Avg(_Amounts):
    __slots__ = ()

    def value(self, key: Any, ts: float, current: Any | None) -> Decimal | None:
        amounts = self.window_amounts(key, ts)
        total = sum(amounts, Decimal(0))
        n = len(amounts)
        if current is not None:
            total += current
            n += 1
        return total / n if n else None


class _Seen(_Count):
    """first_seen / last_seen: seconds from the first (or latest) matching event in the window to this one."""

    __slots__ = ()

    def value(self, key: Any, ts: float, current: Any | None) -> float | None:
        stamps = self.series.get(key)
        lo = hi = 0
        if stamps:
            hi = len(stamps) if stamps[-1] <= ts else bisect_right(stamps, ts)
            lo = bisect_right(stamps, ts - self.window)
        if hi <= lo:
            return 0.0 if current is not None else None
        if self.spec.aggregate == "first_seen":
            return ts - stamps[lo]
        return 0.0 if current is not None else ts - stamps[hi - 1]


class _DistinctState:
    """Per key: each value's times, each value's latest time, and those latest times sorted.

    With the sorted latest times, the usual in-order question (no stored time after the event) is one
    bisection: a value is inside ``(t - w, t]`` exactly when its latest time is after ``t - w``. An event
    older than the key's newest time falls back to checking each value.
    """

    __slots__ = ("latest", "order", "stamps")

    def __init__(self) -> None:
        self.stamps: dict[Any, array[float]] = {}
        self.latest: dict[Any, float] = {}
        self.order = array("d")

    def add(self, value: Any, ts: float) -> None:
        stamps = self.stamps.get(value)
        if stamps is None:
            stamps = self.stamps[value] = array("d")
        _insert(stamps, ts)
        old = self.latest.get(value)
        if old is None or ts > old:
            if old is not None:
                _discard(self.order, old)
            _insert(self.order, ts)
            self.latest[value] = ts

    def drop(self, value: Any) -> None:
        del self.stamps[value]
        _discard(self.order, self.latest.pop(value))

    def trim(self, horizon: float, value: Any) -> None:
        if self.order and self.order[0] < horizon:
            for gone in [v for v, last in self.latest.items() if last < horizon]:
                self.drop(gone)
        stamps = self.stamps.get(value)
        if stamps and stamps[0] < horizon:
            del stamps[: bisect_right(stamps, horizon)]


class _Distinct(_Aggregate):
    __slots__ = ()

    def contribution(self, event: Event) -> Any:
        return _field_value(event, self.spec.field or "")

    def value(self, key: Any, ts: float, current: Any | None) -> int:
        state: _DistinctState | None = self.series.get(key)
        if state is None or not state.order:
            return 0 if current is None else 1
        start = ts - self.window
        if state.order[-1] <= ts:  # nothing stored after this event: one bisection
            n = len(state.order) - bisect_right(state.order, start)
            if current is not None:
                last = state.latest.get(current)
                if last is None or last <= start:
                    n += 1
            return n
        seen = set()
        for value, stamps in state.stamps.items():
            i = bisect_right(stamps, start)
            if i < len(stamps) and stamps[i] <= ts:
                seen.add(value)
        if current is not None:
            seen.add(current)
        return len(seen)

    def add(self, key: Any, ts: float, contribution: Any, horizon: float) -> None:
        state = self.series.get(key)
        if state is None:
            state = self.series[key] = _DistinctState()
        state.add(contribution, ts)
        state.trim(horizon, contribution)

    def remove(self, key: Any, ts: float, contribution: Any) -> None:
        state: _DistinctState | None = self.series.get(key)
        if state is None or contribution not in state.stamps:
            return
        stamps = state.stamps[contribution]
        _discard(stamps, ts)
        state.drop(contribution)
        if stamps:  # put the value back with its remaining times
            for stamp in stamps:
                state.add(contribution, stamp)


class Prepared(NamedTuple):
    event: Event
    ts: float
    matches: list[bool]
    keys: list[Any]


_KINDS: dict[str, type[_Aggregate]] = {
    "count": _Count,
    "sum": _Sum,
    "min": _Min,
    "max": _Max,
    "avg": _Avg,
    "distinct": _Distinct,
    "first_seen": _Seen,
    "last_seen": _Seen,
}


class MemoryFeatureEngine:
    """Computes declared features for an event and folds the event into their state."""

    def __init__(self, *, lateness_seconds: float = 3600.0, published: PublishedIndex | None = None) -> None:
        self.lateness = lateness_seconds
        self.published = published or PublishedIndex()
        self._by_signature: dict[tuple[object, ...], _Aggregate] = {}
        self._binding: dict[int, tuple[Sequence[FeatureSpec], Any, Any]] = {}
        self._filters: ExpressionSet | None = None
        self._filter_sources: list[str] = []
        self._entities: list[tuple[str, ...]] = []
        self._watermark = float("-inf")

    @property
    def max_window_seconds(self) -> int:
        return max((a.spec.window_seconds for a in self._by_signature.values()), default=0)

    def declare(self, specs: Iterable[FeatureSpec], event_env: Environment) -> list[FeatureSpec]:
        """Makes the engine maintain ``specs`` (kept with their state if declared before).

        Returns the specs that are new, whose state must be backfilled from the event log.
        """
        specs = list(specs)
        wanted = {spec.signature: spec for spec in specs if spec.stateful}
        new = [spec for sig, spec in wanted.items() if sig not in self._by_signature]
        kept = {sig: agg for sig, agg in self._by_signature.items() if sig in wanted}
        sources: list[str] = []
        for spec in wanted.values():
            if spec.when and spec.when not in sources:
                sources.append(spec.when)
        for sig, spec in wanted.items():
            index = sources.index(spec.when) if spec.when else None
            if sig in kept:
                kept[sig].filter_index = index
            else:
                kept[sig] = _KINDS[spec.aggregate](spec, index)
        self._by_signature = kept
        self._entities = list(dict.fromkeys(agg.fields for agg in kept.values()))
        for spec in specs:
            if spec.aggregate == "published" and spec.entity_fields not in self._entities:
                self._entities.append(spec.entity_fields)
        for agg in kept.values():
            agg.entity_index = self._entities.index(agg.fields)
        self._binding = {}
        self._filter_sources = sources
        self._filters = event_env.compile_set([(s, f"feature filter {s!r}") for s in sources])
        return new

    @property
    def compile_seconds(self) -> float:
        return 0.0 if self._filters is None else self._filters.compile_seconds

    def filter_matches(self, event_vars: dict[str, Any]) -> list[bool]:
        """Which declared ``when`` filters the event passes (evaluated once, used by compute and observe)."""
        if not self._filter_sources or self._filters is None:
            return []
        return [r is True for r in self._filters.evaluate(event_vars)]

    def prepare(self, event: Event, event_vars: dict[str, Any]) -> Prepared:
        """What compute and observe both need of an event, worked out once: its time, the filters it
        passes, and its value of each entity the features are keyed by."""
        return Prepared(
            event,
            event.occurred_at.timestamp(),
            self.filter_matches(event_vars),
            [_key(event, fields) for fields in self._entities],
        )

    def compute(self, prepared: Prepared, specs: Sequence[FeatureSpec]) -> dict[str, Any]:
        """Feature values for the event as the given specs name them (state is not changed)."""
        event, ts, matches, keys = prepared
        values: dict[str, Any] = {}
        bound, published, ratios = self._bound(specs)
        for name, aggregate, include_current in bound:
            key = keys[aggregate.entity_index]
            if key is None:
                continue  # the event lacks the entity: the feature is unknown, not zero
            current = None
            if include_current and (aggregate.filter_index is None or matches[aggregate.filter_index]):
                current = aggregate.contribution(event)
            value = aggregate.value(key, ts, current)
            if value is not None:  # None: nothing in the window to take a minimum (etc.) of: unknown
                values[name] = value
        for name, source, index in published:
            key = keys[index]
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
        """A strategy's feature list resolved once: (name, state, include_current) of each stateful
        feature, (name, source, entity index) of each published one, (name, numerator, denominator) of
        each ratio."""
        cached = self._binding.get(id(specs))
        if cached is not None and cached[0] is specs:
            return cached[1]
        bound = [
            (spec.name, self._by_signature[spec.signature], spec.include_current) for spec in specs if spec.stateful
        ]
        published = [
            (spec.name, spec.source, self._entities.index(spec.entity_fields))
            for spec in specs
            if spec.aggregate == "published"
        ]
        ratios = [(spec.name, spec.of[0], spec.of[1]) for spec in specs if spec.derived and spec.of]
        self._binding[id(specs)] = (specs, (bound, published, ratios))
        return bound, published, ratios

    def observe(self, prepared: Prepared) -> None:
        """Folds the event into every maintained feature whose filter it passes."""
        event, ts, matches, keys = prepared
        if ts > self._watermark:
            self._watermark = ts
        for aggregate in self._by_signature.values():
            if aggregate.filter_index is not None and not matches[aggregate.filter_index]:
                continue
            key = keys[aggregate.entity_index]
            if key is None:
                continue
            contribution = aggregate.contribution(event)
            if contribution is None:
                continue
            aggregate.add(key, ts, contribution, self._watermark - aggregate.window - self.lateness)

    def retract(self, event: Event, event_vars: dict[str, Any]) -> None:
        """Undoes ``observe(event)``: the event's decision could not be recorded, so it never happened."""
        _, ts, matches, keys = self.prepare(event, event_vars)
        for aggregate in self._by_signature.values():
            if aggregate.filter_index is not None and not matches[aggregate.filter_index]:
                continue
            key = keys[aggregate.entity_index]
            contribution = None if key is None else aggregate.contribution(event)
            if contribution is not None:
                aggregate.remove(key, ts, contribution)

    def backfill(self, specs: Iterable[FeatureSpec], events: Iterable[tuple[Event, dict[str, Any]]]) -> int:
        """Replays logged events into the state of ``specs`` only (new declarations after a publish)."""
        targets = [self._by_signature[s.signature] for s in specs]
        count = 0
        for event, event_vars in events:
            matches = self.filter_matches(event_vars)
            ts = event.occurred_at.timestamp()
            if ts > self._watermark:
                self._watermark = ts
            for aggregate in targets:
                if aggregate.filter_index is not None and not matches[aggregate.filter_index]:
                    continue
                key = _key(event, aggregate.fields)
                contribution = None if key is None else aggregate.contribution(event)
                if contribution is not None:
                    aggregate.add(key, ts, contribution, self._watermark - aggregate.window - self.lateness)
            count += 1
        return count

    def size(self) -> int:
        return sum(len(a.series) for a in self._by_signature.values())
