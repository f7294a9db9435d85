"""Verification of inclusion and consistency proofs, written from RFC 9162 §2.1.3.2 and §2.1.4.2.

Kept apart from ``merkle`` (the prover) on purpose: a client checks what a log sends with this module
alone, and the tests check both against each other and against published vectors.
"""

from __future__ import annotations

import hmac

from riskguard.consortium.merkle import HASH_SIZE, node_hash


class ProofError(Exception):
    """A proof that does not verify: the log's answer is inconsistent with what it signed."""


def _check_hashes(hashes: list[bytes]) -> None:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise ProofError("a proof element is not a 32-byte SHA-256 hash")


def root_from_inclusion(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """The root that ``path`` implies for ``leaf`` at ``index`` in a tree of ``size`` (§2.1.3.2)."""
    _check_hashes([leaf, *path])
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofError("the inclusion path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion path is shorter than the tree is deep")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> None:
    """Raises ProofError unless ``leaf`` is at ``index`` in the tree of ``size`` with ``root``."""
    if not hmac.compare_digest(root_from_inclusion(leaf, index, size, path), root):
        raise ProofError(f"leaf {index} is not in the tree of size {size} with that root")


def verify_consistency(first: int, second: int, proof: list[bytes], first_root: bytes, second_root: bytes) -> None:
    """Raises ProofError unless the tree of ``second`` leaves with ``second_root`` extends the tree of
    ``first`` leaves with ``first_root`` (§2.1.4.2)."""
    _check_hashes([first_root, second_root, *proof])
    if not 0 <= first <= second:
        raise ProofError(f"no tree of size {second} extends one of size {first}")
    if first == second:
        if proof or not hmac.compare_digest(first_root, second_root):
            raise ProofError("two checkpoints of one size with different roots: the log forked")
        return
    if first == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree is empty")
        return
    if not proof:
        raise ProofError("an empty consistency proof between different sizes")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the tree is deep")
    if not hmac.compare_digest(fr, first_root):
        raise ProofError(f"the proof does not lead to the signed root of size {first}")
    if not hmac.compare_digest(sr, second_root):
        raise ProofError(f"the proof does not lead to the signed root of size {second}")
