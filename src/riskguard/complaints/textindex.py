"""Near-duplicate texts: one entry per distinct normalised text, its shingles, signature and lure terms;
an LSH index over them; and template groups (texts joined by verified similarity above a threshold).

Incremental (``add``): a new text is looked up in a datasketch ``MinHashLSH`` index; the candidates it
returns (texts sharing at least one band with it) are verified with the exact Jaccard similarity of their
shingle sets, all candidates at once. Bulk (``build``): the same bands are formed for every text at once
with numpy and grouped by sorting, and the candidate pairs verified with one sparse-matrix product;
datasketch's index is built from the signatures only when an incremental add follows (it inserts one
text at a time in Python, a minute per million texts).

Both paths find the same pairs: a pair is a candidate when the two signatures agree on every row of some
band, and it is kept when its exact similarity reaches the threshold. Where a band bucket holds more than
``BUCKET_ALL_PAIRS`` texts (thousands of variants of one common complaint), the bulk path verifies each
text against the bucket's first ``BUCKET_STAR`` texts only and the incremental path verifies the
``max_candidates`` newest candidates: enough to join them into one template group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from riskguard.complaints import lexicon
from riskguard.complaints.structures import Groups, Timeline
from riskguard.complaints.text import Bands, MinHasher, normalise, shingle_keys, shingle_table

BUCKET_ALL_PAIRS = 32
BUCKET_STAR = 8
_BAND_MIX = np.uint64(0x9E3779B97F4A7C15)


def band_keys(signatures: np.ndarray, bands: Bands) -> np.ndarray:
    """``(texts, b)`` 64-bit keys, one per band: equal when the band's ``r`` signature values are equal."""
    sig = signatures.astype(np.uint64)
    out = np.zeros((len(sig), bands.b), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands.b):
            key = np.zeros(len(sig), dtype=np.uint64)
            for row in range(band * bands.r, (band + 1) * bands.r):
                key = (key ^ sig[:, row]) * _BAND_MIX
            out[:, band] = key ^ (key >> np.uint64(29))
    return out


def bucket_pairs(keys: np.ndarray, all_pairs: int = BUCKET_ALL_PAIRS, star: int = BUCKET_STAR) -> np.ndarray:
    """Distinct candidate pairs ``(a, b)``, ``a < b``, of items sharing a key in some column of ``keys``."""
    parts = []
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        sorted_keys = keys[order, band]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True):
            members = order[start : start + size]
            if size <= all_pairs:
                a, b = np.triu_indices(size, 1)
            else:
                hub = min(star, size)
                a = np.repeat(np.arange(hub), size)
                b = np.tile(np.arange(size), hub)
                keep = a < b
                a, b = a[keep], b[keep]
            parts.append(np.stack([members[a], members[b]], axis=1))
    if not parts:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(parts), axis=1)
    return np.unique(pairs, axis=0)


def incidence(keys: np.ndarray, offsets: np.ndarray) -> sparse.csr_matrix:
    """Texts × distinct shingles, 1 where the text has the shingle (rows of a shingle table)."""
    n = len(offsets) - 1
    ids = pl.Series(keys).rank("dense").to_numpy().astype(np.int64) - 1 if len(keys) else np.zeros(0, np.int64)
    rows = np.repeat(np.arange(n), np.diff(offsets))
    width = int(ids.max()) + 1 if len(ids) else 1
    return sparse.csr_matrix((np.ones(len(ids), dtype=np.float32), (rows, ids)), shape=(n, width))


def pair_similarity(matrix: sparse.csr_matrix, pairs: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of each pair of rows of an incidence matrix (one sparse product)."""
    if not len(pairs):
        return np.zeros(0)
    sizes = np.diff(matrix.indptr)
    inter = np.asarray(matrix[pairs[:, 0]].multiply(matrix[pairs[:, 1]]).sum(axis=1)).ravel()
    union = sizes[pairs[:, 0]] + sizes[pairs[:, 1]] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


class TextIndex:
    def __init__(self, *, num_perm: int, lsh_threshold: float, template_similarity: float, max_candidates: int) -> None:
        self.hasher = MinHasher(num_perm)
        self.bands = Bands.for_threshold(lsh_threshold, num_perm)
        self.template_similarity = template_similarity
        self.max_candidates = max_candidates
        self.uid_of: dict[str, int] = {}
        self.keys: list[np.ndarray] = []
        self.lures: list[tuple[str, ...]] = []
        self.signatures = np.zeros((0, num_perm), dtype=np.uint32)
        self.records: list[Timeline] = []  # per text: the records that wrote it
        self.groups = Groups()  # template groups over texts
        self.group_times: dict[int, Timeline] = {}  # per group root: its records
        self._lsh = None
        self._lsh_size = 0

    def __len__(self) -> int:
        return len(self.keys)

    # ------------------------------------------------------------------ incremental
    def _index(self):
        """datasketch's LSH index holding every text so far (built on first use after a bulk build)."""
        if self._lsh is None:
            self._lsh = self.bands.index()
        if self._lsh_size < len(self.keys):
            with self._lsh.insertion_session() as session:
                for uid in range(self._lsh_size, len(self.keys)):
                    session.insert(uid, self.hasher.lean(self.signatures[uid]), check_duplication=False)
            self._lsh_size = len(self.keys)
        return self._lsh

    def _grow(self, signature: np.ndarray) -> None:
        n = len(self.keys)
        if n > len(self.signatures):
            bigger = np.zeros((max(1024, 2 * len(self.signatures)), self.signatures.shape[1]), dtype=np.uint32)
            bigger[: len(self.signatures)] = self.signatures
            self.signatures = bigger
        self.signatures[n - 1] = signature

    def verify(self, uid: int, candidates: Sequence[int]) -> np.ndarray:
        """Exact Jaccard similarity of text ``uid`` with each candidate (all at once)."""
        if not len(candidates):
            return np.zeros(0)
        mine = self.keys[uid]
        theirs = [self.keys[c] for c in candidates]
        sizes = np.fromiter((len(t) for t in theirs), dtype=np.int64, count=len(theirs))
        hits = np.isin(np.concatenate(theirs), mine).astype(np.int64)
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        inter = np.add.reduceat(hits, starts) if len(hits) else np.zeros(len(theirs), dtype=np.int64)
        inter = np.where(sizes > 0, inter, 0)
        union = len(mine) + sizes - inter
        return np.where(union > 0, inter / np.maximum(union, 1), 0.0)

    def neighbours(self, uid: int, min_similarity: float) -> list[tuple[int, float]]:
        """Texts at least ``min_similarity`` alike with ``uid`` (itself included), among its LSH candidates."""
        lsh = self._index()
        candidates = sorted(c for c in lsh.query(self.hasher.lean(self.signatures[uid])) if c != uid)
        candidates = candidates[-self.max_candidates :]
        similarity = self.verify(uid, candidates)
        found = [(c, float(s)) for c, s in zip(candidates, similarity, strict=True) if s >= min_similarity]
        return [(uid, 1.0), *found]

    def add(self, text: str, rid: int, at: int) -> int:
        """Files record ``rid``'s text; returns its text number (-1 for a text with nothing to compare)."""
        norm = normalise(text) if text else ""
        if not norm:
            return -1
        uid = self.uid_of.get(norm)
        if uid is None:
            uid = self._new_text(norm, text)
        self.records[uid].add(at, rid)
        self.group_times[self.groups.find(uid)].add(at, rid)
        return uid

    def _new_text(self, norm: str, text: str) -> int:
        uid = len(self.keys)
        self.uid_of[norm] = uid
        keys = shingle_keys(norm)
        self.keys.append(keys)
        self.lures.append(lexicon.matches(text))
        self._grow(self.hasher.signature(keys).hashvalues)
        self.records.append(Timeline())
        self.groups.add()
        self.group_times[uid] = Timeline()
        lsh = self._index()
        for other, _similarity in self.neighbours(uid, self.template_similarity)[1:]:
            self._join(uid, other)
        lsh.insert(uid, self.hasher.lean(self.signatures[uid]), check_duplication=False)
        self._lsh_size = len(self.keys)
        return uid

    def _join(self, a: int, b: int) -> None:
        ra, rb = self.groups.find(a), self.groups.find(b)
        if ra == rb:
            return
        root = self.groups.union(ra, rb)
        other = rb if root == ra else ra
        self.group_times[root].absorb(self.group_times.pop(other))

    # ------------------------------------------------------------------ bulk
    def build(self, texts: Sequence[str], ats: Sequence[int]) -> np.ndarray:
        """Files every record's text at once (records numbered in order, the index empty before);
        returns each record's text number (-1 where there is none)."""
        if len(self.keys):
            raise ValueError("bulk build needs an empty index")
        norms = [normalise(t) if t else "" for t in texts]
        uid_of: dict[str, int] = {}
        first_text: list[str] = []
        record_uid = np.full(len(norms), -1, dtype=np.int64)
        for rid, norm in enumerate(norms):
            if not norm:
                continue
            uid = uid_of.get(norm)
            if uid is None:
                uid = uid_of[norm] = len(first_text)
                first_text.append(texts[rid])
            record_uid[rid] = uid
        unique = list(uid_of)
        keys, offsets = shingle_table(unique)
        self.uid_of = uid_of
        self.keys = [keys[offsets[i] : offsets[i + 1]] for i in range(len(unique))]
        self.lures = [lexicon.matches(t) for t in first_text]
        self.signatures = self.hasher.signatures(keys, offsets)
        self.band_keys = band_keys(self.signatures, self.bands)
        self.incidence = incidence(keys, offsets)
        pairs = bucket_pairs(self.band_keys)
        similarity = pair_similarity(self.incidence, pairs)
        joined = pairs[similarity >= self.template_similarity]
        n = len(unique)
        graph = sparse.coo_matrix((np.ones(len(joined)), (joined[:, 0], joined[:, 1])), shape=(n, n))
        _count, labels = connected_components(graph, directed=False)
        self.groups.load(labels.tolist())
        has = record_uid >= 0
        frame = pl.DataFrame(
            {"rid": np.flatnonzero(has), "uid": record_uid[has], "at": np.asarray(ats, dtype=np.int64)[has]}
        )
        frame = frame.with_columns(group=pl.lit(pl.Series(labels, dtype=pl.Int64)).gather(pl.col("uid")))
        self.records = [Timeline() for _ in range(n)]
        for uid, times, rids in (
            frame.sort("uid", "at", "rid").group_by("uid", maintain_order=True).agg("at", "rid").iter_rows()
        ):
            self.records[uid] = Timeline(times, rids)
        root_of_label = {int(labels[root]): root for root in self.groups.roots()}
        self.group_times = {root: Timeline() for root in self.groups.roots()}
        for label, times, rids in (
            frame.sort("group", "at", "rid").group_by("group", maintain_order=True).agg("at", "rid").iter_rows()
        ):
            self.group_times[root_of_label[label]] = Timeline(times, rids)
        return record_uid
