"""Templated text: normalisation, character shingles, MinHash signatures and exact Jaccard similarity.

Texts are compared as sets of character shingles, 3 characters wide for Chinese and 5 for alphabetic
text, so Chinese needs no word segmentation. Before shingling a text is NFKC-normalised and case-folded,
each run of digits becomes one ``0`` (amounts, dates and phone numbers are the slots a template fills),
and punctuation, symbols and white space are dropped.

A shingle's key is exact for 3-character shingles (three code points packed into 63 bits) and a 64-bit
polynomial hash for wider ones; the Jaccard similarity that verifies every candidate pair is computed on
these keys, so it is exact for Chinese.

Signatures are datasketch MinHash signatures (scheme ``affine32``, seed 1) over a 32-bit fingerprint of
each key. :meth:`MinHasher.signature` makes one with datasketch. :meth:`MinHasher.signatures` makes many
at once with the same arithmetic vectorised over every text (written here because datasketch hashes
one text at a time in a Python loop, about 150 µs a text; the vectorised form gives bit-identical
signatures, which the tests check, in a few µs a text).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from datasketch import LeanMinHash, MinHash, MinHashLSH

SEED = 1
_DIGITS = re.compile(r"\d+")
_DROP = re.compile(r"[\W_]+")
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the hash of wide shingles
_PACK = np.uint64(1 << 21)  # every code point fits in 21 bits


def normalise(text: str) -> str:
    """The form texts are compared in: ``"本人因疫情失业，欠款36500元。"`` → ``"本人因疫情失业欠款0元"``."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _DROP.sub("", _DIGITS.sub("0", folded))


def _cjk(codes: np.ndarray) -> np.ndarray:
    return (
        ((codes >= 0x3400) & (codes <= 0x9FFF))
        | ((codes >= 0xF900) & (codes <= 0xFAFF))
        | ((codes >= 0x20000) & (codes <= 0x2FA1F))
    )


def _widths(cjk: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """3 for texts at least half Chinese, 5 otherwise."""
    return np.where(cjk * 2 >= lengths, 3, 5)


def shingle_width(norm: str) -> int:
    codes = _codes(norm)
    return int(_widths(np.array([_cjk(codes).sum()]), np.array([len(codes)]))[0])


def _codes(norm: str) -> np.ndarray:
    return np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def _window_keys(codes: np.ndarray, width: int) -> np.ndarray:
    """The key of every ``width``-wide window of ``codes`` (a text shorter than that is one window)."""
    width = min(width, len(codes))
    base = _PACK if width <= 3 else _MIX
    count = len(codes) - width + 1
    keys = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(width):
            keys = keys * base + codes[j : j + count]
    return keys


def shingle_keys(norm: str) -> np.ndarray:
    """Sorted distinct shingle keys (uint64) of a normalised text; empty for an empty text."""
    if not norm:
        return np.zeros(0, dtype=np.uint64)
    codes = _codes(norm)
    keys = np.sort(_window_keys(codes, int(_widths(np.array([_cjk(codes).sum()]), np.array([len(codes)]))[0])))
    return keys[np.r_[True, keys[1:] != keys[:-1]]]


def shingle_table(norms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every text's sorted distinct shingle keys at once: ``(keys, offsets)``, text ``i`` owning
    ``keys[offsets[i]:offsets[i + 1]]`` (vectorised: one pass over the concatenated texts per width)."""
    n = len(norms)
    lengths = np.fromiter((len(t) for t in norms), dtype=np.int64, count=n)
    codes = np.frombuffer("".join(norms).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    cjk_before = np.zeros(len(codes) + 1, dtype=np.int64)
    np.cumsum(_cjk(codes), out=cjk_before[1:])
    widths = _widths(cjk_before[starts[1:]] - cjk_before[starts[:-1]], lengths)
    owner_parts, key_parts = [], []
    for width in np.unique(widths):
        width = int(width)
        texts = np.flatnonzero((widths == width) & (lengths > 0))
        if not len(texts):
            continue
        long = texts[lengths[texts] >= width]
        if len(long):
            keys = _window_keys(codes, width)  # windows starting at every position of the concatenation
            counts = lengths[long] - width + 1
            first = np.repeat(starts[long] - np.cumsum(np.r_[0, counts[:-1]]), counts)
            position = first + np.arange(int(counts.sum()))
            owner_parts.append(np.repeat(long, counts))
            key_parts.append(keys[position])
        for text in texts[lengths[texts] < width]:  # shorter than a shingle: the whole text is one
            owner_parts.append(np.array([text]))
            key_parts.append(_window_keys(codes[starts[text] : starts[text + 1]], width))
    if not key_parts:
        return np.zeros(0, dtype=np.uint64), np.zeros(n + 1, dtype=np.int64)
    frame = pl.DataFrame({"owner": np.concatenate(owner_parts), "key": np.concatenate(key_parts)})
    frame = frame.sort("owner", "key")  # polars sorts in parallel, several times faster than numpy here
    owner, keys = frame["owner"].to_numpy(), frame["key"].to_numpy()
    keep = np.ones(len(keys), dtype=bool)
    keep[1:] = (owner[1:] != owner[:-1]) | (keys[1:] != keys[:-1])
    owner, keys = owner[keep], keys[keep]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=offsets[1:])
    return keys, offsets


#: MurmurHash3 finalisers: (dtype, shift, multiplier, shift, multiplier, shift)
_FMIX64 = (np.uint64, 33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33)
_FMIX32 = (np.uint32, 16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)


def _fmix(values: np.ndarray, constants: tuple) -> np.ndarray:
    dtype, s1, m1, s2, m2, s3 = constants
    h = values.astype(dtype, copy=True)
    with np.errstate(over="ignore"):
        h ^= h >> dtype(s1)
        h *= dtype(m1)
        h ^= h >> dtype(s2)
        h *= dtype(m2)
        h ^= h >> dtype(s3)
    return h


def fingerprints(keys: np.ndarray) -> np.ndarray:
    """32-bit fingerprints of shingle keys (MurmurHash3's 64-bit finaliser, high half)."""
    return (_fmix(keys, _FMIX64) >> np.uint64(32)).astype(np.uint32)


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser: datasketch's pre-mix of the affine32 scheme."""
    return _fmix(h, _FMIX32)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted distinct key arrays."""
    if not len(a) and not len(b):
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def _identity(value: int) -> int:
    return value


@dataclass(frozen=True)
class Bands:
    """LSH banding: ``b`` bands of ``r`` rows, chosen by datasketch for the threshold."""

    threshold: float
    num_perm: int
    b: int
    r: int

    @classmethod
    def for_threshold(cls, threshold: float, num_perm: int) -> Bands:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        return cls(threshold, num_perm, lsh.b, lsh.r)

    def index(self) -> MinHashLSH:
        """An empty datasketch index with these bands (band keys hashed to ints to save memory)."""
        return MinHashLSH(num_perm=self.num_perm, params=(self.b, self.r), hashfunc=hash)


class MinHasher:
    """MinHash signatures of shingle-key sets, one at a time (datasketch) or many at once (vectorised)."""

    def __init__(self, num_perm: int = 64, seed: int = SEED) -> None:
        self.num_perm = num_perm
        self.seed = seed
        template = MinHash(num_perm=num_perm, seed=seed, hashfunc=_identity)
        self.permutations = template.permutations
        self._a = template.permutations[0].astype(np.uint32)
        self._b = template.permutations[1].astype(np.uint32)

    def signature(self, keys: np.ndarray) -> LeanMinHash:
        sketch = MinHash(
            num_perm=self.num_perm,
            seed=self.seed,
            hashfunc=_identity,
            permutations=self.permutations,
            scheme="affine32",
        )
        sketch.update_batch(fingerprints(keys).tolist())
        return LeanMinHash(sketch)

    def lean(self, hashvalues: np.ndarray) -> LeanMinHash:
        """A datasketch sketch holding signature values computed by :meth:`signatures`."""
        return LeanMinHash(seed=self.seed, hashvalues=hashvalues, scheme="affine32")

    def signatures(self, keys: np.ndarray, offsets: np.ndarray, chunk: int = 1 << 19) -> np.ndarray:
        """``(texts, num_perm)`` uint32 signatures of every text of a :func:`shingle_table`; an empty text
        keeps datasketch's empty value (all ones)."""
        n = len(offsets) - 1
        out = np.full((self.num_perm, n), np.iinfo(np.uint32).max, dtype=np.uint32)
        mixed = _fmix32(fingerprints(keys))
        buffer = np.empty((self.num_perm, min(chunk, len(keys))), dtype=np.uint32)  # reused: no page faults
        a, b = self._a[:, None], self._b[:, None]
        text = 0
        while text < n:
            stop = int(np.searchsorted(offsets, offsets[text] + chunk, side="right")) - 1
            stop = min(max(stop, text + 1), n)
            lo, hi = int(offsets[text]), int(offsets[stop])
            if hi - lo > buffer.shape[1]:  # one text longer than a chunk
                buffer = np.empty((self.num_perm, hi - lo), dtype=np.uint32)
            if hi > lo:
                values = buffer[:, : hi - lo]
                np.multiply(a, mixed[None, lo:hi], out=values)
                np.add(values, b, out=values)
                sizes = np.diff(offsets[text : stop + 1])
                full = np.flatnonzero(sizes > 0)
                starts = (offsets[text:stop] - lo)[full]
                out[:, text + full] = np.minimum.reduceat(values, starts, axis=1)
            text = stop
        return np.ascontiguousarray(out.T)
