"""The consortium's tables, on riskguard's schema metadata (migration 0003_consortium_ledger).

``consortium_leaves`` and ``consortium_checkpoints`` are the log (what a member replicates and can prove);
the rest is the member's own bookkeeping: what its witness last cosigned, forks it caught, the token
service's audit trail, its watch list (token → its own identifier, never shared) and detail keys.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, String, Table, Text

from riskguard.store.tables import UTCDateTime, metadata

consortium_leaves = Table(
    "consortium_leaves",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("entry_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("member", String(48), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Index("ix_consortium_leaves_leaf_hash", "leaf_hash", unique=True),
    Index("ix_consortium_leaves_entry_id", "entry_id", unique=True),
)

consortium_checkpoints = Table(
    "consortium_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("note", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

consortium_witness = Table(
    "consortium_witness",
    metadata,
    Column("origin", String(120), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("note", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

consortium_forks = Table(
    "consortium_forks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(120), nullable=False),
    Column("detected_at", UTCDateTime(), nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=False),
)

consortium_token_audit = Table(
    "consortium_token_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member", String(48), nullable=False),
    Column("count", Integer, nullable=False),
    Column("allowed", Boolean, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_consortium_token_audit_member_at", "member", "at"),
)

consortium_watch = Table(
    "consortium_watch",
    metadata,
    Column("token", String(64), primary_key=True),
    Column("subject_kind", String(16), nullable=False),
    Column("value", String(256), nullable=False),
    Column("added_at", UTCDateTime(), nullable=False),
    Index("ix_consortium_watch_kind_value", "subject_kind", "value", unique=True),
)

consortium_detail_keys = Table(
    "consortium_detail_keys",
    metadata,
    Column("entry_id", String(32), primary_key=True),
    Column("key", LargeBinary(32), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("erased_at", UTCDateTime(), nullable=True),
)
