"""The log: RFC 9162 hashing and proofs against published vectors and the RFC's own recursive
definitions, C2SP signed notes against the Go reference vector, and the SQL ledger on SQLite and
PostgreSQL, including tampering with stored leaves and checkpoints.

Known-answer vectors: the eight leaves and their roots, inclusion paths and consistency proofs are
the Certificate Transparency reference vectors (RFC 6962's tree hash, unchanged in RFC 9162 for
SHA-256), as published with transparency-dev/merkle's tests. The tests also compute every root and
proof independently from the RFC's recursive definitions (MTH, PATH, PROOF) written out below, and
check the incremental tree and the verifier against those for every tree shape up to 70 leaves. The
signed-note vector is the PeterNeumann key and note from golang.org/x/mod/sumdb/note's tests.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from riskguard.consortium.entries import Genesis, Member, encode, sign_entry
from riskguard.consortium.ledger import SqlLedger, TamperedLog
from riskguard.consortium.merkle import EMPTY_ROOT, MerkleTree, leaf_hash, root_of
from riskguard.consortium.note import (
    Checkpoint,
    NoteError,
    SignedCheckpoint,
    Signer,
    Verifier,
    cosign,
    open_note,
    sign_note,
)
from riskguard.consortium.proofs import ProofError, root_from_inclusion, verify_consistency, verify_inclusion
from riskguard.consortium.tables import consortium_checkpoints, consortium_leaves
from riskguard.store.db import migrate, open_engine

LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CONSISTENCY = {
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}


# ---------------------------------------------------------------- the RFC's definitions, written out
def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(d: list[bytes]) -> bytes:
    if not d:
        return sha(b"")
    if len(d) == 1:
        return sha(b"\x00" + d[0])
    k = 1
    while k * 2 < len(d):
        k *= 2
    return sha(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1
    while k * 2 < len(d):
        k *= 2
    return [*path(m, d[:k]), mth(d[k:])] if m < k else [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [mth(d)]
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def tree_of(data: list[bytes]) -> MerkleTree:
    tree = MerkleTree()
    tree.extend([leaf_hash(x) for x in data])
    return tree


# ---------------------------------------------------------------- known answers
def test_reference_roots_paths_and_proofs() -> None:
    tree = tree_of(LEAVES)
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for n in range(1, 9):
        assert tree.root(n).hex() == ROOTS[n - 1] == mth(LEAVES[:n]).hex()
        assert root_of([leaf_hash(x) for x in LEAVES[:n]]).hex() == ROOTS[n - 1]
    for (m, n), want in INCLUSION.items():
        assert [p.hex() for p in tree.inclusion_proof(m, n)] == want
        verify_inclusion(leaf_hash(LEAVES[m]), m, n, [bytes.fromhex(p) for p in want], bytes.fromhex(ROOTS[n - 1]))
    for (m, n), want in CONSISTENCY.items():
        assert [p.hex() for p in tree.consistency_proof(m, n)] == want
        verify_consistency(
            m, n, [bytes.fromhex(p) for p in want], bytes.fromhex(ROOTS[m - 1]), bytes.fromhex(ROOTS[n - 1])
        )
    assert tree.consistency_proof(1, 1) == []


def test_every_shape_agrees_with_the_rfc_definitions_and_wrong_proofs_fail() -> None:
    data = [bytes([i, i * 7 % 256]) for i in range(70)]
    tree = tree_of(data)
    for n in range(1, 71):
        root = tree.root(n)
        assert root == mth(data[:n])
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            assert proof == path(m, data[:n])
            verify_inclusion(leaf_hash(data[m]), m, n, proof, root)
            with pytest.raises(ProofError):
                verify_inclusion(leaf_hash(data[m] + b"x"), m, n, proof, root)
            if n > 1:
                with pytest.raises(ProofError):
                    verify_inclusion(leaf_hash(data[m]), (m + 1) % n, n, proof, root)
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m, n)
            assert proof == (subproof(m, data[:n], True) if m < n else [])
            verify_consistency(m, n, proof, tree.root(m), root)
            if m < n:
                with pytest.raises(ProofError):
                    verify_consistency(m, n, proof, tree.root(m), sha(root))
                with pytest.raises(ProofError):
                    verify_consistency(m, n, proof[:-1], tree.root(m), root)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=200), st.data())
def test_appends_keep_every_old_root_provable(leaves: list[bytes], data: st.DataObject) -> None:
    tree = tree_of(leaves)
    n = len(leaves)
    m = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, n - 1))
    verify_consistency(m, n, tree.consistency_proof(m, n), tree.root(m), tree.root())
    assert root_from_inclusion(leaf_hash(leaves[index]), index, n, tree.inclusion_proof(index, n)) == tree.root()
    cut = data.draw(st.integers(0, n))
    tree.truncate(cut)
    assert tree.root() == root_of([leaf_hash(x) for x in leaves[:cut]])


def test_proof_arguments_out_of_range_are_refused() -> None:
    tree = tree_of(LEAVES)
    with pytest.raises(ValueError):
        tree.inclusion_proof(8, 8)
    with pytest.raises(ValueError):
        tree.consistency_proof(5, 9)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(LEAVES[0]), 8, 8, [], tree.root())
    with pytest.raises(ProofError):
        verify_consistency(8, 8, [], tree.root(), tree.root(7))  # same size, two roots: a fork
    with pytest.raises(ProofError):
        verify_inclusion(b"short", 0, 8, [], tree.root())


# ---------------------------------------------------------------- signed notes
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_signed_note_matches_the_go_reference_byte_for_byte() -> None:
    signer, verifier = Signer.parse(GO_SKEY), Verifier.parse(GO_VKEY)
    assert str(signer) == GO_SKEY and str(signer.verifier) == GO_VKEY
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE
    assert open_note(GO_NOTE, verifier) == GO_TEXT
    with pytest.raises(NoteError):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), verifier)
    with pytest.raises(NoteError):
        Verifier.parse(GO_VKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(NoteError):
        open_note(GO_NOTE, Signer.generate("PeterNeumann").verifier)


def test_checkpoints_and_cosignatures() -> None:
    log, witness, other = Signer.generate("example.org/log"), Signer.generate("bank-b"), Signer.generate("bank-c")
    text = Checkpoint("example.org/log", 8, bytes.fromhex(ROOTS[7])).text()
    assert text == f"example.org/log\n8\n{base64.b64encode(bytes.fromhex(ROOTS[7])).decode()}\n"
    signed = SignedCheckpoint.open(sign_note(text, [log]), log.verifier).with_cosignature(
        cosign(text, witness, 1_700_000_000)
    )
    assert signed.cosigners([witness.verifier, other.verifier]) == {"bank-b": 1_700_000_000}
    forged = signed.note.replace(
        cosign(text, witness, 1_700_000_000), cosign(text, other, 1_700_000_000).replace("bank-c", "bank-b")
    )
    assert SignedCheckpoint.open(forged, log.verifier).cosigners([witness.verifier]) == {}
    assert Checkpoint.parse(text) == signed.checkpoint
    for bad in ("example.org/log\n-1\nAAAA\n", "example.org/log\n8\n", "o\n01\n" + text.split("\n")[2] + "\n"):
        with pytest.raises(NoteError):
            Checkpoint.parse(bad)


# ---------------------------------------------------------------- the SQL ledger on both databases
def _entries(count: int) -> tuple[Signer, list[tuple[object, bytes]]]:
    admin = Signer.generate("bank-a")
    genesis = Genesis(
        origin="t/log",
        log_key=str(Signer.generate("t/log").verifier),
        token_key="00" * 32,
        token_member="bank-a",
        members=[Member("bank-a", "A", str(admin.verifier), ["admin", "witness"])],
        witness_threshold=1,
    )
    out = []
    for _ in range(count):
        entry = sign_entry(admin, "genesis", genesis)
        out.append((entry, encode(entry)))
    return admin, out


def test_sql_ledger_proves_and_catches_tampering(db_url: str) -> None:
    engine = open_engine(db_url)
    migrate(engine)
    log = Signer.generate("t/log")
    _, entries = _entries(13)
    ledger = SqlLedger(engine, "t/log", log_key=log.verifier)
    assert ledger.append(entries[:5]) == 0 and ledger.append(entries[5:]) == 5
    text = Checkpoint("t/log", 13, ledger.root()).text()
    ledger.save_checkpoint(SignedCheckpoint(Checkpoint.parse(text), sign_note(text, [log])))
    reopened = SqlLedger(engine, "t/log", log_key=log.verifier)
    assert reopened.root() == ledger.root() == root_of([leaf_hash(d) for _, d in entries])
    assert reopened.leaves(3, 5) == [d for _, d in entries[3:5]]
    proof = reopened.inclusion_proof(7, 13)
    verify_inclusion(leaf_hash(reopened.leaves(7, 8)[0]), 7, 13, proof, ledger.root())
    with pytest.raises(ProofError):
        reopened.append(entries[:1], expect_root=b"\x00" * 32)
    assert reopened.size == 13

    # a changed leaf: the served entry no longer proves against the signed root; a restart refuses
    with engine.begin() as connection:
        connection.execute(update(consortium_leaves).where(consortium_leaves.c.idx == 7).values(data=b'{"x":1}'))
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(reopened.leaves(7, 8)[0]), 7, 13, proof, ledger.root())
    with pytest.raises(TamperedLog):
        SqlLedger(engine, "t/log", log_key=log.verifier)
    with engine.begin() as connection:
        connection.execute(update(consortium_leaves).where(consortium_leaves.c.idx == 7).values(data=entries[7][1]))
    SqlLedger(engine, "t/log", log_key=log.verifier)

    # a changed checkpoint: its signature fails; a deleted leaf: the signed size is not there
    with engine.begin() as connection:
        connection.execute(
            update(consortium_checkpoints).values(
                note=sign_note(Checkpoint("t/log", 13, b"\x01" * 32).text(), [Signer.generate("t/log")])
            )
        )
    with pytest.raises(NoteError):
        SqlLedger(engine, "t/log", log_key=log.verifier)
    with engine.begin() as connection:
        connection.execute(update(consortium_checkpoints).values(note=sign_note(text, [log])))
        connection.execute(consortium_leaves.delete().where(consortium_leaves.c.idx == 12))
    with pytest.raises(TamperedLog):
        SqlLedger(engine, "t/log", log_key=log.verifier)
    engine.dispose()
