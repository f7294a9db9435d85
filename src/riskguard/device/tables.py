"""The device tables, on riskguard's schema metadata (migrations 0006_device_keys and 0009_device_shared).

``device_keys``: one row per (key, account) binding: a key registered for an account, and every later
rebinding of the same key to another account, which ends the earlier row (``status = ended``) and records
``rebound_from``. At most one row per key is ``active`` (a partial unique index), so two service workers
cannot bind one key twice. ``registered_at`` is the registration's time as the platform reports it (like
an event's ``occurred_at``), so key age and registration bursts follow event time in replays;
``created_at`` is when this server stored it; ``changed_at`` when the row was inserted, ended or revoked
(what other workers poll for). ``counter`` and ``last_event`` are the last accepted signature counter and
the event that carried it, advanced by a conditional update in that decision's own transaction.

``device_nonces``: the nonces used up (by which event or registration) until they have long expired;
a nonce itself is not stored when issued (nonces.py). ``device_secrets``: the key that authenticates
nonces, made by the first process that starts on the database and read by every other.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text, text

from riskguard.store.tables import UTCDateTime, metadata

device_keys = Table(
    "device_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_id", String(64), nullable=False),
    Column("device_id", String(128), nullable=False),
    Column("account_id", String(128), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("scheme", String(16), nullable=False),
    Column("public_key", Text, nullable=False),  # base64url SubjectPublicKeyInfo
    Column("cose_key", Text),  # WebAuthn credential public key (base64url COSE)
    Column("credential_id", Text),  # WebAuthn credential id / App Attest key id (base64url)
    Column("attested", Boolean, nullable=False),
    Column("security_level", String(16), nullable=False),
    Column("boot_state", String(16), nullable=False),
    Column("patch_level", Integer),  # YYYYMMDD
    Column("package", String(256)),
    Column("signing_digest", String(128)),
    Column("serials", Text, nullable=False),  # JSON list of the attestation chain's serials (hex)
    Column("findings", Text, nullable=False),  # JSON list of reason codes found at registration
    Column("environment", Text, nullable=False),  # JSON object: client-reported flags at registration
    Column("details", Text, nullable=False),  # JSON object: provider-specific facts
    Column("fingerprint", String(128)),
    Column("network", String(64)),
    Column("status", String(16), nullable=False),  # active | ended | revoked
    Column("rebound_from", String(128)),
    Column("registered_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("counter", BigInteger, nullable=False),
    Column("fingerprint_changes", Integer, nullable=False),
    Column("last_used_at", UTCDateTime()),
    Column("last_event", String(128)),
    Column("changed_at", UTCDateTime()),
    Index("ix_device_keys_key_id", "key_id"),
    Index("ix_device_keys_device_id", "device_id"),
    Index("ix_device_keys_account_id", "account_id"),
    Index("ix_device_keys_changed_at", "changed_at"),
    Index(
        "ux_device_keys_active_key",
        "key_id",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
)

device_nonces = Table(
    "device_nonces",
    metadata,
    Column("nonce_id", String(32), primary_key=True),  # hex of the nonce's 128-bit identity tag
    Column("consumed_by", String(160), nullable=False),  # event id, or "register:<random>"
    Column("expires_ms", BigInteger, nullable=False),  # epoch ms after which the row may be swept
    Index("ix_device_nonces_expires_ms", "expires_ms"),
)

device_secrets = Table(
    "device_secrets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Text, nullable=False),  # base64url
)
