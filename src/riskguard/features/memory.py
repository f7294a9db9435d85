"""The embedded feature back end: bucketed window state per key in process memory, the default.

Each feature keeps, per key, its non-empty buckets in ascending order (``array('q')``: compact, and
invisible to the garbage collector) with a count and one value per bucket (amount units summed, the
extreme amount, or the earliest/latest time), plus a running total over the window that ends at the
newest bucket read: an event arriving in order reads count, sum and avg in O(1) and the others from the
window's slice. Out-of-order events read by bisection. Buckets older than the oldest one any event may
still read (``watermark - lateness - window``) are dropped when their key is touched, and a periodic sweep
drops keys nobody touched, so memory stays bounded by the traffic inside the windows.

``distinct`` keeps each value's buckets; past ``distinct_exact_limit`` values a key switches to one
HyperLogLog sketch per bucket (datasketch, p=12: 1.6 % standard error), merged over the window.

State survives a restart through ``snapshot`` / ``restore`` (a pickle of the state and its watermark); the
service replays the event log recorded since the snapshot, and the engine's idempotency (event ids folded
within the lateness horizon are not folded twice) makes the overlap harmless.
"""

from __future__ import annotations

import pickle
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from datasketch import HyperLogLog

from riskguard.events.schema import Event
from riskguard.features.engine import Feature, FeatureEngine, Prepared
from riskguard.features.spec import FeatureSpec

SNAPSHOT_FORMAT = 1
HLL_P = 12
SWEEP_EVERY = 65_536  # folded events between sweeps of one feature's idle keys


class _Series:
    """One key's buckets for one count/sum/avg/min/max/first_seen/last_seen feature.

    ``total_n`` and ``total_x`` hold the sums over indexes ``[start, end)``: the buckets in
    ``(cur - width, cur]``.
    """

    __slots__ = ("bs", "cur", "end", "ns", "start", "total_n", "total_x", "xs")

    def __init__(self) -> None:
        self.bs = array("q")
        self.ns = array("q")
        self.xs = array("q")
        self.cur = -(1 << 62)
        self.start = 0
        self.end = 0
        self.total_n = 0
        self.total_x = 0

    @classmethod
    def first(cls, hb: int, x: int, kind: str) -> _Series:
        """A key's state holding one event in bucket ``hb`` (the window ending there)."""
        series = cls.__new__(cls)
        series.bs = array("q", (hb,))
        series.ns = array("q", (1,))
        series.xs = array("q", (x,))
        series.cur = hb
        series.start = 0
        series.end = 1
        series.total_n = 1
        series.total_x = x if kind in _ADDITIVE else 0
        return series

    def advance(self, hb: int, width: int) -> None:
        """Moves the window's end to bucket ``hb`` (not before ``cur``), keeping the totals."""
        bs, ns, xs = self.bs, self.ns, self.xs
        end, start = self.end, self.start
        count = len(bs)
        while end < count and bs[end] <= hb:
            self.total_n += ns[end]
            self.total_x += xs[end]
            end += 1
        low = hb - width
        while start < end and bs[start] <= low:
            self.total_n -= ns[start]
            self.total_x -= xs[start]
            start += 1
        self.start, self.end, self.cur = start, end, hb

    def evict(self, oldest: int) -> None:
        """Drops buckets before ``oldest``."""
        bs = self.bs
        k = bisect_left(bs, oldest)
        for i in range(self.start, min(k, self.end)):
            self.total_n -= self.ns[i]
            self.total_x -= self.xs[i]
        del bs[:k]
        del self.ns[:k]
        del self.xs[:k]
        self.start = max(0, self.start - k)
        self.end = max(0, self.end - k)

    def span(self, hb: int, low: int) -> tuple[int, int]:
        """Index range of the buckets in ``(low, hb]``."""
        return bisect_right(self.bs, low), bisect_right(self.bs, hb)

    def add(self, hb: int, n: int, x: int, kind: str, width: int) -> None:
        """Folds ``n`` events with value ``x`` into bucket ``hb`` (``cur`` is at or after ``hb``)."""
        bs = self.bs
        inside = self.cur - width < hb <= self.cur
        if bs and bs[-1] == hb:
            i = len(bs) - 1
        else:
            i = len(bs) if not bs or bs[-1] < hb else bisect_left(bs, hb)
            if i == len(bs) or bs[i] != hb:
                bs.insert(i, hb)
                self.ns.insert(i, 0)
                self.xs.insert(i, _EMPTY[kind])
                if inside:
                    self.end += 1
                elif hb <= self.cur - width:
                    self.start += 1
                    self.end += 1
        self.ns[i] += n
        if kind in _ADDITIVE:
            self.xs[i] += x
            if inside:
                self.total_x += x
        elif kind in _LOWEST:
            self.xs[i] = min(self.xs[i], x)
        else:
            self.xs[i] = max(self.xs[i], x)
        if inside:
            self.total_n += n

    def take(self, hb: int, n: int, x: int, kind: str) -> None:
        """Takes back one event folded into bucket ``hb``."""
        i = bisect_left(self.bs, hb)
        if i >= len(self.bs) or self.bs[i] != hb:
            return
        in_window = self.start <= i < self.end
        self.ns[i] -= n
        if in_window:
            self.total_n -= n
        if kind in _ADDITIVE:
            self.xs[i] -= x
            if in_window:
                self.total_x -= x
        if self.ns[i] <= 0:  # an emptied bucket goes; a min/max of a bucket that keeps others stays
            del self.bs[i]
            del self.ns[i]
            del self.xs[i]
            if i < self.start:
                self.start -= 1
            if i < self.end:
                self.end -= 1


_ADDITIVE = ("count", "sum", "avg")
_TIMED = ("first_seen", "last_seen")
_LOWEST = ("min", "first_seen")
_BIG = (1 << 63) - 1
_EMPTY = {"count": 0, "sum": 0, "avg": 0, "min": _BIG, "first_seen": _BIG, "max": -_BIG, "last_seen": -_BIG}


def _read(series: _Series, kind: str, hb: int, low: int, width: int) -> Any:
    """The aggregate over buckets ``(low, hb]``."""
    if hb >= series.cur and low == hb - width:
        series.advance(hb, width)
        i, j = series.start, series.end
        if kind == "count":
            return series.total_n
        if kind == "sum":
            return series.total_x
        if kind == "avg":
            return (series.total_x, series.total_n)
    else:
        i, j = series.span(hb, low)
        if kind == "count":
            return sum(series.ns[i:j])
        if kind in ("sum", "avg"):
            units = sum(series.xs[i:j])
            return units if kind == "sum" else (units, sum(series.ns[i:j]))
    if i >= j:
        return None
    if kind == "first_seen":
        return series.xs[i]  # buckets partition time: the first bucket holds the earliest event
    if kind == "last_seen":
        return series.xs[j - 1]
    return min(series.xs[i:j]) if kind == "min" else max(series.xs[i:j])


class _Distinct:
    """One key's distinct values: each value's buckets (with counts), and the sorted latest buckets."""

    __slots__ = ("counts", "latest", "order", "sketches")

    def __init__(self) -> None:
        self.counts: dict[str, dict[int, int]] = {}
        self.latest: dict[str, int] = {}
        self.order = array("q")
        self.sketches: dict[int, HyperLogLog] | None = None

    def read(self, hb: int, low: int, probe: str | None) -> int:
        if self.sketches is not None:
            merged = HyperLogLog(p=HLL_P)
            for bucket, sketch in self.sketches.items():
                if low < bucket <= hb:
                    merged.merge(sketch)
            if probe is not None:
                merged.update(probe.encode())
            return round(merged.count())
        order = self.order
        if order and order[-1] <= hb:  # nothing stored after this event: one bisection
            n = len(order) - bisect_right(order, low)
            if probe is not None:
                last = self.latest.get(probe)
                if last is None or last <= low:
                    n += 1
            return n
        n = 0
        for value, buckets in self.counts.items():
            if value != probe and any(low < b <= hb for b in buckets):
                n += 1
        return n + (probe is not None)

    def add(self, hb: int, value: str, limit: int) -> None:
        if self.sketches is not None:
            sketch = self.sketches.get(hb)
            if sketch is None:
                sketch = self.sketches[hb] = HyperLogLog(p=HLL_P)
            sketch.update(value.encode())
            return
        buckets = self.counts.get(value)
        if buckets is None:
            buckets = self.counts[value] = {}
        buckets[hb] = buckets.get(hb, 0) + 1
        old = self.latest.get(value)
        if old is None or hb > old:
            if old is not None:
                del self.order[bisect_left(self.order, old)]
            self.order.insert(bisect_right(self.order, hb), hb)
            self.latest[value] = hb
        if len(self.counts) > limit:
            self._to_sketches()

    def _to_sketches(self) -> None:
        sketches: dict[int, HyperLogLog] = {}
        for value, buckets in self.counts.items():
            token = value.encode()
            for bucket in buckets:
                sketch = sketches.get(bucket)
                if sketch is None:
                    sketch = sketches[bucket] = HyperLogLog(p=HLL_P)
                sketch.update(token)
        self.sketches = sketches
        self.counts, self.latest, self.order = {}, {}, array("q")

    def take(self, hb: int, value: str) -> None:
        """Takes back one event (sketches cannot forget: a sketched key keeps it until its bucket expires)."""
        buckets = self.counts.get(value)
        if buckets is None or hb not in buckets:
            return
        buckets[hb] -= 1
        if buckets[hb] == 0:
            del buckets[hb]
            self._relatest(value)

    def _relatest(self, value: str) -> None:
        del self.order[bisect_left(self.order, self.latest.pop(value))]
        buckets = self.counts[value]
        if not buckets:
            del self.counts[value]
            return
        top = max(buckets)
        self.latest[value] = top
        self.order.insert(bisect_right(self.order, top), top)

    def evict(self, oldest: int) -> None:
        if self.sketches is not None:
            for bucket in [b for b in self.sketches if b < oldest]:
                del self.sketches[bucket]
            return
        if not self.order or self.order[0] >= oldest:
            return
        for value in [v for v, last in self.latest.items() if last < oldest]:
            del self.order[bisect_left(self.order, self.latest.pop(value))]
            del self.counts[value]

    def empty(self) -> bool:
        return not self.sketches if self.sketches is not None else not self.counts

    def newest(self) -> int:
        if self.sketches is not None:
            return max(self.sketches, default=-(1 << 62))
        return self.order[-1] if self.order else -(1 << 62)


class MemoryFeatureEngine(FeatureEngine):
    """Feature state in this process's memory (see the module docstring)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._state: list[dict[str, Any]] = []
        self.watermark: int | None = None
        self._seen: dict[str, int] = {}
        self._folded = 0
        self._sweep_next = 0
        self._plan: list[tuple[Any, ...]] = []

    def _redeclare(self, features: list[Feature], previous: list[Feature | None]) -> None:
        old = {f.index: state for f, state in zip(self.features, self._state, strict=True)}
        self._state = [{} if p is None else old[p.index] for p in previous]
        self._replan(features)

    def _replan(self, features: list[Feature]) -> None:
        """Per feature, what the per-event loop reads, bound once (attribute lookups cost on this path)."""
        self._plan = [
            (f.index, f.entity, f.kind, f.g_us, f.width, state, f.kind == "distinct", f.kind in _TIMED)
            for f, state in zip(features, self._state, strict=True)
        ]

    # ------------------------------------------------------------------ the per-event step
    def _oldest(self, feature: Feature) -> int:
        """The oldest bucket any event may still read."""
        if self.watermark is None:
            return -(1 << 62)
        return (self.watermark - self.lateness_us) // feature.g_us - feature.width + 1

    def _exchange(self, prepared: Prepared, probes: list[Any], fold: bool) -> tuple[list[Any], bool]:
        t_us, keys, items = prepared.t_us, prepared.keys, prepared.items
        watermark = self.watermark
        horizon = -(1 << 62) if watermark is None else watermark - self.lateness_us
        late = t_us < horizon
        event_id = prepared.event.event_id
        seen = self._seen.get(event_id)
        duplicate = seen is not None and seen >= horizon
        fold = fold and not late and not duplicate
        limit = self.distinct_exact_limit
        aggregates: list[Any] = [None] * len(self._plan)
        for index, entity, kind, g, width, state, distinct, timed in self._plan:
            key = keys[entity]
            if key is None:
                continue
            hb = t_us // g
            low = hb - width
            oldest = horizon // g - width + 1
            if late and low < oldest - 1:
                low = oldest - 1
            item = items[index] if fold else None
            series = state.get(key)
            if distinct:
                probe = None if duplicate else probes[index]
                if series is None:
                    aggregates[index] = 0 if probe is None else 1
                    if item is not None:
                        series = state[key] = _Distinct()
                        series.add(hb, item, limit)
                    continue
                if series.sketches is not None or (series.order and series.order[0] < oldest):
                    series.evict(oldest)
                aggregates[index] = series.read(hb, low, probe)
                if item is not None:
                    series.add(hb, item, limit)
                continue
            if series is None:
                aggregates[index] = _NOTHING[kind]
                if item is not None:
                    state[key] = _Series.first(hb, t_us if timed else item, kind)
                continue
            bs = series.bs
            if bs and bs[0] < oldest:
                series.evict(oldest)
            if hb == series.cur and not late and kind in _ADDITIVE:
                # the common case of a busy key: the same bucket as its last read, totals ready
                aggregates[index] = (
                    series.total_n
                    if kind == "count"
                    else series.total_x
                    if kind == "sum"
                    else (series.total_x, series.total_n)
                )
                if item is not None and bs and bs[-1] == hb:
                    series.ns[-1] += 1
                    series.total_n += 1
                    series.xs[-1] += item
                    series.total_x += item
                    continue
            else:
                aggregates[index] = _read(series, kind, hb, low, width)
            if item is not None:
                if hb > series.cur:
                    series.advance(hb, width)
                series.add(hb, 1, t_us if timed else item, kind, width)
        if fold:
            self._seen[event_id] = t_us
            if watermark is None or t_us > watermark:
                self.watermark = t_us
            self._folded += 1
            if self._folded % SWEEP_EVERY == 0:
                self._sweep()
        elif late:
            self.late_events += 1
        elif duplicate:
            self.duplicate_events += 1
        return aggregates, duplicate

    def _sweep(self) -> None:
        """Drops one feature's keys whose every bucket is too old to be read, and forgotten event ids."""
        if self.watermark is None or not self.features:
            return
        horizon = self.watermark - self.lateness_us
        if self._sweep_next == 0:
            self._seen = {k: t for k, t in self._seen.items() if t >= horizon}
        index = self._sweep_next % len(self.features)
        self._sweep_next = (self._sweep_next + 1) % len(self.features)
        feature, state = self.features[index], self._state[index]
        oldest = self._oldest(feature)
        if feature.kind == "distinct":
            gone = [k for k, s in state.items() if s.newest() < oldest]
        else:
            gone = [k for k, s in state.items() if not s.bs or s.bs[-1] < oldest]
        for key in gone:  # in place: the plan holds this dict
            del state[key]

    # ------------------------------------------------------------------ retraction and rebuild
    def retract(self, event: Event, event_vars: dict[str, Any]) -> None:
        prepared = self.prepare(event, event_vars)
        self._seen.pop(event.event_id, None)
        for feature, state in zip(self.features, self._state, strict=True):
            key = prepared.keys[feature.entity]
            item = prepared.items[feature.index]
            series = None if key is None or item is None else state.get(key)
            if series is None:
                continue
            hb = prepared.t_us // feature.g_us
            if feature.kind == "distinct":
                series.take(hb, item)
                if series.empty():
                    del state[key]
            else:
                series.take(hb, 1, _x(feature.kind, item, prepared.t_us), feature.kind)
                if not series.bs:
                    del state[key]

    def backfill(self, specs: Iterable[FeatureSpec], events: Iterable[tuple[Event, dict[str, Any]]]) -> int:
        """Folds logged events into the given (new) features only, leaving the others as they are.

        History is folded whole (nothing in it is late or a duplicate for a feature that saw none of it).
        """
        wanted = {spec.signature for spec in specs}
        subset = [f.index for f in self.features if f.spec.signature in wanted]
        count = 0
        for event, event_vars in events:
            prepared = self.prepare(event, event_vars)
            for index in subset:
                self._fold(self.features[index], self._state[index], prepared)
            count += 1
        return count

    def _fold(self, feature: Feature, state: dict[str, Any], prepared: Prepared) -> None:
        key = prepared.keys[feature.entity]
        item = prepared.items[feature.index]
        if key is None or item is None:
            return
        hb = prepared.t_us // feature.g_us
        series = state.get(key)
        if feature.kind == "distinct":
            if series is None:
                series = state[key] = _Distinct()
            series.add(hb, item, self.distinct_exact_limit)
            return
        if series is None:
            series = state[key] = _Series()
        if hb > series.cur:
            series.advance(hb, feature.width)
        series.add(hb, 1, _x(feature.kind, item, prepared.t_us), feature.kind, feature.width)

    def size(self) -> int:
        """Keys held, over all features."""
        return sum(len(state) for state in self._state)

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, path: Path, *, position: Any = None) -> None:
        """Writes the whole state to ``path`` atomically; ``position`` records how far into the event log
        it reaches (the caller's choice: e.g. the latest decision time folded)."""
        payload = {
            "format": SNAPSHOT_FORMAT,
            "position": position,
            "watermark": self.watermark,
            "seen": self._seen,
            "lateness_us": self.lateness_us,
            "distinct_exact_limit": self.distinct_exact_limit,
            "state": {f.spec.signature: s for f, s in zip(self.features, self._state, strict=True)},
        }
        temporary = path.with_suffix(path.suffix + ".tmp")
        with open(temporary, "wb") as handle:
            pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL)
            handle.flush()
        temporary.replace(path)

    def restore(self, path: Path) -> tuple[Any, list[FeatureSpec]]:
        """Loads a snapshot written by ``snapshot`` into the declared features. Returns its position and
        the declared specs it held no state for (to be backfilled). Snapshots are trusted files (pickle):
        keep them where only the service writes."""
        with open(path, "rb") as handle:
            payload = _SnapshotUnpickler(handle).load()
        if payload.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"{path}: not a feature snapshot of format {SNAPSHOT_FORMAT}")
        stored = payload["state"]
        missing = []
        for index, feature in enumerate(self.features):
            state = stored.get(feature.spec.signature)
            if state is None:
                missing.append(feature.spec)
                self._state[index] = {}
            else:
                self._state[index] = state
        self._replan(self.features)
        self.watermark = payload["watermark"]
        self._seen = payload["seen"]
        return payload["position"], missing


class _SnapshotUnpickler(pickle.Unpickler):
    """Loads only what a snapshot holds: riskguard's state classes, arrays, sketches, numpy arrays."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("riskguard.features.memory", "_Series"),
        ("riskguard.features.memory", "_Distinct"),
        ("array", "array"),
        ("array", "_array_reconstructor"),
        ("datasketch.hyperloglog", "HyperLogLog"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("builtins", "tuple"),
        ("builtins", "frozenset"),
        ("builtins", "set"),
        ("datasketch.hashfunc", "sha1_hash32"),
        ("datetime", "datetime"),
        ("datetime", "timezone"),
        ("datetime", "timedelta"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"a feature snapshot may not hold {module}.{name}")
        return super().find_class(module, name)


_NOTHING = {
    "count": 0,
    "sum": 0,
    "avg": (0, 0),
    "min": None,
    "max": None,
    "first_seen": None,
    "last_seen": None,
}


def _x(kind: str, item: Any, t_us: int) -> int:
    """The per-bucket value an event adds: amount units, or its time for first_seen / last_seen."""
    if kind in ("first_seen", "last_seen"):
        return t_us
    return 0 if kind == "count" else item


__all__ = ["MemoryFeatureEngine", "Prepared"]
