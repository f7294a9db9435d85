"""The tables of account security, on riskguard's schema metadata (migration 0012_account_security).

``breach_hashes``: the breached-password corpus as the range API serves it — SHA-1 split into its
5-hex-digit prefix and 35-digit suffix (upper case), with the number of times it was seen. The primary
key (prefix, suffix) is the index a range query reads; on SQLite the table is WITHOUT ROWID, so the rows
of one prefix lie together (a range of ~800 rows was 3.7 ms of random page reads with a rowid table, 0.5 ms
clustered).

``leaks``: one row per registered leak of personal data (name, source, when it was discovered, when its
watch flags expire). ``leak_identifiers``: its identifiers as keyed tokens only (privacy.FieldCipher
``token``) — a raw value is never stored. ``leak_watch``: accounts linked to a leak's identifiers, with
the kinds that matched and the flag's expiry (what ``account.in_leak`` reads). ``leak_alerts``: one
alert per leak for customer outreach, in the shape store/alerts.py reads (as graph and complaint alerts).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, ForeignKey, Index, Integer, String, Table, Text

from riskguard.store.tables import UTCDateTime, metadata

breach_hashes = Table(
    "breach_hashes",
    metadata,
    Column("prefix", String(5), primary_key=True),
    Column("suffix", String(35), primary_key=True),
    Column("count", BigInteger, nullable=False),
    sqlite_with_rowid=False,  # rows clustered by (prefix, suffix): a range is one contiguous read
)

leaks = Table(
    "leaks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("source", String(256), nullable=False),
    Column("discovered_at", UTCDateTime(), nullable=False),
    Column("imported_at", UTCDateTime(), nullable=False),
    Column("imported_by", String(128), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("identifiers", Integer, nullable=False),
    Column("accounts", Integer, nullable=False),
)

leak_identifiers = Table(
    "leak_identifiers",
    metadata,
    Column("leak_id", Integer, ForeignKey("leaks.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), primary_key=True),  # phone | email | id_number | card
    Column("token", String(64), primary_key=True),
    Index("ix_leak_identifiers_token", "token"),
)

leak_watch = Table(
    "leak_watch",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(128), nullable=False),
    Column("leak_id", Integer, ForeignKey("leaks.id", ondelete="CASCADE"), nullable=False),
    Column("kinds", String(64), nullable=False),  # comma-separated: which identifiers matched
    Column("discovered_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("matched_at", UTCDateTime(), nullable=False),
    Index("ux_leak_watch_account_leak", "account_id", "leak_id", unique=True),
    Index("ix_leak_watch_expires_at", "expires_at"),
)

leak_alerts = Table(
    "leak_alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # leak
    Column("score", Float, nullable=False),
    Column("accounts", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # open | closed
    Column("evidence", Text, nullable=False),  # JSON: leak name, source, kinds, counts, sample accounts
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Index("ix_leak_alerts_status", "status", "last_seen_at"),
)
