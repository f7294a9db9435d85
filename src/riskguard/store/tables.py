"""The database schema (SQLAlchemy Core). Changes go through an Alembic migration in migrations/."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite (which stores text) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; riskguard keeps UTC-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


events = Table(
    "events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("type", String(32), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("account_id", String(128), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("source", String(16), nullable=False),  # sync | async | internal
    Column("payload", Text, nullable=False),
    Index("ix_events_account_time", "account_id", "occurred_at"),
    Index("ix_events_occurred_at", "occurred_at"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("event_id", String(128), ForeignKey("events.event_id"), primary_key=True),
    Column("decision", String(16), nullable=False),
    Column("score", Integer, nullable=False),
    Column("strategy_name", String(128), nullable=False),
    Column("strategy_version", Integer, nullable=False),
    Column("degraded", Boolean, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("decided_at", UTCDateTime(), nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_decisions_decided_at", "decided_at"),
)

challenge_outcomes = Table(
    "challenge_outcomes",
    metadata,
    Column("event_id", String(128), ForeignKey("events.event_id"), primary_key=True),
    Column("result", String(16), nullable=False),
    Column("method", String(32), nullable=False),
    Column("reported_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
)

labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=True),
    Column("entity_kind", String(32), nullable=True),
    Column("entity_value", String(256), nullable=True),
    Column("label", String(16), nullable=False),
    Column("source", String(64), nullable=False),
    Column("typology", String(64), nullable=True),
    Column("labelled_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("note", Text, nullable=True),
    Index("ix_labels_event_id", "event_id"),
    Index("ix_labels_entity", "entity_kind", "entity_value"),
)

list_entries = Table(
    "list_entries",
    metadata,
    Column("list_name", String(64), primary_key=True),
    Column("value", String(256), primary_key=True),
    Column("reason", Text, nullable=True),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
)

strategies = Table(
    "strategies",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("document", Text, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("role", String(8), nullable=False),  # live | shadow
    Column("name", String(128), nullable=True),  # NULL: the role was cleared (shadow only)
    Column("version", Integer, nullable=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("by", String(64), nullable=False),
    Column("note", Text, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False),
    Column("details", Text, nullable=False),
)

published_features = Table(
    "published_features",
    metadata,
    Column("source", String(96), primary_key=True),
    Column("entity", String(256), primary_key=True),
    Column("value", Float, nullable=False),
    Column("published_at", UTCDateTime(), nullable=False),
)

published_sources = Table(
    "published_sources",
    metadata,
    Column("source", String(96), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("entities", Integer, nullable=False),
    Column("published_at", UTCDateTime(), nullable=False),
    Column("published_by", String(64), nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(UTC)
