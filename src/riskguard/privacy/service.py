"""Field encryption for one installation: the keyring, the cipher, the token vault and the Revealer.

``PrivacyService(engine, settings)`` loads (or, on an installation with nothing sealed yet, generates) the
keyring, checks that it holds every key id the database uses, and registers its cipher for ``engine``:
store repositories find it with ``sealer_for(engine)`` and seal on write, open on read, so the rest of
riskguard keeps working with plaintext.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, insert, select, update

from riskguard.errors import ConfigError
from riskguard.privacy import fields
from riskguard.privacy import keyring as keyrings
from riskguard.privacy.cipher import FieldCipher, is_token
from riskguard.privacy.revealer import Revealer, RevealPolicy
from riskguard.privacy.tables import privacy_keys, privacy_vault
from riskguard.store.tables import utcnow

log = logging.getLogger("riskguard.privacy")
_by_engine: weakref.WeakKeyDictionary[Engine, FieldCipher] = weakref.WeakKeyDictionary()
_encode = msgspec.json.Encoder(decimal_format="string").encode


def sealer_for(engine: Engine) -> FieldCipher | None:
    """The cipher that seals values written through ``engine`` (None: field encryption is off)."""
    return _by_engine.get(engine)


class PrivacyService:
    def __init__(self, engine: Engine, settings: Any) -> None:
        self._engine = engine
        self.settings = settings
        with engine.connect() as connection:
            known = {row.key_id: row for row in connection.execute(select(privacy_keys))}
        live = {key_id for key_id, row in known.items() if row.retired_at is None}
        keyring, path, created = keyrings.load(
            settings.keyring, settings.keyring_file, settings.database_url, may_create=not live
        )
        missing = live - set(keyring.keys) - set(keyring.token_keys)
        if missing:
            raise ConfigError(
                f"the keyring lacks key(s) {sorted(missing)} that this database uses; configure the keyring "
                "this installation was encrypted with (RISKGUARD_KEYRING_FILE / RISKGUARD_KEYRING)"
            )
        self.keyring_path: Path | None = path
        self.keyring_created = created
        reload = (lambda: keyrings.read_file(path)) if path is not None else None
        self.cipher = FieldCipher(keyring, reload=reload)
        self.record_keys()
        fields.register(self.cipher)
        self.enabled = bool(settings.field_encryption)
        if self.enabled:
            _by_engine[engine] = self.cipher
        self.revealer = Revealer(engine, self.cipher, RevealPolicy.from_settings(settings))

    def record_keys(self) -> None:
        """Notes the keyring's key ids (not the keys) in the database, and which are active."""
        keyring = self.cipher.keyring
        now = utcnow()
        with self._engine.begin() as connection:
            known = {row.key_id: row for row in connection.execute(select(privacy_keys))}
            for purpose, ids, active in (
                ("seal", keyring.keys, keyring.active),
                ("token", keyring.token_keys, keyring.active_token),
            ):
                for key_id in ids:
                    if key_id not in known:
                        connection.execute(
                            insert(privacy_keys).values(
                                key_id=key_id,
                                purpose=purpose,
                                created_at=now,
                                activated_at=now if key_id == active else None,
                            )
                        )
                    elif key_id == active and known[key_id].activated_at is None:
                        connection.execute(
                            update(privacy_keys).where(privacy_keys.c.key_id == key_id).values(activated_at=now)
                        )
            for key_id in keyring.retired:
                if key_id in known and known[key_id].retired_at is None:
                    connection.execute(
                        update(privacy_keys).where(privacy_keys.c.key_id == key_id).values(retired_at=now)
                    )

    # ------------------------------------------------------------------ the write path's helpers
    def seal_payload(self, payload: str) -> str:
        """An event payload (JSON text) with its personal fields sealed."""
        if not self.enabled:
            return payload
        return _encode(fields.seal_event(self.cipher, msgspec.json.decode(payload))).decode()

    def sealed_event_json(self, event: Any) -> str:
        """An event's stored JSON text, its personal fields sealed (the decision path's write)."""
        if not self.enabled:
            return _encode(event).decode()
        return _encode(fields.seal_event(self.cipher, msgspec.to_builtins(event))).decode()

    def seal_document(self, text: str) -> str:
        """A whole JSON document (a decision body) sealed as one value."""
        return self.cipher.seal("document", text) if self.enabled else text


def vault_tokens(connection: Connection, cipher: FieldCipher, kind: str, values: Iterable[str]) -> dict[str, str]:
    """Tokens of ``values``, storing each new one's sealed value in the vault; {value: token}."""
    tokens = {value: cipher.token(kind, value) for value in values}
    if not tokens:
        return tokens
    present = set(
        connection.execute(
            select(privacy_vault.c.token).where(privacy_vault.c.token.in_(list(set(tokens.values()))))
        ).scalars()
    )
    now = utcnow()
    fresh: dict[str, dict[str, Any]] = {}
    for value, token in tokens.items():
        if token not in present and token not in fresh:
            fresh[token] = {"token": token, "kind": kind, "sealed": cipher.seal(kind, value), "created_at": now}
    if fresh:
        connection.execute(insert(privacy_vault), list(fresh.values()))
    return tokens


def vault_open(connection: Connection, values: Iterable[str]) -> dict[str, str]:
    """{token: plaintext} for the tokens among ``values`` (others are left out)."""
    tokens = sorted({v for v in values if is_token(v)})
    found: dict[str, str] = {}
    for start in range(0, len(tokens), 500):
        chunk = tokens[start : start + 500]
        for row in connection.execute(
            select(privacy_vault.c.token, privacy_vault.c.sealed).where(privacy_vault.c.token.in_(chunk))
        ):
            found[row.token] = fields.open_value(row.sealed)
    return found


def token_values(connection: Connection, engine: Engine, values: Iterable[str]) -> dict[str, str]:
    """{value: what the store keeps for it}: its token (kind ``value``, exact match) with the sealed value
    in the vault, or the value itself when field encryption is off."""
    cipher = sealer_for(engine)
    if cipher is None:
        return {v: v for v in values}
    return vault_tokens(connection, cipher, "value", values)


def seal_text(engine: Engine, text: str | None) -> str | None:
    """Free text (a reason, a note) sealed whole when field encryption is on: it may name anyone."""
    cipher = sealer_for(engine)
    return cipher.seal("text", text) if cipher is not None and text else text


def lookup_keys(engine: Engine, values: Iterable[str]) -> list[str]:
    """What to look ``values`` up by in a tokenised column: their tokens and, for rows an older
    installation wrote before encryption, the values themselves."""
    values = list(values)
    cipher = sealer_for(engine)
    if cipher is None:
        return values
    return values + [cipher.token("value", v) for v in values]


def open_rows(connection: Connection, rows: list[dict[str, Any]], *columns: str) -> list[dict[str, Any]]:
    """``rows`` with the tokens in ``columns`` replaced by their plaintext (from the vault) and sealed
    values opened, in place."""
    plain = vault_open(connection, (row[c] for row in rows for c in columns if row.get(c)))
    for row in rows:
        for column in columns:
            value = row.get(column)
            if isinstance(value, str):
                row[column] = plain.get(value) or fields.open_value(value)
    return rows
