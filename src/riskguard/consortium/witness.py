"""A witness: remembers the last checkpoint it saw of each log, cosigns a new one only when a consistency
proof shows it extends that one, and records a fork when it does not (or when another member shows it a
different root for a size it has seen). Follows the add-checkpoint flow of C2SP tlog-witness: the log
sends the size it believes the witness has, and a mismatch answers with the witness's size instead.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from riskguard.consortium.note import Checkpoint, NoteError, SignedCheckpoint, Signer, Verifier, cosign, split_note
from riskguard.consortium.proofs import ProofError, verify_consistency
from riskguard.consortium.tables import consortium_forks, consortium_witness
from riskguard.store.tables import utcnow


class ForkDetected(Exception):
    """The log showed this witness a history that does not extend the one it saw before."""


@dataclass
class SizeMismatch(Exception):
    """The log's idea of what this witness last saw is wrong; ``known`` is the witness's size."""

    known: int


class Witness:
    def __init__(self, engine: Engine, signer: Signer, logs: dict[str, Verifier]) -> None:
        self.engine = engine
        self.signer = signer
        self.logs = logs  # origin → the log's key
        self._lock = threading.Lock()

    def last(self, origin: str) -> SignedCheckpoint | None:
        with self.engine.connect() as connection:
            note = connection.execute(
                select(consortium_witness.c.note).where(consortium_witness.c.origin == origin)
            ).scalar()
        if note is None:
            return None
        return SignedCheckpoint(Checkpoint.parse(split_note(note)[0]), note)

    def _open(self, note: str) -> SignedCheckpoint:
        text = split_note(note)[0]
        origin = Checkpoint.parse(text).origin
        key = self.logs.get(origin)
        if key is None:
            raise NoteError(f"this witness does not follow a log named {origin!r}")
        return SignedCheckpoint.open(note, key)

    def add_checkpoint(self, note: str, old_size: int, proof: list[bytes]) -> str:
        """Cosigns ``note`` (a checkpoint signed by its log) and returns the cosignature line."""
        signed = self._open(note)
        new = signed.checkpoint
        with self._lock:
            last = self.last(new.origin)
            known = 0 if last is None else last.checkpoint.size
            if old_size != known:
                raise SizeMismatch(known)
            if last is not None:
                if new.size < known:
                    self._fork(
                        new.origin, "the log presented a smaller tree than it signed before", last, signed, proof
                    )
                try:
                    verify_consistency(known, new.size, proof, last.checkpoint.root, new.root)
                except ProofError as exc:
                    self._fork(new.origin, f"inconsistent checkpoints: {exc}", last, signed, proof)
            self._remember(signed, exists=last is not None)
        text = split_note(note)[0]
        return cosign(text, self.signer, int(time.time()))

    def observe(self, note: str, proof_from_last: list[bytes] | None = None) -> None:
        """Compares a checkpoint another member saw with this witness's own (gossip). Same size and
        another root, or a failing consistency proof between the two, is a fork."""
        signed = self._open(note)
        last = self.last(signed.checkpoint.origin)
        if last is None:
            return
        a, b = last.checkpoint, signed.checkpoint
        if a.size == b.size:
            if a.root != b.root:
                self._fork(a.origin, f"two roots signed for size {a.size}", last, signed, [])
            return
        if proof_from_last is None:
            return
        first, second = (last, signed) if a.size < b.size else (signed, last)
        try:
            verify_consistency(
                first.checkpoint.size,
                second.checkpoint.size,
                proof_from_last,
                first.checkpoint.root,
                second.checkpoint.root,
            )
        except ProofError as exc:
            self._fork(a.origin, f"a peer's checkpoint is inconsistent with ours: {exc}", last, signed, proof_from_last)

    def _remember(self, signed: SignedCheckpoint, *, exists: bool) -> None:
        values = {"size": signed.checkpoint.size, "note": signed.note, "updated_at": utcnow()}
        with self.engine.begin() as connection:
            if exists:
                connection.execute(
                    update(consortium_witness)
                    .where(consortium_witness.c.origin == signed.checkpoint.origin)
                    .values(**values)
                )
            else:
                connection.execute(insert(consortium_witness).values(origin=signed.checkpoint.origin, **values))

    def _fork(
        self, origin: str, reason: str, seen: SignedCheckpoint, shown: SignedCheckpoint, proof: list[bytes]
    ) -> None:
        """Records the two signed checkpoints (evidence anyone can check with the log's key) and raises."""
        evidence = {
            "seen": seen.note,
            "shown": shown.note,
            "proof": [base64.b64encode(p).decode() for p in proof],
        }
        with self.engine.begin() as connection:
            connection.execute(
                insert(consortium_forks).values(
                    origin=origin, detected_at=utcnow(), reason=reason, evidence=json.dumps(evidence)
                )
            )
        raise ForkDetected(reason)

    def forks(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(consortium_forks).order_by(consortium_forks.c.id)).all()
        return [{**row._asdict(), "evidence": json.loads(row.evidence)} for row in rows]
