"""Two small in-memory structures the analyser keeps: time-ordered record lists and disjoint sets.

``Timeline``: the records that share something (an identifier, a text, a template), in time order, with
the window look-ups the linking needs. ``Groups``: disjoint sets over record (or text) numbers that also
keep each set's members. scipy's ``DisjointSet`` does the union-find part, but it cannot be loaded from
component labels computed in bulk (``scipy.sparse.csgraph.connected_components``) in one step nor keep
members per set, so these few lines are written here.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator


class Timeline:
    """Record numbers in time order (``times[i]`` is when ``rids[i]`` happened)."""

    __slots__ = ("rids", "times")

    def __init__(self, times: list[int] | None = None, rids: list[int] | None = None) -> None:
        self.times: list[int] = times if times is not None else []
        self.rids: list[int] = rids if rids is not None else []

    def __len__(self) -> int:
        return len(self.rids)

    def add(self, at: int, rid: int) -> None:
        if not self.times or at >= self.times[-1]:
            self.times.append(at)
            self.rids.append(rid)
            return
        where = bisect.bisect_right(self.times, at)
        self.times.insert(where, at)
        self.rids.insert(where, rid)

    def within(self, at: int, window: int) -> list[int]:
        """Records at most ``window`` ms from ``at``, in time order."""
        lo = bisect.bisect_left(self.times, at - window)
        hi = bisect.bisect_right(self.times, at + window)
        return self.rids[lo:hi]

    def nearest_other(self, at: int, window: int, owner: list[str], mine: str) -> tuple[int | None, int | None]:
        """The nearest records before (or at) and after ``at``, within ``window`` ms, whose ``owner`` (the
        customer) is not ``mine``."""
        where = bisect.bisect_right(self.times, at)
        before = after = None
        for i in range(where - 1, -1, -1):
            if at - self.times[i] > window:
                break
            if owner[self.rids[i]] != mine:
                before = self.rids[i]
                break
        for i in range(where, len(self.times)):
            if self.times[i] - at > window:
                break
            if owner[self.rids[i]] != mine:
                after = self.rids[i]
                break
        return before, after

    def outward(self, at: int, window: int) -> Iterator[int]:
        """Records within ``window`` ms of ``at``, nearest in time first."""
        mid = bisect.bisect_left(self.times, at)
        lo, hi = mid - 1, mid
        n = len(self.times)
        while True:
            left_ok = lo >= 0 and at - self.times[lo] <= window
            right_ok = hi < n and self.times[hi] - at <= window
            if not left_ok and not right_ok:
                return
            if right_ok and (not left_ok or self.times[hi] - at <= at - self.times[lo]):
                yield self.rids[hi]
                hi += 1
            else:
                yield self.rids[lo]
                lo -= 1

    def absorb(self, other: Timeline) -> None:
        """Takes ``other``'s records in (a few one by one, many by merging)."""
        if len(other) <= 64:
            for at, rid in zip(other.times, other.rids, strict=True):
                self.add(at, rid)
            return
        merged = list(heapq.merge(zip(self.times, self.rids, strict=True), zip(other.times, other.rids, strict=True)))
        self.times = [t for t, _ in merged]
        self.rids = [r for _, r in merged]


class Groups:
    """Disjoint sets over ``0..n-1`` with their members; ``find`` halves paths, ``union`` links the smaller
    set under the larger and returns the surviving root."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.members: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.parent)

    def add(self) -> int:
        item = len(self.parent)
        self.parent.append(item)
        self.members[item] = [item]
        return item

    def load(self, labels: Iterable[int]) -> None:
        """Appends items already grouped: equal labels are one set (bulk loading)."""
        first: dict[int, int] = {}
        start = len(self.parent)
        for offset, label in enumerate(labels):
            item = start + offset
            root = first.setdefault(label, item)
            self.parent.append(root)
            if root == item:
                self.members[item] = [item]
            else:
                self.members[root].append(item)

    def find(self, item: int) -> int:
        parent = self.parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra].extend(self.members.pop(rb))
        return ra

    def roots(self) -> list[int]:
        return list(self.members)
