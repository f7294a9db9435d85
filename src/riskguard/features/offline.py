"""Point-in-time features over a history, in bulk: for every event, the values the online engine gave it.

``offline_features(history, specs)`` reads a history (``riskguard simulate``'s events Parquet, the same
columns as CSV or a polars DataFrame, or a list of ``Event``) and returns one row per event, in arrival
order: ``event_id`` and one column per declared feature, null where the feature has no value. The values
are those of features/reference.py (the definition every back end is held to) on the same events in the
same order: arrival order, bucketed windows, late events decided but never folded, duplicate ids not
folded twice, ``include_current`` per feature, reads clamped at the oldest bucket still held.

How: polars reads, parses and groups the events (by key, by distinct value, by filter inputs);
offline_windows.py turns each feature into index intervals over its key's folded events and reduces them
with cumulative sums, sparse tables and difference arrays (numpy). Nothing is computed per event in
Python except the exact ``Decimal`` results of ``avg`` and ``ratio``.

Columns: ``count`` and ``distinct`` Int64; ``sum``, ``min``, ``max`` Decimal(38, 4) (exact: amounts are
integer 1/10,000 units); ``avg`` and ``ratio`` Python ``Decimal`` objects (polars Object: the exact
quotients values.average and the engine give); ``first_seen``, ``last_seen`` Float64 seconds. ``published``
features are not reconstructed (they are whatever a batch job published last, not a function of the
history) and get no column.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl

from riskguard.errors import ConfigError, StrategyError
from riskguard.features.label_events import LABEL_TYPE, admits_labels
from riskguard.features.offline_filters import filter_mask
from riskguard.features.offline_input import Events, History, load_events
from riskguard.features.offline_windows import (
    Keyed,
    Window,
    arrival,
    distinct_counts,
    keyed,
    segment_starts,
    window,
    window_counts,
    window_reduce,
    window_sum,
)
from riskguard.features.spec import FeatureSpec, check_spec
from riskguard.features.values import MICROS, average, units_amount
from riskguard.rules.activation import EVENT_DECLARATIONS
from riskguard.rules.cel import Environment

DECIMAL = pl.Decimal(38, 4)
_UNIT = Decimal(1).scaleb(-4)
_DTYPES: dict[str, Any] = {
    "count": pl.Int64,
    "distinct": pl.Int64,
    "sum": DECIMAL,
    "min": DECIMAL,
    "max": DECIMAL,
    "avg": pl.Object,
    "ratio": pl.Object,
    "first_seen": pl.Float64,
    "last_seen": pl.Float64,
}


def offline_features(
    history: History,
    specs: Sequence[FeatureSpec],
    *,
    lateness_seconds: float = 3600.0,
    workers: int | None = None,
) -> pl.DataFrame:
    """The feature values of every event of ``history``, as the online engine computes them.

    ``workers`` threads compute features side by side (numpy and polars release the GIL); the default is
    the machine's cores, at most 4. The values do not depend on it."""
    if not lateness_seconds >= 0:
        raise ConfigError(f"lateness_seconds must be 0 or more, got {lateness_seconds!r}")
    specs = list(specs)
    _check(specs)
    events = load_events(history)
    plan = _Plan(events, int(lateness_seconds * MICROS), specs)
    operands = {name for s in specs if s.derived and s.of for name in s.of}
    kept: dict[str, _Column] = {}  # the operands of ratios
    series: dict[str, pl.Series] = {}

    def compute(group: list[FeatureSpec]) -> list[tuple[FeatureSpec, _Column, pl.Series]]:
        done = []
        for spec in group:
            column = plan.feature(spec)
            done.append((spec, column, column.series(spec.name, spec.aggregate)))
        return done

    # as the engine: every stateful feature, then the ratios in declaration order. Features that share a
    # window run in one task, tasks in entity order (an entity's caches are dropped after its last task)
    groups: dict[Any, list[FeatureSpec]] = {}
    for spec in specs:
        if spec.stateful:
            groups.setdefault(_pieces(spec)[0], []).append(spec)
    tasks = sorted(groups.values(), key=lambda g: _pieces(g[0])[0][1:3])
    threads = max(1, min(workers or min(os.cpu_count() or 1, 4), len(tasks)))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="offline-features") as pool:
        for done in pool.map(compute, tasks):
            for spec, column, values in done:
                series[spec.name] = values
                if spec.name in operands:
                    kept[spec.name] = column
    for spec in specs:
        if spec.derived and spec.of:
            column = _ratio(kept.get(spec.of[0]), kept.get(spec.of[1]), len(events))
            if spec.name in operands:
                kept[spec.name] = column
            series[spec.name] = column.series(spec.name, spec.aggregate)
    output = [events.column("event_id"), *(series[s.name] for s in specs if s.name in series)]
    return pl.DataFrame(output)


def _check(specs: list[FeatureSpec]) -> None:
    names: set[str] = set()
    for index, spec in enumerate(specs):
        check_spec(spec, index)
        if spec.name in names:
            raise StrategyError(f"features[{index}]: a feature named {spec.name!r} is declared twice")
        names.add(spec.name)


# ---------------------------------------------------------------------- values
@dataclass
class _Column:
    """One feature's values over the history: ``data`` where ``valid`` (avg: ``data`` is the total in
    units and ``count`` the number of amounts; ratio: Decimal objects)."""

    kind: str  # int, units, avg, seconds, ratio
    valid: np.ndarray
    data: np.ndarray
    count: np.ndarray | None = None

    def python(self, rows: np.ndarray) -> list[Any]:
        """The values at ``rows`` as reference_values holds them."""
        data = self.data[rows].tolist()
        if self.kind == "units":
            return [units_amount(u) for u in data]
        if self.kind == "avg":
            assert self.count is not None
            return [average(t, c) for t, c in zip(data, self.count[rows].tolist(), strict=True)]
        return data

    def nonzero(self) -> np.ndarray:
        return self.valid & (self.data != 0)

    def series(self, name: str, aggregate: str) -> pl.Series:
        invalid = pl.Series(~self.valid)
        if self.kind == "int":
            return pl.Series(name, self.data, dtype=pl.Int64).set(invalid, None)
        if self.kind == "seconds":
            return pl.Series(name, self.data, dtype=pl.Float64).set(invalid, None)
        if self.kind == "units":
            if self.data.dtype == object:
                values = [
                    units_amount(u) if ok else None
                    for u, ok in zip(self.data.tolist(), self.valid.tolist(), strict=True)
                ]
                return pl.Series(name, values, dtype=DECIMAL)
            units = pl.Series(name, self.data, dtype=pl.Int64).set(invalid, None)
            return (units.cast(pl.Decimal(38, 0)) * pl.Series([_UNIT], dtype=pl.Decimal(38, 4))).alias(name)
        values = np.full(len(self.valid), None, dtype=object)
        rows = np.flatnonzero(self.valid)
        values[rows] = self._averages(rows) if self.kind == "avg" else self.data[rows]
        return pl.Series(name, values, dtype=pl.Object)

    def _averages(self, rows: np.ndarray) -> np.ndarray:
        """values.average at ``rows``, computed once per distinct (total, count): about half as many."""
        assert self.count is not None
        totals, counts = self.data[rows], self.count[rows]
        out = np.empty(len(rows), dtype=object)
        width = int(counts.max(initial=0)) + 1
        if totals.dtype == object or int(np.abs(totals).max(initial=0)) * width >= 1 << 62:
            out[:] = list(map(average, totals.tolist(), counts.tolist()))
            return out
        levels, inverse = np.unique(totals * width + counts, return_inverse=True)
        distinct = np.empty(len(levels), dtype=object)
        distinct[:] = list(map(average, (levels // width).tolist(), (levels % width).tolist()))
        return distinct[inverse.reshape(-1)]


def _ratio(top: _Column | None, bottom: _Column | None, n: int) -> _Column:
    """Decimal(top) / Decimal(bottom) where both have values and the bottom is not zero."""
    data = np.full(n, None, dtype=object)
    if top is None or bottom is None:
        return _Column("ratio", np.zeros(n, dtype=bool), data)
    valid = top.valid & bottom.nonzero()
    rows = np.flatnonzero(valid)
    data[rows] = [Decimal(a) / Decimal(b) for a, b in zip(top.python(rows), bottom.python(rows), strict=True)]
    return _Column("ratio", valid, data)


# ---------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class _Grouping:
    """Rows grouped by a value: ``order`` lists the rows holding one (grouped, arrival order within a
    group), ``seg`` the group of each, ``codes`` each row's group (-1: no value)."""

    order: np.ndarray
    seg: np.ndarray
    codes: np.ndarray


def group_rows(values: pl.Series) -> _Grouping:
    """Groups rows by value. Grouping by a 64-bit hash is twice as fast as by the strings; a second,
    independently seeded hash must then agree within every group, or the rows are grouped by the values
    themselves (a collision in both would take about 2**64 keys)."""
    n = len(values)
    present = values.is_not_null()
    frame = pl.DataFrame({"v": values.hash(seed=1), "_row": np.arange(n, dtype=np.int64)}).filter(present)
    order, lengths = _grouped(frame)
    check = values.hash(seed=2).to_numpy()
    if len(order) and not (check[order] == np.repeat(check[order[np.cumsum(lengths) - lengths]], lengths)).all():
        order, lengths = _grouped(pl.DataFrame({"v": values, "_row": np.arange(n, dtype=np.int64)}).filter(present))
    seg = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    codes = np.full(n, -1, dtype=np.int64)
    codes[order] = seg
    return _Grouping(order, seg, codes)


def _grouped(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    rows = frame.group_by("v").agg(pl.col("_row")).get_column("_row")
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return rows.explode().to_numpy().astype(np.int64), rows.list.len().to_numpy().astype(np.int64)


@dataclass(frozen=True)
class _Entity:
    """The events that carry one entity key, in query order (by key, then arrival)."""

    order: np.ndarray
    seg: np.ndarray
    starts: np.ndarray
    t_us: np.ndarray
    floor_us: np.ndarray  # watermark - lateness met by each event (hugely negative before the first)
    duplicate: np.ndarray
    folded: np.ndarray


@dataclass(frozen=True)
class _Queries:
    """An entity's events with what every feature of one bucket size needs."""

    entity: _Entity
    keys: Keyed
    floor: np.ndarray  # bucket of watermark - lateness: the oldest a read reaches is this minus the window
    floor_code: np.ndarray | None  # keys.low_codes(floor)

    @property
    def order(self) -> np.ndarray:
        return self.entity.order


class _Plan:
    """Shared work for the features of one history: groupings, filters, queries and windows, each
    computed once and reused by every feature that needs it."""

    def __init__(self, events: Events, lateness_us: int, specs: Sequence[FeatureSpec]) -> None:
        self.events = events
        stateful = [s for s in specs if s.stateful]
        self.max_buckets = max((s.buckets for s in stateful), default=1)
        # how many features still need each cached piece: a piece is dropped after its last use
        self._uses: dict[Any, int] = {}
        for spec in stateful:
            for piece in _pieces(spec):
                self._uses[piece] = self._uses.get(piece, 0) + 1
        self.n = len(events)
        self.lateness_us = lateness_us
        ids = events.column("event_id")
        self.arrival = arrival(events.t_us, ids.to_list, ids.is_first_distinct().to_numpy(), lateness_us)
        self.environment = Environment(EVENT_DECLARATIONS)
        is_label = (events.column("type") == LABEL_TYPE).to_numpy()
        self.labels = is_label if is_label.any() else None  # internal label events (features/label_events.py)
        self._groupings: dict[Any, _Grouping] = {}
        self._entities: dict[Any, _Entity] = {}
        self._filters: dict[Any, np.ndarray] = {}
        self._queries: dict[Any, _Queries] = {}
        self._windows: dict[Any, Window] = {}
        self._lock = threading.Lock()  # guards the use counts and the building locks
        self._building: dict[tuple[int, Any], threading.Lock] = {}
        self._cel = threading.Lock()  # one CEL evaluation at a time

    def _cached(self, cache: dict[Any, Any], key: Any, build: Callable[[], Any]) -> Any:
        """``cache[key]``, built once even when several threads ask for it at the same time."""
        found = cache.get(key)
        if found is not None:
            return found
        with self._lock:
            building = self._building.setdefault((id(cache), key), threading.Lock())
        with building:
            found = cache.get(key)
            if found is None:
                found = cache[key] = build()
        return found

    def grouping(self, label: Any, values: Callable[[], pl.Series]) -> _Grouping:
        return self._cached(self._groupings, label, lambda: group_rows(values()))

    def entity(self, fields: tuple[str, ...]) -> _Entity:
        """Events grouped by their state key (values.entity_key: parts joined with U+001F)."""
        return self._cached(self._entities, fields, lambda: self._entity(fields))

    def _entity(self, fields: tuple[str, ...]) -> _Entity:
        if len(fields) == 1:
            label = ("field", fields[0])
            column = self.events.column(fields[0])
            # kept when a distinct feature counts this field too
            tokens = self._uses.get(("tokens", *label))
            group = self.grouping(label, lambda: column) if tokens else group_rows(column)
        else:
            columns = pl.DataFrame([self.events.column(f) for f in fields])
            joined = columns.select(pl.concat_str([pl.col(f) for f in fields], separator="\x1f")).to_series()
            group = group_rows(joined)
        a, order = self.arrival, group.order
        has = a.has_watermark[order]
        return _Entity(
            order=order,
            seg=group.seg,
            starts=segment_starts(group.seg),
            t_us=self.events.t_us[order],
            floor_us=np.where(has, a.watermark[order] - self.lateness_us, np.iinfo(np.int64).min // 2),
            duplicate=a.duplicate[order],
            folded=a.folded[order],
        )

    def tokens(self, field: str) -> np.ndarray:
        """Per event: a code of the value ``distinct`` counts (-1 when absent)."""
        return self.grouping(("field", field), lambda: self.events.token_column(field)).codes

    def passes(self, when: str | None, name: str) -> np.ndarray | None:
        labels = self.labels if self.labels is not None and not admits_labels(when) else None
        if when is None:
            return None if labels is None else ~labels  # label events count only where a feature asks
        mask = self._cached(self._filters, when, lambda: self._filter(when, name))
        return mask if labels is None else mask & ~labels

    def _filter(self, when: str, name: str) -> np.ndarray:
        with self._cel:
            return filter_mask(self.events, when, self.environment, where=f"features ({name}).when")

    def queries(self, fields: tuple[str, ...], g_us: int) -> _Queries:
        def build() -> _Queries:
            entity = self.entity(fields)
            keys = keyed(entity.seg, entity.starts, entity.t_us // g_us, self.max_buckets)
            floor = entity.floor_us // g_us
            return _Queries(entity, keys, floor, None if keys.code is None else keys.low_codes(floor))

        return self._cached(self._queries, (fields, g_us), build)

    def feature(self, spec: FeatureSpec) -> _Column:
        g_us = spec.granularity_seconds * MICROS
        q = self.queries(spec.entity_fields, g_us)
        passes = self.passes(spec.when, spec.name)
        aggregate = spec.aggregate
        tokens = None
        if aggregate == "distinct":
            tokens = self.tokens(spec.field or "")[q.order]
            carries = tokens >= 0
        elif aggregate in ("sum", "min", "max", "avg"):
            carries = self.events.has_amount[q.order]
        else:
            carries = np.ones(len(q.order), dtype=bool)
        if passes is not None:
            carries = carries & passes[q.order]
        current = carries & ~q.entity.duplicate if spec.include_current else np.zeros(len(q.order), dtype=bool)
        member = q.entity.folded & carries
        win = self._cached(
            self._windows, _pieces(spec)[0][1:], lambda: window(q.keys, q.floor, q.floor_code, spec.buckets, member)
        )
        column = self._scatter(q, *_values(aggregate, win, q, current, tokens, self.events))
        self._release(spec)
        return column

    def _release(self, spec: FeatureSpec) -> None:
        caches = {
            "window": self._windows,
            "queries": self._queries,
            "entity": self._entities,
            "tokens": self._groupings,
        }
        with self._lock:
            for piece in _pieces(spec):
                self._uses[piece] -= 1
                if self._uses[piece] == 0:
                    caches[piece[0]].pop(piece[1:], None)

    def _scatter(
        self, q: _Queries, kind: str, valid: np.ndarray, data: np.ndarray, count: np.ndarray | None
    ) -> _Column:
        full_valid = np.zeros(self.n, dtype=bool)
        full_valid[q.order] = valid
        full = np.zeros(self.n, dtype=data.dtype)
        full[q.order] = data
        full_count = None
        if count is not None:
            full_count = np.zeros(self.n, dtype=np.int64)
            full_count[q.order] = count
        return _Column(kind, full_valid, full, full_count)


def _pieces(spec: FeatureSpec) -> list[tuple[Any, ...]]:
    """The cached pieces a feature uses, as (cache, key...): its window, queries, entity and token codes."""
    g_us = spec.granularity_seconds * MICROS
    if spec.aggregate == "distinct":
        contribution: tuple[Any, ...] = ("token", spec.field)
    elif spec.aggregate in ("sum", "min", "max", "avg"):
        contribution = ("amount",)
    else:
        contribution = ("event",)
    pieces = [
        ("window", spec.entity_fields, g_us, spec.buckets, spec.when, contribution),
        ("queries", spec.entity_fields, g_us),
        ("entity", *spec.entity_fields),
    ]
    if spec.aggregate == "distinct":
        pieces.append(("tokens", "field", spec.field))
    return pieces


def _values(
    aggregate: str, win: Window, q: _Queries, current: np.ndarray, tokens: np.ndarray | None, events: Events
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray | None]:
    """(kind, valid, data, count) of one feature in query order."""
    everywhere = np.ones(len(q.order), dtype=bool)
    if aggregate == "count":
        return "int", everywhere, window_counts(win) + current, None
    if aggregate == "distinct":
        assert tokens is not None
        return "int", everywhere, distinct_counts(win, q.keys.seg, tokens, current), None
    if aggregate in ("sum", "avg", "min", "max"):
        units = events.units[q.order]
        if aggregate in ("min", "max"):
            op = np.minimum if aggregate == "min" else np.maximum
            found, best = window_reduce(win, units, op)
            best = np.where(current, np.where(found, op(best, units), units), best)
            return "units", found | current, best, None
        total = window_sum(win, units)
        total = total + np.where(current, units, 0).astype(total.dtype)
        if aggregate == "sum":
            return "units", everywhere, total, None
        count = window_counts(win) + current
        return "avg", count > 0, total, count
    if aggregate == "first_seen":
        found, earliest = window_reduce(win, q.entity.t_us, np.minimum)
        earliest = np.where(current, np.where(found, np.minimum(earliest, q.entity.t_us), q.entity.t_us), earliest)
        return "seconds", found | current, _seconds(q.entity.t_us, earliest), None
    found, latest = window_reduce(win, q.entity.t_us, np.maximum)
    seconds = np.where(current, 0.0, _seconds(q.entity.t_us, latest))
    return "seconds", found | current, seconds, None


def _seconds(later_us: np.ndarray, earlier_us: np.ndarray) -> np.ndarray:
    """values.seconds_between in bulk (differences stay far below 2**53, so the float division is exact
    to the last bit, as Python's int / int is)."""
    return np.maximum(later_us - earlier_us, 0).astype(np.float64) / MICROS
