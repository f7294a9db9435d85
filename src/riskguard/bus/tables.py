"""The event bus's tables, on riskguard's schema metadata (migration 0015_event_bus).

``bus_outbox``: one row per committed decision not yet published, written by the group-commit writer in
the same transaction as the event and its decision (the transactional outbox); the relay deletes the
rows it published. ``seq`` orders them.

``bus_processed``: which events each consumer has processed, written in the same transaction as the
consumer's effects, so that a message delivered again (after a crash, or a timed-out hand-out) changes
nothing.

``bus_account_flows``: the ``flows`` consumer's per-account money movements (count and exact decimal
sum received and sent, per currency), the inputs of its mule features.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from riskguard.store.tables import UTCDateTime, metadata

bus_outbox = Table(
    "bus_outbox",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False),
)

bus_processed = Table(
    "bus_processed",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    Column("processed_at", UTCDateTime(), nullable=False),
    Index("ix_bus_processed_processed_at", "processed_at"),
)

bus_account_flows = Table(
    "bus_account_flows",
    metadata,
    Column("account_id", String(128), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("received_count", Integer, nullable=False),
    Column("received_amount", Text, nullable=False),  # exact decimal as text (SQLite has no exact numeric)
    Column("sent_count", Integer, nullable=False),
    Column("sent_amount", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
