"""Key rotation: re-encrypt every sealed value under the active key, seal what older installations left in
plaintext, recompute tokens under a new token key, and retire keys nothing uses any more.

Online and resumable: each batch is its own transaction, and a pass only rewrites rows that need it
(a sealed value under another key, a personal value still in plaintext, a token under another token
key), so running it again after an interruption continues where it stopped and running servers keep
deciding meanwhile (they reload the keyring file within seconds and seal new rows under the new key; a
last pass after that picks up what they wrote just before). Every run and every column's count is in the
audit log (``keys.rotate``), never a value.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, and_, delete, inspect, select, update

from riskguard.privacy import fields
from riskguard.privacy.cipher import SEALED_PREFIX, TOKEN_PREFIX, FieldCipher, is_sealed
from riskguard.privacy.columns import COLUMNS, SealedColumn
from riskguard.privacy.keyring import Keyring, write_file
from riskguard.privacy.service import PrivacyService, vault_tokens
from riskguard.privacy.tables import privacy_canaries, privacy_keys, privacy_vault
from riskguard.store import audit
from riskguard.store.tables import utcnow

log = logging.getLogger("riskguard.privacy")


@dataclass
class RotationReport:
    active_key: str
    active_token_key: str
    rewritten: dict[str, int] = field(default_factory=dict)
    retokenised: int = 0
    remaining: dict[str, int] = field(default_factory=dict)
    retired: list[str] = field(default_factory=list)
    passes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "active_key": self.active_key,
            "active_token_key": self.active_token_key,
            "rewritten": self.rewritten,
            "retokenised": self.retokenised,
            "remaining": self.remaining,
            "retired": self.retired,
            "passes": self.passes,
        }


class Rotation:
    def __init__(self, engine: Engine, privacy: PrivacyService, *, batch: int = 500, actor: str = "cli") -> None:
        self._engine = engine
        self._privacy = privacy
        self._batch = batch
        self._actor = actor
        self._tables: dict[str, Table] = {}

    @property
    def cipher(self) -> FieldCipher:
        return self._privacy.cipher

    # ------------------------------------------------------------------ the command
    def rotate(
        self,
        *,
        new_key: bool = True,
        new_token_key: bool = False,
        retire: bool = True,
        settle_s: float = 5.0,
        progress: Callable[[str, int], None] | None = None,
    ) -> RotationReport:
        """Activates a new field key (and token key), re-encrypts everything, retires unused keys.

        With a keyring from RISKGUARD_KEYRING (no file to write), no key is generated: activate the new
        key in the configuration first; the run re-encrypts under the configured active key."""
        privacy = self._privacy
        keyring = self.cipher.keyring
        if (new_key or new_token_key) and privacy.keyring_path is not None:
            if new_key:
                keyring = keyring.with_new_key()
            if new_token_key:
                keyring = keyring.with_new_token_key()
            write_file(privacy.keyring_path, keyring)
            self.cipher.refresh(force=True)
            privacy.record_keys()
            log.info("activated field key %s, token key %s", keyring.active, keyring.active_token)
        report = RotationReport(self.cipher.active_key, self.cipher.active_token_key)
        with self._engine.begin() as connection:
            audit.record(
                connection, self._actor, "keys.rotate", report.active_key, {"phase": "start", **report.as_dict()}
            )
        deadline = time.monotonic() + settle_s  # servers reload the keyring file every few seconds
        while True:
            report.passes += 1
            changed = self._pass(report, progress)
            if changed == 0 and time.monotonic() >= deadline:
                break
            if changed == 0:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            if report.passes >= 20:
                break
        report.remaining = self.remaining()
        if self._engine.dialect.name == "sqlite":  # the WAL file still holds the pages as they were
            with self._engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        if retire and not any(report.remaining.values()):
            report.retired = self._retire()
        with self._engine.begin() as connection:
            audit.record(
                connection, self._actor, "keys.rotate", report.active_key, {"phase": "done", **report.as_dict()}
            )
        return report

    def _pass(self, report: RotationReport, progress: Callable[[str, int], None] | None) -> int:
        total = self._retokenise(report)
        for column in COLUMNS:
            table = self._table(column.table)
            if table is None:
                continue
            if column.mode == "token":
                count = (
                    self._tokenise_plain(table, column) if column.seal_plain else self._tokenise_personal(table, column)
                )
            elif column.mode == "whole":
                count = self._reseal_whole(table, column)
            else:
                count = self._reseal_fields(table, column)
            name = f"{column.table}.{column.column}"
            report.rewritten[name] = report.rewritten.get(name, 0) + count
            total += count
            if progress is not None and count:
                progress(name, count)
        return total

    # ------------------------------------------------------------------ per mode
    def _reseal_whole(self, table: Table, column: SealedColumn) -> int:
        """Values not yet under the active key (older keys, or plaintext), a batch at a time."""
        col = table.c[column.column]
        active = f"{SEALED_PREFIX}{self.cipher.active_key}:%"
        done = 0
        while True:
            with self._engine.begin() as connection:
                rows = connection.execute(
                    select(*[table.c[k] for k in column.key], col)
                    .where(col.is_not(None), col != "", ~col.like(active))
                    .limit(self._batch)
                ).all()
                for row in rows:
                    text = row[-1]
                    if is_sealed(text):
                        kind = FieldCipher.parts(text)[1]
                        plain = self.cipher.open(text)
                    else:
                        kind, plain = column.kind, text
                    where = and_(*[table.c[k] == row[i] for i, k in enumerate(column.key)])
                    connection.execute(
                        update(table).where(where).values({column.column: self.cipher.seal(kind, plain)})
                    )
            done += len(rows)
            if len(rows) < self._batch:
                return done

    def _reseal_fields(self, table: Table, column: SealedColumn) -> int:
        """Event envelopes: keyset paging over the primary key; a row is rewritten when a leaf is under
        another key or a personal field is still in plaintext."""
        (key_name,) = column.key
        key, col = table.c[key_name], table.c[column.column]
        after: Any = None
        done = 0
        while True:
            with self._engine.begin() as connection:
                query = select(key, col).order_by(key).limit(self._batch)
                if after is not None:
                    query = query.where(key > after)
                rows = connection.execute(query).all()
                for row_key, text in rows:
                    fresh = self._resealed_event(text)
                    if fresh is not None:
                        connection.execute(update(table).where(key == row_key).values({column.column: fresh}))
                        done += 1
            if len(rows) < self._batch:
                return done
            after = rows[-1][0]

    def _resealed_event(self, text: str) -> str | None:
        document = json.loads(text)
        leaves = _sealed_leaves(document)
        opened = fields.open_tree(document)
        resealed = fields.seal_event(self.cipher, opened)
        stale = any(FieldCipher.key_of(leaf) != self.cipher.active_key for leaf in leaves)
        if not stale and len(_sealed_leaves(resealed)) == len(leaves):
            return None
        if not stale:  # only plaintext to seal: keep the leaves already sealed as they are
            resealed = fields.seal_event(self.cipher, document)
        return json.dumps(resealed, ensure_ascii=False, separators=(",", ":"))

    def _tokenise_plain(self, table: Table, column: SealedColumn) -> int:
        """Plaintext an older installation left in a token column: its token, the value into the vault."""
        col = table.c[column.column]
        done = 0
        while True:
            with self._engine.begin() as connection:
                rows = connection.execute(
                    select(*[table.c[k] for k in column.key], col)
                    .where(col.is_not(None), ~col.like(f"{TOKEN_PREFIX}%"))
                    .limit(self._batch)
                ).all()
                tokens = vault_tokens(connection, self.cipher, "value", [row[-1] for row in rows])
                for row in rows:
                    self._replace(connection, table, column, row, tokens[row[-1]])
            done += len(rows)
            if len(rows) < self._batch:
                return done

    def _tokenise_personal(self, table: Table, column: SealedColumn) -> int:
        """In a column where only some values are personal: the plaintext ones that look personal."""
        col = table.c[column.column]
        keys = [table.c[k] for k in column.key]
        with self._engine.connect() as connection:
            rows = [
                row
                for row in connection.execute(select(*keys, col).where(col.is_not(None), ~col.like(f"{TOKEN_PREFIX}%")))
                if fields.kind_of_value(row[-1])
            ]
        for start in range(0, len(rows), self._batch):
            chunk = rows[start : start + self._batch]
            with self._engine.begin() as connection:
                tokens = vault_tokens(connection, self.cipher, "value", [row[-1] for row in chunk])
                for row in chunk:
                    self._replace(connection, table, column, row, tokens[row[-1]])
        return len(rows)

    def _replace(self, connection: Connection, table: Table, column: SealedColumn, row: Any, new: str) -> None:
        where = and_(*[table.c[k] == row[i] for i, k in enumerate(column.key)])
        if column.column in column.key:  # the value is part of the key: a row with the new key may exist
            others = {k: (new if k == column.column else row[i]) for i, k in enumerate(column.key)}
            clash = connection.execute(
                select(table.c[column.key[0]]).where(and_(*[table.c[k] == v for k, v in others.items()]))
            ).first()
            if clash is not None:
                connection.execute(delete(table).where(where))
                return
        connection.execute(update(table).where(where).values({column.column: new}))

    def _retokenise(self, report: RotationReport) -> int:
        """Vault rows under an older token key: new token from the plaintext, every reference updated."""
        stale = ~privacy_vault.c.token.like(f"{TOKEN_PREFIX}{self.cipher.active_token_key}:%")
        done = 0
        while True:
            with self._engine.begin() as connection:
                rows = connection.execute(select(privacy_vault).where(stale).limit(self._batch)).all()
                for row in rows:
                    plain = self.cipher.open(row.sealed)
                    new = self.cipher.token(row.kind, plain)
                    exists = connection.execute(
                        select(privacy_vault.c.token).where(privacy_vault.c.token == new)
                    ).first()
                    if exists is None:
                        connection.execute(
                            update(privacy_vault)
                            .where(privacy_vault.c.token == row.token)
                            .values(token=new, sealed=self.cipher.seal(row.kind, plain))
                        )
                    else:
                        connection.execute(delete(privacy_vault).where(privacy_vault.c.token == row.token))
                    for column in [c for c in COLUMNS if c.mode == "token"]:
                        table = self._table(column.table)
                        if table is None:
                            continue
                        col = table.c[column.column]
                        for found in connection.execute(
                            select(*[table.c[k] for k in column.key], col).where(col == row.token)
                        ).all():
                            self._replace(connection, table, column, found, new)
                    connection.execute(
                        update(privacy_canaries).where(privacy_canaries.c.token == row.token).values(token=new)
                    )
            done += len(rows)
            report.retokenised += len(rows)
            if len(rows) < self._batch:
                return done

    # ------------------------------------------------------------------ checks and retirement
    def remaining(self) -> dict[str, int]:
        """Per column, how many values still need the active key (0 everywhere: old keys may go)."""
        out: dict[str, int] = {}
        active = f"{SEALED_PREFIX}{self.cipher.active_key}:%"
        active_token = f"{TOKEN_PREFIX}{self.cipher.active_token_key}:%"
        with self._engine.connect() as connection:
            for column in COLUMNS:
                table = self._table(column.table)
                if table is None:
                    continue
                col = table.c[column.column]
                name = f"{column.table}.{column.column}"
                if column.mode == "whole":
                    query = select(col).where(col.is_not(None), col != "", ~col.like(active))
                    out[name] = len(connection.execute(query).all())
                elif column.mode == "token":
                    query = select(col).where(col.is_not(None), ~col.like(active_token))
                    if not column.seal_plain:
                        query = query.where(col.like(f"{TOKEN_PREFIX}%"))
                    out[name] = len(connection.execute(query).all())
                else:
                    count = 0
                    for (text,) in connection.execute(select(col).where(col.like("%enc1:%"))):
                        leaves = _sealed_leaves(json.loads(text))
                        count += any(FieldCipher.key_of(leaf) != self.cipher.active_key for leaf in leaves)
                    out[name] = count
        return out

    def _retire(self) -> list[str]:
        keyring: Keyring = self.cipher.keyring
        old = {k for k in keyring.keys if k != keyring.active} | {
            k for k in keyring.token_keys if k != keyring.active_token
        }
        if not old:
            return []
        now = utcnow()
        if self._privacy.keyring_path is not None:
            write_file(self._privacy.keyring_path, keyring.without(old))
            self.cipher.refresh(force=True)
        with self._engine.begin() as connection:
            connection.execute(
                update(privacy_keys)
                .where(privacy_keys.c.key_id.in_(sorted(old)), privacy_keys.c.retired_at.is_(None))
                .values(retired_at=now)
            )
            audit.record(connection, self._actor, "keys.retire", ",".join(sorted(old)), {"keys": sorted(old)})
        return sorted(old)

    def _table(self, name: str) -> Table | None:
        if name not in self._tables:
            if not inspect(self._engine).has_table(name):
                return None
            self._tables[name] = Table(name, MetaData(), autoload_with=self._engine)
        return self._tables[name]


def _sealed_leaves(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.startswith(SEALED_PREFIX) else []
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _sealed_leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _sealed_leaves(v)]
    return []
