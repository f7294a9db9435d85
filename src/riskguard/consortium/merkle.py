"""The Merkle tree of RFC 9162 §2.1 (Certificate Transparency v2): leaf and node hashing, an append-only
tree, and generation of inclusion (audit) paths and consistency proofs.

Written by hand: the Python packages for Merkle trees either use other hashing (no 0x00/0x01 domain
separation, midpoint splits) or keep every node as an object; this one holds only the hashes of complete
subtrees, one ``bytearray`` per level (64 bytes per leaf in all), so a million-leaf tree takes 64 MB and
an append costs one leaf hash plus, amortised, one node hash. Hashes of incomplete right-edge subtrees
are computed on demand (O(log n) node hashes).
"""

from __future__ import annotations

import hashlib

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """``HASH(0x00 || d)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``HASH(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): RFC 9162's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: list[bytes]) -> bytes:
    """MTH(D[n]) computed by the RFC's recursive definition, straight from the leaf hashes (a reference
    for tests and an audit that trusts nothing stored)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = split_point(n)
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


class MerkleTree:
    """An append-only tree of leaf hashes. ``levels[h]`` holds the hashes of the complete, aligned
    subtrees of ``2**h`` leaves, in order; every tree size up to ``size`` can be proved."""

    def __init__(self) -> None:
        self.levels: list[bytearray] = [bytearray()]
        self.size = 0

    def append(self, leaf: bytes) -> int:
        """Adds a leaf hash; returns its index."""
        index = self.size
        self.levels[0] += leaf
        node, position, height = leaf, index, 0
        while position & 1:
            left = self._get(height, position - 1)
            node = node_hash(left, node)
            height += 1
            position >>= 1
            if height == len(self.levels):
                self.levels.append(bytearray())
            self.levels[height] += node
        self.size += 1
        return index

    def extend(self, leaves: list[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def truncate(self, size: int) -> None:
        """Drops every leaf from ``size`` on (undoes appends that failed verification)."""
        if size > self.size:
            raise ValueError("cannot truncate a tree to a larger size")
        for height, level in enumerate(self.levels):
            del level[HASH_SIZE * (size >> height) :]
        self.size = size

    def _get(self, height: int, index: int) -> bytes:
        start = HASH_SIZE * index
        return bytes(self.levels[height][start : start + HASH_SIZE])

    def leaf(self, index: int) -> bytes:
        return self._get(0, index)

    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for ``end <= size``; ranges arising from the RFC's recursion only (a
        power-of-two range is aligned to its size)."""
        n = end - start
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0:
            height = n.bit_length() - 1
            if start % n == 0 and end <= self.size:
                return self._get(height, start >> height)
        k = split_point(n)
        return node_hash(self.subtree_hash(start, start + k), self.subtree_hash(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check_size(size)
        return self.subtree_hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of size {size}")
        outer_first: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = split_point(end - start)
            if index < start + k:
                outer_first.append(self.subtree_hash(start + k, end))
                end = start + k
            else:
                outer_first.append(self.subtree_hash(start, start + k))
                start += k
        return outer_first[::-1]

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 §2.1.4.1."""
        self._check_size(second)
        if not 0 <= first <= second:
            raise ValueError(f"no consistency proof from size {first} to size {second}")
        if first in (0, second):
            return []
        outer_first: list[bytes] = []
        start, end, m, complete = 0, second, first, True
        while True:
            n = end - start
            if m == n:
                if not complete:
                    outer_first.append(self.subtree_hash(start, end))
                break
            k = split_point(n)
            if m <= k:
                outer_first.append(self.subtree_hash(start + k, end))
                end = start + k
            else:
                outer_first.append(self.subtree_hash(start, start + k))
                start += k
                m -= k
                complete = False
        return outer_first[::-1]

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is beyond the {self.size} leaves held")
