"""The tables of investigations, on riskguard's schema metadata (migration 0010_cases).

``case_alerts``: the unified inbox. One row per alert from any source (review decisions, graph rings and
dense blocks, complaint rings, fund traces, manual entry), identified by ``(source, source_key)`` so a sync
that sees the same source alert again updates its row instead of adding one. Money is kept exactly, as
integers of minor units (``amount_minor``, ``priority_minor``) and the score as basis points
(``score_bp``, 0..10,000), so priorities sort in SQL and convert to ``Decimal`` without rounding.
``group_id`` is the id of the alert a duplicate was merged into (its own id when it heads a group);
``case_id`` is set once the group is in a case.

``case_alert_entities``: the entities of each alert (account, device, phone, card, ...), indexed by
``(kind, value)``: what duplicate merging and the case view look up.

``cases``: status (open → investigating → closed), resolution, assignee, priority and SLA due time.
``case_activity``: the case's own history — creation, assignment, status changes, notes, actions, labels,
alerts added — the case side of its timeline (the audit log holds the same actions for auditors).
``case_freezes``: freeze requests raised from cases. ``case_sync``: each source's sync cursor.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, UniqueConstraint

from riskguard.store.tables import UTCDateTime, metadata

case_alerts = Table(
    "case_alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),  # review | graph | complaint | trace | manual
    Column("source_key", String(160), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("title", Text, nullable=False),  # personal-looking parts sealed (sealing.text)
    Column("score_bp", Integer, nullable=False),  # 0..10,000: the source's score mapped to 0..1
    Column("amount_minor", BigInteger, nullable=False),  # amount at risk, minor units (cents)
    Column("priority_minor", BigInteger, nullable=False),  # score × amount, minor units
    Column("status", String(16), nullable=False),  # open | in_case | closed
    Column("group_id", Integer, nullable=True),
    Column("case_id", Integer, nullable=True),
    Column("assignee", String(64), nullable=True),
    Column("evidence", Text, nullable=False),  # JSON
    Column("occurred_at", UTCDateTime(), nullable=False),  # when the activity behind it happened
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    UniqueConstraint("source", "source_key", name="uq_case_alerts_source_key"),
    Index("ix_case_alerts_status_priority", "status", "priority_minor"),
    Index("ix_case_alerts_group_id", "group_id"),
    Index("ix_case_alerts_case_id", "case_id"),
)

case_alert_entities = Table(
    "case_alert_entities",
    metadata,
    Column("alert_id", Integer, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("value", String(256), primary_key=True),
    Index("ix_case_alert_entities_value", "kind", "value"),
)

cases = Table(
    "cases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", Text, nullable=False),  # personal-looking parts sealed (sealing.text)
    Column("status", String(16), nullable=False),  # open | investigating | closed
    Column("resolution", String(24), nullable=True),  # confirmed_fraud | legitimate | inconclusive
    Column("assignee", String(64), nullable=True),
    Column("priority_minor", BigInteger, nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime(), nullable=True),
    Column("trace_id", String(32), nullable=True),  # the latest trace started from the case
    Index("ix_cases_status_due", "status", "due_at"),
)

case_activity = Table(
    "case_activity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("kind", String(24), nullable=False),  # created | assigned | status | note | list_add | freeze | ...
    Column("details", Text, nullable=False),  # JSON
    Index("ix_case_activity_case_id", "case_id", "at"),
)

case_freezes = Table(
    "case_freezes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, nullable=False),
    Column("account", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # requested (stop-payment on the block list)
    Column("amount_minor", BigInteger, nullable=True),  # freezable funds from the case's trace, if any
    Column("trace_id", String(32), nullable=True),
    Column("list_name", String(64), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_at", UTCDateTime(), nullable=False),
    Column("requested_by", String(64), nullable=False),
    Index("ix_case_freezes_case_id", "case_id"),
)

case_sync = Table(
    "case_sync",
    metadata,
    Column("source", String(16), primary_key=True),
    Column("cursor", String(64), nullable=False),  # ISO time (or id) of the last source row read
    Column("synced_at", UTCDateTime(), nullable=False),
)
