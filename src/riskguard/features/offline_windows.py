"""Window arithmetic of the offline feature path, vectorised with numpy.

Everything here works in *query order*: the events that carry a feature's key, sorted by key and, within
a key, by arrival. ``seg`` numbers the keys (non-decreasing along query order), positions are indexes in
that order. The semantics are features/reference.py's; this module only computes them in bulk:

* ``arrival`` runs the watermark, late and duplicate rules of the whole stream (the only sequential
  part, and a loop only over events whose id was seen before).
* ``Window`` finds, for every event, the folded events its read range holds. A key's folded events that
  arrived in non-decreasing bucket order (nearly all of them in any real stream) form one contiguous
  run of the key's *in-order members*, so an event's range is an index interval ``[lo, hi)`` found by
  binary search; the few *stragglers* (folded events older, by bucket, than one folded before them) are
  matched to the events whose ranges hold them as explicit (event, straggler) pairs.
* ``RangeTable`` answers min/max over intervals (a sparse table), ``distinct_counts`` counts distinct
  values over intervals with a difference array for the events that read in order and a direct count
  for the rest.

Written by hand because no library computes point-in-time windows over *arrival* order with late events
and a watermark: polars' rolling and dynamic group-bys window over event time and would let an event see
events that arrived after it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Combined codes (segment × span + value) stay below this, far from int64 overflow.
_SAFE = 1 << 62
_NO_INT = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Arrival:
    """Per event, in arrival order: the watermark it met, and whether it was late, a duplicate, folded."""

    watermark: np.ndarray  # int64 µs; meaningless where has_watermark is False (the first event)
    has_watermark: np.ndarray
    late: np.ndarray
    duplicate: np.ndarray
    folded: np.ndarray


def arrival(t_us: np.ndarray, ids: Callable[[], list[str]], first: np.ndarray, lateness_us: int) -> Arrival:
    """The watermark, late and duplicate decisions of reference.reference_values, for a whole stream.

    ``first`` marks each id's first occurrence. The watermark before event ``i`` is the latest time of the
    events folded before it; a late event never raises it (it is older than the watermark), so only
    duplicates (repeated ids) keep it from being a plain running maximum. Events with a repeated id are
    few: they are decided one by one, in arrival order, against the running maximum of the others.
    ``ids`` gives the event ids (only asked for when an id repeats).
    """
    n = len(t_us)
    plain = np.where(first, t_us, _NO_INT)
    before = np.full(n, _NO_INT, dtype=np.int64)
    if n > 1:
        np.maximum.accumulate(plain[:-1], out=before[1:])
    repeats = np.flatnonzero(~first).tolist()
    duplicate = np.zeros(n, dtype=bool)
    rows: list[int] = []  # repeats that raised the watermark, and the times they raised it to
    highs: list[int] = []
    if repeats:
        event_ids = ids()
        times = t_us.tolist()
        base = before.tolist()
        heads = _first_rows(event_ids, {event_ids[r] for r in repeats})

        def watermark_at(row: int) -> int:
            k = bisect_left(rows, row)
            return max(base[row], highs[k - 1] if k else _NO_INT)

        last_folded: dict[str, int | None] = {}
        for row in repeats:
            event_id = event_ids[row]
            if event_id not in last_folded:
                head = heads[event_id]
                wm = watermark_at(head)
                last_folded[event_id] = times[head] if wm == _NO_INT or times[head] >= wm - lateness_us else None
            wm = watermark_at(row)
            seen = last_folded[event_id]
            duplicate[row] = seen is not None and seen >= wm - lateness_us
            if duplicate[row] or times[row] < wm - lateness_us:
                continue
            last_folded[event_id] = times[row]
            if not highs or times[row] > highs[-1]:
                rows.append(row)
                highs.append(times[row])
    watermark = before
    if rows:
        k = np.searchsorted(np.asarray(rows, dtype=np.int64), np.arange(n), side="left")
        watermark = np.maximum(before, np.asarray([_NO_INT, *highs], dtype=np.int64)[k])
    has_watermark = watermark != _NO_INT
    late = has_watermark & (t_us < np.where(has_watermark, watermark, 0) - lateness_us)
    return Arrival(watermark, has_watermark, late, duplicate, ~late & ~duplicate)


def _first_rows(event_ids: list[str], wanted: set[str]) -> dict[str, int]:
    """The row of the first occurrence of each id in ``wanted``."""
    found: dict[str, int] = {}
    for row, event_id in enumerate(event_ids):
        if event_id in wanted and event_id not in found:
            found[event_id] = row
            if len(found) == len(wanted):
                break
    return found


# ---------------------------------------------------------------------- segment helpers
def segment_starts(seg: np.ndarray) -> np.ndarray:
    """For each position, the position where its segment begins."""
    n = len(seg)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(seg[1:], seg[:-1], out=change[1:])
    heads = np.flatnonzero(change)
    return heads[np.cumsum(change) - 1]


def exclusive_segment_max(seg: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(has_earlier, earlier_max): the maximum of the values before each position within its segment."""
    n = len(values)
    has = np.zeros(n, dtype=bool)
    result = np.zeros(n, dtype=np.int64)
    if n < 2:
        return has, result
    low = int(values.min())
    scale = int(values.max()) - low + 1
    seg64 = seg.astype(np.int64)
    if (int(seg.max()) + 1) * scale < _SAFE:  # later segments code higher: one running maximum serves all
        decoded = np.maximum.accumulate(seg64 * scale + (values - low)) - seg64 * scale + low
    else:
        ranks, levels = _ranks(values)
        width = len(levels)
        decoded = levels[np.maximum.accumulate(seg64 * width + ranks) - seg64 * width]
    has[1:] = seg[1:] == seg[:-1]
    result[1:] = decoded[:-1]
    return has, result


def _ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    levels, ranks = np.unique(values, return_inverse=True)
    return ranks.astype(np.int64), levels


def segment_search(seg_a: np.ndarray, val_a: np.ndarray, seg_q: np.ndarray, val_q: np.ndarray, side: str) -> np.ndarray:
    """``searchsorted`` inside segments: for each query, the index into ``a`` (sorted by segment, then
    value) of the first element of the query's segment whose value is above (``right``) or not below
    (``left``) the query's value. Indexes are global: a query past its segment's elements gets the
    segment's end."""
    if len(val_q) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(val_a) == 0:
        return np.zeros(len(val_q), dtype=np.int64)
    low, high = int(val_a.min()), int(val_a.max())
    clipped = np.clip(val_q, low - 1, high + 1)
    scale = high - low + 3
    top = max(int(seg_a.max()), int(seg_q.max())) + 1
    if top * scale < _SAFE:
        codes = seg_a.astype(np.int64) * scale + (val_a - low + 1)
        wanted = seg_q.astype(np.int64) * scale + (clipped - low + 1)
        return np.searchsorted(codes, wanted, side=side)  # type: ignore[call-overload]
    ranks, levels = _ranks(val_a)
    width = len(levels) + 1
    if top * width >= _SAFE:  # renumber the segments densely (their order is kept)
        both = np.unique(np.concatenate([seg_a, seg_q]), return_inverse=True)[1].reshape(-1)
        seg_a, seg_q = both[: len(seg_a)], both[len(seg_a) :]
    codes = seg_a.astype(np.int64) * width + ranks
    bound = np.searchsorted(levels, val_q, side=side)  # type: ignore[call-overload]
    return np.searchsorted(codes, seg_q.astype(np.int64) * width + bound, side="left")


def expand(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (owner, index) with ``starts[owner] <= index < ends[owner]`` (empty ranges allowed)."""
    lengths = np.maximum(ends - starts, 0)
    total = int(lengths.sum())
    owners = np.repeat(np.arange(len(starts), dtype=np.int64), lengths)
    if total == 0:
        return owners, np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    index = np.arange(total, dtype=np.int64) - np.repeat(offsets, lengths) + np.repeat(starts, lengths)
    return owners, index


# ---------------------------------------------------------------------- windows
@dataclass(frozen=True)
class Keyed:
    """The queries of one entity key and bucket size: ``seg`` (key), ``starts`` (where each key begins),
    ``high`` (bucket), ``regular`` (bucket not below any earlier query's of the key: ranges of regular
    queries only move forward) and, when it fits in int64, ``code``: one number per query ordered like
    (key, bucket), with room below for windows of up to ``MAX_BUCKETS`` buckets."""

    seg: np.ndarray
    starts: np.ndarray
    high: np.ndarray
    regular: np.ndarray
    irregular: np.ndarray  # positions of the others
    code: np.ndarray | None
    scale: int
    offset: int

    def low_codes(self, floor: np.ndarray) -> np.ndarray:
        """Codes of the buckets ``max(high, floor)`` (subtract a window's bucket count for its lows)."""
        assert self.code is not None
        return np.maximum(self.code, self.code + (floor - self.high))


def keyed(seg: np.ndarray, starts: np.ndarray, high: np.ndarray, max_buckets: int) -> Keyed:
    if len(seg) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Keyed(seg, starts, high, np.zeros(0, dtype=bool), empty, high.astype(np.int64), 1, 0)
    offset = int(high.min()) - max_buckets - 1
    scale = int(high.max()) - offset + 2
    if (int(seg.max()) + 1) * scale >= _SAFE:
        earlier, highest = exclusive_segment_max(seg, high)
        regular = ~earlier | (high >= highest)
        return Keyed(seg, starts, high, regular, np.flatnonzero(~regular), None, 0, 0)
    code = seg.astype(np.int64) * scale + (high - offset)
    regular = code >= _exclusive_running_max(code)
    return Keyed(seg, starts, high, regular, np.flatnonzero(~regular), code, scale, offset)


def _exclusive_running_max(values: np.ndarray) -> np.ndarray:
    out = np.empty_like(values)
    if len(values):
        out[0] = np.iinfo(values.dtype).min
        np.maximum.accumulate(values[:-1], out=out[1:])
    return out


@dataclass
class Window:
    """The read range of every query: in-order members ``[lo, hi)`` plus explicit straggler pairs.

    ``members`` are the positions of the in-order members (member index = index into it); ``pair_query``
    and ``pair_member`` list (query position, straggler position) for each straggler a query reads.
    """

    members: np.ndarray
    is_member: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    regular: np.ndarray
    pair_query: np.ndarray
    pair_member: np.ndarray

    @property
    def sizes(self) -> np.ndarray:
        return np.maximum(self.hi - self.lo, 0)


def window(keys: Keyed, floor: np.ndarray, floor_code: np.ndarray | None, buckets: int, member: np.ndarray) -> Window:
    """The read ranges of one feature of ``buckets`` buckets. A query reads the buckets
    ``(max(high, floor) - buckets, high]`` (``floor``: the oldest bucket still held, plus the window;
    ``floor_code``: ``keys.low_codes(floor)``); ``member``: the query's event is folded into the state."""
    seg, high, regular, irregular = keys.seg, keys.high, keys.regular, keys.irregular
    positions = np.flatnonzero(member)
    if keys.code is not None:
        code = keys.code[positions]
        straggler = code < _exclusive_running_max(code)
    else:
        has_earlier, earlier = exclusive_segment_max(seg[positions], high[positions])
        straggler = has_earlier & (high[positions] < earlier)
    if straggler.any():
        members = positions[~straggler]
        stragglers = positions[straggler]
        is_member = np.zeros(len(seg), dtype=bool)
        is_member[members] = True
    else:
        members, stragglers, is_member = positions, positions[:0], member
    hi = np.cumsum(is_member)
    hi -= is_member  # in-order members before each query, globally
    low = None
    if keys.code is not None and floor_code is not None:
        member_code = keys.code[members]
        lo = np.searchsorted(member_code, floor_code - buckets, side="right")
        top = np.searchsorted(member_code, keys.code[irregular], side="right")
    else:
        low = np.maximum(high, floor) - buckets
        seg_m, bucket_m = seg[members], high[members]
        lo = segment_search(seg_m, bucket_m, seg, low, "right")
        top = segment_search(seg_m, bucket_m, seg[irregular], high[irregular], "right")
    hi[irregular] = np.minimum(hi[irregular], top)
    pair_query = pair_member = positions[:0]
    if len(stragglers):
        if low is None:
            low = np.maximum(high, floor) - buckets
        pair_query, pair_member = _straggler_pairs(seg, keys.starts, high, low, regular, irregular, stragglers)
    return Window(members, is_member, lo, hi, regular, pair_query, pair_member)


def _straggler_pairs(
    seg: np.ndarray,
    starts: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    regular: np.ndarray,
    irregular: np.ndarray,
    stragglers: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(query, straggler) for every straggler inside a query's range."""
    reading = np.flatnonzero(regular)
    # regular queries after a straggler read it until their low bucket reaches it (lows only grow)
    first = np.searchsorted(reading, stragglers, side="right")
    last = segment_search(seg[reading], low[reading], seg[stragglers], high[stragglers], "left")
    owner, index = expand(first, last)
    queries = [reading[index]]
    members = [stragglers[owner]]
    if len(irregular):  # an irregular query checks each straggler of its key that arrived before it
        begin = np.searchsorted(stragglers, starts[irregular], side="left")
        end = np.searchsorted(stragglers, irregular, side="left")
        owner, index = expand(begin, end)
        queries.append(irregular[owner])
        members.append(stragglers[index])
    pq = np.concatenate(queries)
    pm = np.concatenate(members)
    keep = (low[pq] < high[pm]) & (high[pm] <= high[pq])
    return pq[keep], pm[keep]


# ---------------------------------------------------------------------- reductions
class RangeTable:
    """Minimum or maximum over index intervals of a fixed array (a sparse table, built as deep as the
    longest interval asked for)."""

    def __init__(self, values: np.ndarray, op: np.ufunc, longest: int) -> None:
        self.op = op
        self.levels = [values]
        width = 1
        while width * 2 <= longest:
            previous = self.levels[-1]
            self.levels.append(op(previous[:-width], previous[width:]))
            width *= 2

    def query(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """The reduction over ``[lo, hi)`` for non-empty intervals."""
        level = np.frexp((hi - lo).astype(np.float64))[1] - 1  # floor(log2(size)), exactly
        out = np.empty(len(lo), dtype=self.levels[0].dtype)
        for k in np.unique(level).tolist():
            pick = level == k
            table = self.levels[k]
            out[pick] = self.op(table[lo[pick]], table[hi[pick] - (1 << k)])
        return out


def window_reduce(win: Window, values: np.ndarray, op: np.ufunc) -> tuple[np.ndarray, np.ndarray]:
    """(found, result): ``op`` (np.minimum or np.maximum) of ``values`` (per query position) over each
    query's range; ``found`` is False where the range is empty."""
    sizes = win.sizes
    found = sizes > 0
    result = np.zeros(len(sizes), dtype=values.dtype)
    if found.any():
        table = RangeTable(values[win.members], op, int(sizes.max()))
        result[found] = table.query(win.lo[found], win.hi[found])
    if len(win.pair_query):
        extra = values[win.pair_member]
        fresh = ~found[win.pair_query]
        result[win.pair_query[fresh]] = extra[fresh]  # any straggler's value starts an empty range
        op.at(result, win.pair_query, extra)
        found[win.pair_query] = True
    return found, result


def window_sum(win: Window, values: np.ndarray) -> np.ndarray:
    """Sum of ``values`` (per query position) over each query's range: int64, or Python ints (object)
    where int64 could overflow."""
    dtype: type | np.dtype = object if values.dtype == object or _may_overflow(values) else np.dtype(np.int64)
    picked = values[win.members].astype(dtype)
    total = np.zeros(len(picked) + 1, dtype=dtype)
    total[1:] = np.cumsum(picked)
    result = total[np.maximum(win.hi, win.lo)] - total[win.lo]
    if len(win.pair_query):
        np.add.at(result, win.pair_query, values[win.pair_member].astype(dtype))
    return result


def _may_overflow(values: np.ndarray) -> bool:
    if len(values) == 0:
        return False
    biggest = max(abs(int(values.max())), abs(int(values.min())))
    return biggest * len(values) >= _SAFE


def window_counts(win: Window) -> np.ndarray:
    counts = win.sizes.astype(np.int64)
    if len(win.pair_query):
        counts += np.bincount(win.pair_query, minlength=len(counts))
    return counts


def distinct_counts(win: Window, seg: np.ndarray, tokens: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Distinct tokens over each query's range, plus the query's own token where ``current``.

    ``tokens`` are non-negative integer codes per query position (valid at members and wherever
    ``current``). The range's in-order members are counted with a difference array for regular queries
    (each member counts for the regular queries after it, up to the next member with its token and while
    the range still starts at or before it: range starts only grow along regular queries) and directly for
    the others. Then each query adds the tokens it holds from outside that run (stragglers it reads, its
    own) that the run does not hold: for an in-order member reading in order, its own token is in the run
    exactly when the previous member with that token is.
    """
    q = len(seg)
    members = win.members
    m = len(members)
    width = int(tokens.max(initial=0)) + 1
    rest_q = np.concatenate([win.pair_query, np.flatnonzero(current & ~(win.is_member & win.regular))])
    if len(win.pair_query):  # a query that also reads stragglers checks its own token with them
        with_pairs = np.zeros(q, dtype=bool)
        with_pairs[win.pair_query] = True
        rest_q = np.concatenate([rest_q, np.flatnonzero(current & win.is_member & win.regular & with_pairs)])
    rest_t = tokens[np.concatenate([win.pair_member, rest_q[len(win.pair_query) :]])]
    member_codes, rest_codes = _pair_codes(seg, tokens, members, rest_q, rest_t, width)
    order = np.argsort(member_codes, kind="stable")  # by code, then member index
    ordered = member_codes[order]
    same = ordered[1:] == ordered[:-1]
    previous = np.full(m, -1, dtype=np.int64)
    following = np.full(m, -1, dtype=np.int64)
    previous[order[1:][same]] = order[:-1][same]
    following[order[:-1][same]] = order[1:][same]

    counts = np.zeros(q, dtype=np.int64)
    reading = np.cumsum(win.regular)  # regular queries at or before each position
    r = int(reading[-1]) if q else 0
    if m and r:
        begin = reading[members]  # the first regular query after the member
        # regular queries whose range starts at or before member j (starts only grow)
        end = np.cumsum(np.bincount(np.minimum(win.lo[win.regular], m), minlength=m + 1))[:m]
        upto = np.where(following >= 0, reading[members[following]], r)
        end = np.minimum(end, upto)
        keep = end > begin
        marks = np.bincount(begin[keep], minlength=r + 1) - np.bincount(end[keep], minlength=r + 1)
        counts[win.regular] = np.cumsum(marks)[:r]
    irregular = np.flatnonzero(~win.regular)
    if m and len(irregular):
        owner, index = expand(win.lo[irregular], win.hi[irregular])
        fresh = previous[index] < win.lo[irregular][owner]
        counts[irregular] += np.bincount(owner[fresh], minlength=len(irregular))
    # own tokens of in-order members reading in order (their hi is their member index)
    simple = current & win.is_member & win.regular
    if len(win.pair_query):
        simple &= ~with_pairs
    if m:
        own = np.flatnonzero(simple)
        simple[own[previous[win.hi[own]] >= win.lo[own]]] = False  # already counted in the run
    counts += simple
    if len(rest_q):
        span = int(rest_codes.max()) + 1
        if q * span < _SAFE:
            unique = np.unique(rest_q * span + rest_codes)
            rest_q, rest_codes = unique // span, unique % span
        else:
            pairs = np.unique(np.stack([rest_q, rest_codes], axis=1), axis=0)
            rest_q, rest_codes = pairs[:, 0], pairs[:, 1]
        present = np.zeros(len(rest_q), dtype=bool)
        if m:
            # the latest in-order member with the code below the query's hi: present if not below lo
            k = segment_search(ordered, order, rest_codes, win.hi[rest_q], "left")
            at = np.maximum(k - 1, 0)
            present = (k > 0) & (ordered[at] == rest_codes) & (order[at] >= win.lo[rest_q])
        counts += np.bincount(rest_q[~present], minlength=q)
    return counts


def _pair_codes(
    seg: np.ndarray, tokens: np.ndarray, members: np.ndarray, rest_q: np.ndarray, rest_t: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Codes of (key, token) for the members and for the other candidates, ordered like the pairs."""
    if len(seg) == 0 or (int(seg.max()) + 1) * width < _SAFE:
        return seg[members] * width + tokens[members], seg[rest_q] * width + rest_t
    pairs = np.stack([np.concatenate([seg[members], seg[rest_q]]), np.concatenate([tokens[members], rest_t])], axis=1)
    codes = np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
    return codes[: len(members)], codes[len(members) :]
