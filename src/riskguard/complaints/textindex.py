"""Near-duplicate texts: one entry per distinct normalised text (its shingles, signature, LSH band keys
and lure terms), a datasketch LSH index over them, and template groups: texts joined by a verified
similarity of at least ``template_similarity``.

Incremental (``add``): a new text's candidates are the texts sharing an LSH band with it in datasketch's
``MinHashLSH``; each is verified with the exact Jaccard similarity of the shingle sets (all at once), and
the new text joins the template group of every candidate alike enough. For a text that shares its bands
with thousands of others (a complaint everybody writes) the look-up takes at most ``per_bucket`` texts
from each band's bucket, which is plenty to find its group; the index's own ``query`` would return the
whole union.

Bulk (``build``): the signatures of every text are computed at once (``text.MinHasher.signatures``), the
band keys with numpy, and candidate pairs by sorting them: all pairs of a bucket of up to
``BUCKET_ALL_PAIRS`` texts, each text with the bucket's first ``BUCKET_STAR`` texts in larger ones.
Pairs are joined in order, skipping those already in one group, after the same exact verification
(a MinHash estimate below ``template_similarity - PREFILTER_MARGIN`` skips the exact step). datasketch's
index is built from the signatures only when an incremental add follows (it inserts one text at a time
in Python, about a minute per million texts).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import polars as pl
from datasketch import MinHashLSH

from riskguard.complaints import lexicon
from riskguard.complaints.structures import Groups, Timeline
from riskguard.complaints.text import Bands, MinHasher, jaccard, normalise, shingle_keys, shingle_table

BUCKET_ALL_PAIRS = 8
BUCKET_STAR = 4
PREFILTER_MARGIN = 0.25
_BAND_MIX = np.uint64(0x9E3779B97F4A7C15)


def band_keys(signatures: np.ndarray, bands: Bands) -> np.ndarray:
    """``(texts, b)`` 64-bit keys, one per band: equal when the band's ``r`` signature values are equal."""
    sig = np.atleast_2d(signatures)[:, : bands.b * bands.r].astype(np.uint64).reshape(-1, bands.b, bands.r)
    key = np.zeros(sig.shape[:2], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for row in range(bands.r):
            key = (key ^ sig[:, :, row]) * _BAND_MIX
    return key ^ (key >> np.uint64(29))


def bucket_pairs(keys: np.ndarray, all_pairs: int = BUCKET_ALL_PAIRS, star: int = BUCKET_STAR) -> np.ndarray:
    """Distinct candidate pairs ``(a, b)``, ``a < b``, of items sharing a key in some column of ``keys``:
    every pair of a bucket of up to ``all_pairs`` items, each item with the bucket's first ``star`` items
    in a larger one. Sorted by ``a``, then ``b``."""
    parts = []
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        sorted_keys = keys[order, band]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        for size in np.unique(sizes[sizes > 1]).tolist():
            first = starts[sizes == size]
            if size <= all_pairs:
                a, b = np.triu_indices(size, 1)
            else:
                hub = min(star, size)
                a = np.repeat(np.arange(hub), size)
                b = np.tile(np.arange(size), hub)
                keep = a < b
                a, b = a[keep], b[keep]
            parts.append(np.stack([order[first[:, None] + a].ravel(), order[first[:, None] + b].ravel()], axis=1))
    if not parts:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(parts), axis=1).astype(np.int64)
    packed = pl.Series((pairs[:, 0] << 32) | pairs[:, 1]).unique().sort().to_numpy()
    return np.stack([packed >> 32, packed & 0xFFFFFFFF], axis=1)


class TextIndex:
    def __init__(self, *, num_perm: int, lsh_threshold: float, template_similarity: float, per_bucket: int) -> None:
        self.hasher = MinHasher(num_perm)
        self.bands = Bands.for_threshold(lsh_threshold, num_perm)
        self.template_similarity = template_similarity
        self.per_bucket = per_bucket
        self.uid_of: dict[str, int] = {}
        self.keys: list[np.ndarray] = []
        self.lures: list[tuple[str, ...]] = []
        self.signatures = np.zeros((0, num_perm), dtype=np.uint32)
        self.band_keys = np.zeros((0, self.bands.b), dtype=np.uint64)
        self.groups = Groups()  # template groups over texts
        self.group_times: dict[int, Timeline] = {}  # per group root: its records
        self._lsh = None
        self._lsh_size = 0

    def __len__(self) -> int:
        return len(self.keys)

    def _index(self) -> MinHashLSH:
        """datasketch's LSH index holding every text so far (built on first use after a bulk build)."""
        if self._lsh is None:
            self._lsh = self.bands.index()
        if self._lsh_size < len(self.keys):
            with self._lsh.insertion_session() as session:
                for uid in range(self._lsh_size, len(self.keys)):
                    session.insert(uid, self.hasher.lean(self.signatures[uid]), check_duplication=False)
            self._lsh_size = len(self.keys)
            if len(self.signatures) < len(self.keys) + 1024:  # room to grow without a copy on the next add
                self._reserve(len(self.keys) + max(1024, len(self.keys) // 2))
        return self._lsh

    def _reserve(self, size: int) -> None:
        for name in ("signatures", "band_keys"):
            old = getattr(self, name)
            bigger = np.zeros((size, old.shape[1]), dtype=old.dtype)
            bigger[: len(old)] = old
            setattr(self, name, bigger)

    def _append(self, signature: np.ndarray) -> None:
        n = len(self.keys)
        if n > len(self.signatures):
            self._reserve(max(1024, 2 * len(self.signatures)))
        self.signatures[n - 1] = signature
        self.band_keys[n - 1] = band_keys(signature, self.bands)[0]

    def verify(self, uid: int, candidates: Sequence[int]) -> np.ndarray:
        """Exact Jaccard similarity of text ``uid`` with each candidate (all at once)."""
        if not len(candidates):
            return np.zeros(0)
        mine = self.keys[uid]
        theirs = [self.keys[c] for c in candidates]
        sizes = np.fromiter((len(t) for t in theirs), dtype=np.int64, count=len(theirs))
        values = np.concatenate(theirs)
        where = np.minimum(np.searchsorted(mine, values), max(len(mine) - 1, 0))
        hits = (mine[where] == values).astype(np.int64) if len(mine) else np.zeros(len(values), dtype=np.int64)
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        inter = np.add.reduceat(hits, starts) if len(hits) else np.zeros(len(theirs), dtype=np.int64)
        inter = np.where(sizes > 0, inter, 0)
        union = len(mine) + sizes - inter
        return np.where(union > 0, inter / np.maximum(union, 1), 0.0)

    def share_band(self, uid: int, others: np.ndarray) -> np.ndarray:
        """Whether each text of ``others`` shares at least one LSH band with ``uid``."""
        return (self.band_keys[others] == self.band_keys[uid]).any(axis=1)

    def candidates(self, uid: int) -> list[int]:
        """Texts sharing an LSH band with ``uid`` in datasketch's index, at most ``per_bucket`` a band."""
        lsh = self._lsh if self._lsh is not None and self._lsh_size >= uid else self._index()
        values = self.signatures[uid]
        found: set[int] = set()
        for (start, end), table in zip(lsh.hashranges, lsh.hashtables, strict=True):
            # the key datasketch files a band under when built with hashfunc=hash (``MinHashLSH._H``)
            bucket = table.get(hash(bytes(values[start:end].byteswap().data)))
            found.update(itertools.islice(bucket, self.per_bucket))
        found.discard(uid)
        return sorted(found)

    def add(self, text: str, rid: int, at: int) -> int:
        """Files record ``rid``'s text; returns its text number (-1 for a text with nothing to compare)."""
        norm = normalise(text) if text else ""
        if not norm:
            return -1
        uid = self.uid_of.get(norm)
        if uid is None:
            uid = self._new_text(norm, text)
        self.group_times[self.groups.find(uid)].add(at, rid)
        return uid

    def _new_text(self, norm: str, text: str) -> int:
        lsh = self._index()  # up to date before this text joins it
        uid = len(self.keys)
        self.uid_of[norm] = uid
        keys = shingle_keys(norm)
        self.keys.append(keys)
        self.lures.append(lexicon.matches(text))
        self._append(self.hasher.signature(keys).hashvalues)
        self.groups.add()
        self.group_times[uid] = Timeline()
        candidates = self.candidates(uid)
        for other, similarity in zip(candidates, self.verify(uid, candidates).tolist(), strict=True):
            if similarity >= self.template_similarity:
                self._join(uid, other)
        lsh.insert(uid, self.hasher.lean(self.signatures[uid]), check_duplication=False)
        self._lsh_size = len(self.keys)
        return uid

    def _join(self, a: int, b: int) -> None:
        ra, rb = self.groups.find(a), self.groups.find(b)
        if ra == rb:
            return
        small, large = (ra, rb) if len(self.group_times[ra]) <= len(self.group_times[rb]) else (rb, ra)
        root = self.groups.union(ra, rb)
        times = self.group_times.pop(small)
        kept = self.group_times.pop(large)
        kept.absorb(times)
        self.group_times[root] = kept

    # ------------------------------------------------------------------ bulk
    def build(self, texts: Sequence[str], ats: Sequence[int]) -> np.ndarray:
        """Files every record's text at once (records numbered in order, the index empty before);
        returns each record's text number (-1 where there is none)."""
        if len(self.keys):
            raise ValueError("bulk build needs an empty index")
        uid_of: dict[str, int] = {}
        first_text: list[str] = []
        record_uid = np.full(len(texts), -1, dtype=np.int64)
        for rid, text in enumerate(texts):
            norm = normalise(text) if text else ""
            if not norm:
                continue
            uid = uid_of.get(norm)
            if uid is None:
                uid = uid_of[norm] = len(first_text)
                first_text.append(text)
            record_uid[rid] = uid
        unique = list(uid_of)
        keys, offsets = shingle_table(unique)
        bounds = offsets.tolist()
        self.uid_of = uid_of
        self.keys = [keys[bounds[i] : bounds[i + 1]] for i in range(len(unique))]
        self.lures = [lexicon.matches(t) for t in first_text]
        self.signatures = self.hasher.signatures(keys, offsets)
        self.band_keys = band_keys(self.signatures, self.bands)
        self.groups = Groups()
        self.groups.load(range(len(unique)))
        pairs = bucket_pairs(self.band_keys)
        if len(pairs):
            estimate = np.empty(len(pairs))
            for start in range(0, len(pairs), 1 << 20):
                chunk = pairs[start : start + (1 << 20)]
                estimate[start : start + len(chunk)] = (
                    self.signatures[chunk[:, 0]] == self.signatures[chunk[:, 1]]
                ).mean(axis=1)
            pairs = pairs[estimate >= self.template_similarity - PREFILTER_MARGIN]
        find, union, threshold = self.groups.find, self.groups.union, self.template_similarity
        for a, b in pairs.tolist():
            if find(a) != find(b) and jaccard(self.keys[a], self.keys[b]) >= threshold:
                union(a, b)
        has = record_uid >= 0
        roots = np.fromiter((find(u) for u in range(len(unique))), dtype=np.int64, count=len(unique))
        frame = pl.DataFrame(
            {
                "rid": np.flatnonzero(has),
                "group": roots[record_uid[has]],
                "at": np.asarray(ats, dtype=np.int64)[has],
            }
        )
        self.group_times = {root: Timeline() for root in self.groups.roots()}
        grouped = frame.sort("group", "at", "rid").group_by("group", maintain_order=True).agg("at", "rid")
        for root, times, rids in grouped.iter_rows():
            self.group_times[root] = Timeline(times, rids)
        return record_uid
