"""The ledger interface, and its SQL implementation (SQLite by default, PostgreSQL at scale).

Everything above this module — nodes, witnesses, governance, the gateway — talks to a ``Ledger``: append
leaves, read them back, prove inclusion and consistency, keep signed checkpoints. ``SqlLedger`` keeps
the leaves in ``consortium_leaves`` and the tree's complete-subtree hashes in memory (rebuilt from the
stored entries when it opens, and checked against the newest signed checkpoint, so a changed row is
caught before the node serves anything). Another implementation (a Trillian-Tessera tile log, a
Fabric or FISCO BCOS gateway sidecar) plugs in behind the same interface: docs/consortium.md, Scale.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from sqlalchemy import Engine, delete, func, insert, select

from riskguard.consortium.entries import Entry
from riskguard.consortium.merkle import MerkleTree, leaf_hash
from riskguard.consortium.note import SignedCheckpoint, Verifier
from riskguard.consortium.proofs import ProofError
from riskguard.consortium.tables import consortium_checkpoints, consortium_leaves
from riskguard.store.tables import utcnow

PAGE = 5_000


class TamperedLog(Exception):
    """Stored leaves do not hash to the root the log signed: someone changed the database."""


class Ledger(Protocol):
    origin: str

    @property
    def size(self) -> int: ...

    def append(self, entries: list[tuple[Entry, bytes]], *, expect_root: bytes | None = None) -> int: ...

    def leaves(self, start: int, end: int) -> list[bytes]: ...

    def root(self, size: int | None = None) -> bytes: ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, first: int, second: int) -> list[bytes]: ...

    def save_checkpoint(self, signed: SignedCheckpoint) -> None: ...

    def latest_checkpoint(self) -> str | None: ...


class SqlLedger:
    """A log in the ``consortium_leaves`` table with its Merkle tree in memory."""

    def __init__(self, engine: Engine, origin: str, *, log_key: Verifier | None = None) -> None:
        self.engine = engine
        self.origin = origin
        self.tree = MerkleTree()
        self._lock = threading.RLock()
        self._load(log_key)

    @property
    def size(self) -> int:
        return self.tree.size

    def _load(self, log_key: Verifier | None) -> None:
        """Rebuilds the tree from the stored entries (their hashes recomputed, not read) and checks it
        against the newest stored checkpoint."""
        for data in self.iter_leaves():
            self.tree.append(leaf_hash(data))
        note = self.latest_checkpoint()
        if note is None:
            return
        if log_key is not None:
            signed = SignedCheckpoint.open(note, log_key)
        else:
            from riskguard.consortium.note import Checkpoint, split_note

            signed = SignedCheckpoint(Checkpoint.parse(split_note(note)[0]), note)
        self.check_against(signed)

    def check_against(self, signed: SignedCheckpoint) -> None:
        """Raises TamperedLog unless the stored leaves hash to the checkpoint's root."""
        checkpoint = signed.checkpoint
        if checkpoint.size > self.tree.size:
            raise TamperedLog(
                f"the log signed {checkpoint.size} entries and the database holds {self.tree.size}: "
                "entries were removed"
            )
        if self.tree.root(checkpoint.size) != checkpoint.root:
            raise TamperedLog(
                f"the stored entries do not hash to the root the log signed at size {checkpoint.size}: "
                "an entry or the checkpoint was changed in the database"
            )

    def iter_leaves(self, start: int = 0) -> Iterator[bytes]:
        position = start
        while True:
            query = (
                select(consortium_leaves.c.idx, consortium_leaves.c.data)
                .where(consortium_leaves.c.idx >= position)
                .order_by(consortium_leaves.c.idx)
                .limit(PAGE)
            )
            with self.engine.connect() as connection:
                rows = connection.execute(query).all()
            for idx, data in rows:
                if idx != position:
                    raise TamperedLog(f"entry {position} is missing from the database")
                yield bytes(data)
                position += 1
            if len(rows) < PAGE:
                return

    def append(self, entries: list[tuple[Entry, bytes]], *, expect_root: bytes | None = None) -> int:
        """Appends encoded entries; with ``expect_root``, only if the new tree has exactly that root
        (a mirror's check of what it fetched against the signed checkpoint). Returns the first index."""
        with self._lock:
            first = self.tree.size
            for _, data in entries:
                self.tree.append(leaf_hash(data))
            if expect_root is not None and self.tree.root() != expect_root:
                self.tree.truncate(first)
                raise ProofError("the fetched entries do not hash to the root the log signed")
            now = utcnow()
            rows = [
                {
                    "idx": first + offset,
                    "leaf_hash": self.tree.leaf(first + offset),
                    "entry_id": entry.id,
                    "kind": entry.kind,
                    "member": entry.member,
                    "data": data,
                    "received_at": now,
                }
                for offset, (entry, data) in enumerate(entries)
            ]
            try:
                with self.engine.begin() as connection:
                    for start in range(0, len(rows), PAGE):
                        connection.execute(insert(consortium_leaves), rows[start : start + PAGE])
            except Exception:
                self.tree.truncate(first)
                raise
            return first

    def leaves(self, start: int, end: int) -> list[bytes]:
        end = min(end, self.tree.size)
        if start >= end:
            return []
        query = (
            select(consortium_leaves.c.data)
            .where(consortium_leaves.c.idx >= start, consortium_leaves.c.idx < end)
            .order_by(consortium_leaves.c.idx)
        )
        with self.engine.connect() as connection:
            return [bytes(row[0]) for row in connection.execute(query)]

    def index_of(self, entry_id: str) -> int | None:
        query = select(consortium_leaves.c.idx).where(consortium_leaves.c.entry_id == entry_id)
        with self.engine.connect() as connection:
            return connection.execute(query).scalar()

    def root(self, size: int | None = None) -> bytes:
        with self._lock:
            return self.tree.root(size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with self._lock:
            return self.tree.inclusion_proof(index, size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        with self._lock:
            return self.tree.consistency_proof(first, second)

    def save_checkpoint(self, signed: SignedCheckpoint) -> None:
        size = signed.checkpoint.size
        with self.engine.begin() as connection:
            connection.execute(delete(consortium_checkpoints).where(consortium_checkpoints.c.size == size))
            connection.execute(insert(consortium_checkpoints).values(size=size, note=signed.note, created_at=utcnow()))

    def latest_checkpoint(self) -> str | None:
        query = select(consortium_checkpoints.c.note).order_by(consortium_checkpoints.c.size.desc()).limit(1)
        with self.engine.connect() as connection:
            return connection.execute(query).scalar()

    def checkpoint_count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(consortium_checkpoints)).scalar_one())
