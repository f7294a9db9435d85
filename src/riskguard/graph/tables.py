"""The graph's alerts table, on riskguard's schema metadata (migration 0005_graph_alerts).

One row per ring or dense block that crossed its threshold at a refresh: what the case-management issue
consumes (``alerts.py`` is the interface). ``key`` identifies the group across refreshes (a digest of its
sorted member accounts), so a refresh that finds the same ring again updates it instead of adding one.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from riskguard.store.tables import UTCDateTime, metadata

graph_alerts = Table(
    "graph_alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # ring | block
    Column("score", Float, nullable=False),
    Column("accounts", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # open | closed (set by case management)
    Column("evidence", Text, nullable=False),  # JSON: members, binding identifiers, activity, labels
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Index("ix_graph_alerts_status", "status", "last_seen_at"),
)
