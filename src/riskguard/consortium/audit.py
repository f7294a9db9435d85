"""A full audit of a node's copy of the log: every entry re-decoded, re-signed-checked and re-checked
against the governance rules from the genesis on, every stored leaf hash compared with a fresh one, and
the rebuilt root compared with the newest signed checkpoint."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from riskguard.consortium.entries import decode
from riskguard.consortium.ledger import SqlLedger, TamperedLog
from riskguard.consortium.merkle import leaf_hash
from riskguard.consortium.node import NodeConfig, read_text
from riskguard.consortium.note import SignedCheckpoint, Verifier
from riskguard.consortium.state import LedgerState
from riskguard.consortium.tables import consortium_leaves
from riskguard.store.db import migrate, open_engine


def audit_ledger(ledger: SqlLedger, log_key: Verifier) -> dict[str, Any]:
    state = LedgerState()
    with ledger.engine.connect() as connection:
        stored = dict(connection.execute(select(consortium_leaves.c.idx, consortium_leaves.c.leaf_hash)).all())
    for index, data in enumerate(ledger.iter_leaves()):
        if bytes(stored[index]) != leaf_hash(data):
            raise TamperedLog(f"the stored hash of entry {index} is not the hash of its content")
        state.admit(decode(data), index)
    note = ledger.latest_checkpoint()
    if note is None:
        return {"entries": state.size, "checkpoint": None}
    signed = SignedCheckpoint.open(note, log_key)
    ledger.check_against(signed)
    return {"entries": state.size, "checkpoint": signed.checkpoint.size, "root": signed.checkpoint.root.hex()}


def audit_log(config: NodeConfig) -> dict[str, Any]:
    genesis = decode(read_text(config.genesis, "genesis entry").encode())
    body = genesis.typed()
    engine = open_engine(config.database_url)
    migrate(engine)
    try:
        key = Verifier.parse(body.log_key)
        return audit_ledger(SqlLedger(engine, body.origin, log_key=key), key)
    finally:
        engine.dispose()
