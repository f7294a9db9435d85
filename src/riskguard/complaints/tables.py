"""The tables of organised-complaint detection, on riskguard's schema metadata (migration 0007_complaints).

``complaint_records``: every complaint, loan application and linked transfer the analyser took in, with
the envelope as received (so a restarted service rebuilds its in-memory indexes from it) and the score,
route and signals given when it arrived.

``complaint_alerts``: one row per suspected agent ring or intermediary ring, in the same shape as
``graph_alerts`` (key, kind, score, accounts, status, evidence, first and last seen) so that case
management reads both the same way. ``key`` is the ring's first record, so a ring that grows keeps its row.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from riskguard.store.tables import UTCDateTime, metadata

complaint_records = Table(
    "complaint_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("kind", String(24), nullable=False),  # complaint | loan_application | transfer
    Column("account_id", String(128), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("payload", Text, nullable=False),  # the event envelope as JSON
    Column("score", Float, nullable=True),
    Column("route", String(48), nullable=True),
    Column("signals", Text, nullable=False),  # JSON: the signals behind the score, masked
    Column("analysed_at", UTCDateTime(), nullable=False),
    Index("ix_complaint_records_occurred_at", "occurred_at"),
)

complaint_alerts = Table(
    "complaint_alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # agent_ring | loan_ring
    Column("score", Float, nullable=False),
    Column("accounts", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # open | closed
    Column("evidence", Text, nullable=False),  # JSON: members, shared items, similarity, timeline
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Index("ix_complaint_alerts_status", "status", "last_seen_at"),
)
