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

from sqlalchemy import Connection, Engine, MetaData, String, Table, and_, delete, insert, inspect, or_, select, update

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
        swept = self._sweep()
        report.rewritten["other tables"] = report.rewritten.get("other tables", 0) + swept
        if progress is not None and swept:
            progress("other tables", swept)
        return total + swept

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
        """Vault rows under an older token key: a vault row under the new token (sealed under the active
        key) and every reference in the inventory's token columns updated. The old vault rows stay until
        the old token key is retired, so tokens kept in columns outside the inventory still open and are
        mapped by ``_sweep``."""
        stale = ~privacy_vault.c.token.like(f"{TOKEN_PREFIX}{self.cipher.active_token_key}:%")
        changed = 0
        after = ""
        while True:
            with self._engine.begin() as connection:
                rows = connection.execute(
                    select(privacy_vault)
                    .where(stale, privacy_vault.c.token > after)
                    .order_by(privacy_vault.c.token)
                    .limit(self._batch)
                ).all()
                for row in rows:
                    new = self._new_token(connection, row.token, row.kind, row.sealed)
                    if new is None:
                        continue
                    changed += self._point(connection, row.token, new)
            if rows:
                after = rows[-1].token
            if len(rows) < self._batch:
                report.retokenised += changed
                return changed

    def _new_token(self, connection: Connection, old: str, kind: str, sealed: str) -> str | None:
        """The active token key's token for a vault row, its own vault row made when missing."""
        plain = fields.open_value(sealed)
        if not isinstance(plain, str):
            return None
        new = self.cipher.token(kind, plain)
        if new == old:
            return None
        if connection.execute(select(privacy_vault.c.token).where(privacy_vault.c.token == new)).first() is None:
            connection.execute(
                insert(privacy_vault).values(
                    token=new, kind=kind, sealed=self.cipher.seal(kind, plain), created_at=utcnow()
                )
            )
        return new

    def _point(self, connection: Connection, old: str, new: str) -> int:
        """Replaces token ``old`` by ``new`` in every token column of the inventory and in the canaries."""
        changed = 0
        for column in [c for c in COLUMNS if c.mode == "token"]:
            table = self._table(column.table)
            if table is None:
                continue
            col = table.c[column.column]
            for found in connection.execute(select(*[table.c[k] for k in column.key], col).where(col == old)).all():
                self._replace(connection, table, column, found, new)
                changed += 1
        changed += (
            connection.execute(
                update(privacy_canaries).where(privacy_canaries.c.token == old).values(token=new)
            ).rowcount
            or 0
        )
        return changed

    # ------------------------------------------------------------------ columns outside the inventory
    def _others(self) -> list[tuple[Table, Any, list[str]]]:
        """(table, column, primary key columns) of every text column the inventory does not name (another
        capability's tables), the audit log excepted (its past entries stay as they were written)."""
        known = {(c.table, c.column) for c in COLUMNS} | {("privacy_canaries", "token"), ("privacy_vault", "token")}
        found = []
        inspector = inspect(self._engine)
        for name in inspector.get_table_names():
            if name in ("audit_log", "alembic_version"):
                continue
            table = self._table(name)
            if table is None:
                continue
            keys = [c.name for c in table.primary_key.columns]
            for column in table.columns:
                if (name, column.name) in known or not isinstance(column.type, String):
                    continue
                found.append((table, column, keys))
        return found

    def _stale(self, value: str) -> bool:
        if value.startswith(SEALED_PREFIX):
            return FieldCipher.key_of(value) != self.cipher.active_key
        if value.startswith(TOKEN_PREFIX):
            return FieldCipher.token_key_of(value) != self.cipher.active_token_key
        return False

    def _fresh(self, connection: Connection, value: Any) -> Any:
        """``value`` (a sealed text, a token, or JSON holding them) with stale parts brought to the active keys."""
        if isinstance(value, dict):
            return {k: self._fresh(connection, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._fresh(connection, v) for v in value]
        if not isinstance(value, str) or not self._stale(value):
            if isinstance(value, str) and ('"enc1:' in value or '"tok1:' in value) and value[:1] in "{[":
                try:
                    parsed = json.loads(value)
                except ValueError:
                    return value
                fresh = self._fresh(connection, parsed)
                return value if fresh == parsed else json.dumps(fresh, ensure_ascii=False, separators=(",", ":"))
            return value
        if value.startswith(SEALED_PREFIX):
            kind = FieldCipher.parts(value)[1]
            return self.cipher.seal(kind, self.cipher.open(value))
        row = connection.execute(select(privacy_vault).where(privacy_vault.c.token == value)).first()
        if row is None:
            return value  # a token nobody can map (its vault row is gone): left, and counted as remaining
        return self._new_token(connection, row.token, row.kind, row.sealed) or value

    def _sweep(self) -> int:
        """Sealed values and tokens under older keys in columns outside the inventory, brought up to date."""
        changed = 0
        for table, column, keys in self._others():
            if not keys:
                continue
            pattern = or_(column.like(f"%{SEALED_PREFIX}%"), column.like(f"%{TOKEN_PREFIX}%"))
            with self._engine.connect() as connection:
                rows = connection.execute(select(*[table.c[k] for k in keys], column).where(pattern)).all()
            for start in range(0, len(rows), self._batch):
                with self._engine.begin() as connection:
                    for row in rows[start : start + self._batch]:
                        fresh = self._fresh(connection, row[-1])
                        if fresh != row[-1]:
                            where = and_(*[table.c[k] == row[i] for i, k in enumerate(keys)])
                            connection.execute(update(table).where(where).values({column.name: fresh}))
                            changed += 1
        return changed

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
            for table, column, _keys in self._others():
                pattern = or_(column.like(f"%{SEALED_PREFIX}%"), column.like(f"%{TOKEN_PREFIX}%"))
                count = sum(self._has_stale(v) for (v,) in connection.execute(select(column).where(pattern)))
                if count:
                    out[f"{table.name}.{column.name}"] = count
        return out

    def _has_stale(self, value: Any) -> bool:
        if isinstance(value, dict):
            return any(self._has_stale(v) for v in value.values())
        if isinstance(value, list):
            return any(self._has_stale(v) for v in value)
        if not isinstance(value, str):
            return False
        if self._stale(value):
            return True
        if value[:1] in "{[" and ('"enc1:' in value or '"tok1:' in value):
            try:
                return self._has_stale(json.loads(value))
            except ValueError:
                return False
        return False

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
            old_tokens = [k for k in old if k in keyring.token_keys]
            for key_id in old_tokens:  # vault rows kept for columns outside the inventory: no longer needed
                connection.execute(delete(privacy_vault).where(privacy_vault.c.token.like(f"{TOKEN_PREFIX}{key_id}:%")))
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
