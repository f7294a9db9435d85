"""The console's tables on riskguard's schema metadata (migration 0011_console).

``console_users`` holds sign-in accounts (scrypt password hashes, lockout counters, the chosen language);
``console_sessions`` holds server-side sessions: the browser's cookie carries a random token, the table only
its SHA-256, so a copy of the database cannot be replayed as a session, and signing out or disabling a user
ends the session at once (a signed cookie would stay valid until it expires).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text

from riskguard.store.tables import UTCDateTime, metadata

console_users = Table(
    "console_users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("failed_logins", Integer, nullable=False),
    Column("locked_until", UTCDateTime(), nullable=True),
    Column("locale", String(8), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("password_changed_at", UTCDateTime(), nullable=False),
    Column("last_login_at", UTCDateTime(), nullable=True),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_console_sessions_username", "username"),
)
