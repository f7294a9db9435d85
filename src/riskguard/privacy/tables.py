"""Tables of field encryption and audited reveal (Alembic revision 0013)."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from riskguard.store.tables import UTCDateTime, metadata

#: the key ids this database has used (never key material): a start with a keyring that lacks one of the
#: live ids is refused instead of sealing new data under keys that cannot open the old
privacy_keys = Table(
    "privacy_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("purpose", String(8), nullable=False),  # seal | token
    Column("created_at", UTCDateTime(), nullable=False),
    Column("activated_at", UTCDateTime(), nullable=True),
    Column("retired_at", UTCDateTime(), nullable=True),
)

#: token → the sealed identifier it stands for, where a column holds only the token (list entries,
#: labels' entity values, canaries): one sealed copy per distinct identifier
privacy_vault = Table(
    "privacy_vault",
    metadata,
    Column("token", String(96), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("sealed", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

#: reveals per actor and hour (UTC): the actor's own baseline, and the volume check of the current hour
privacy_reveal_counts = Table(
    "privacy_reveal_counts",
    metadata,
    Column("actor", String(64), primary_key=True),
    Column("hour", UTCDateTime(), primary_key=True),
    Column("count", Integer, nullable=False),
)

#: actors whose reveals are refused until ``until`` (or until a lead/admin lifts it)
privacy_throttles = Table(
    "privacy_throttles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("actor", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("since", UTCDateTime(), nullable=False),
    Column("until", UTCDateTime(), nullable=False),
    Column("alert_id", Integer, nullable=True),
    Column("lifted_at", UTCDateTime(), nullable=True),
    Column("lifted_by", String(64), nullable=True),
    Index("ix_privacy_throttles_actor", "actor", "until"),
)

#: canary identifiers (by token) and accounts nobody has a reason to open
privacy_canaries = Table(
    "privacy_canaries",
    metadata,
    Column("token", String(96), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("account_id", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
    Index("ix_privacy_canaries_account_id", "account_id"),
)

#: alerts of anomalous access (store/alerts.py shape: the cases inbox pulls them like graph alerts)
privacy_alerts = Table(
    "privacy_alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # volume | bulk | off_hours | canary
    Column("score", Float, nullable=False),
    Column("accounts", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("evidence", Text, nullable=False),  # JSON: actor, counts, baseline, purpose — never a value
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Index("ix_privacy_alerts_status", "status", "last_seen_at"),
)
