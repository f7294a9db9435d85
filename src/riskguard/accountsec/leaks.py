"""Registered leaks of personal data: import, matching to accounts, the watch flags rules read, and the
outreach alert.

``import_leak`` reads a CSV (a header naming columns among phone, email, id_number, card — or ``kind``
and ``value``) or JSON Lines (objects with those keys, or ``{"kind": ..., "value": ...}``) as a stream and
turns every value into a keyed token (privacy ``FieldCipher.token``) at once: the raw values are never
written anywhere. It then scans the event log for the identifiers accounts have used — the event's
``phone`` and ``card_id``, and ``attributes.email`` / ``attributes.id_number`` — tokenised the same way,
and flags every account whose identifier is in the leak until the leak's expiry. One alert per leak
lists the affected accounts for outreach (table ``leak_alerts``, read through store/alerts.py).

Re-importing a leak under the same name adds the new identifiers and matches again (nothing twice).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from riskguard.accountsec.tables import leak_alerts, leak_identifiers, leak_watch, leaks
from riskguard.errors import NotFound, ValidationFailed
from riskguard.events.schema import Event
from riskguard.store import audit
from riskguard.store.alerts import AlertRepository
from riskguard.store.tables import utcnow

#: leak column / kind names → the privacy cipher's token kind
KINDS = {"phone": "phone", "email": "email", "id_number": "id_number", "card": "card"}
ALIASES = {
    "mobile": "phone",
    "phone_number": "phone",
    "e-mail": "email",
    "mail": "email",
    "id": "id_number",
    "id_card": "id_number",
    "card_number": "card",
    "card_id": "card",
    "pan": "card",
}
BATCH = 5_000
SAMPLE_ACCOUNTS = 1_000  # accounts listed in an alert's evidence (the count is always complete)


def _alert_score(kinds: dict[str, int]) -> float:
    """40, plus 10 per kind of identifier that leaked, plus 20 when card or ID numbers did (they open
    accounts and pass identity checks)."""
    return min(100.0, 40.0 + 10.0 * len(kinds) + (20.0 if "card" in kinds or "id_number" in kinds else 0.0))


def _kind(name: str) -> str | None:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in KINDS else None


def event_identifiers(event: Event) -> Iterator[tuple[str, str]]:
    """(kind, value) of the identifiers an event says belong to its account."""
    if event.phone:
        yield "phone", event.phone
    if event.card_id:
        yield "card", event.card_id
    attributes = event.attributes
    for key, kind in (("email", "email"), ("id_number", "id_number")):
        value = attributes.get(key)
        if isinstance(value, str) and value:
            yield kind, value


def token_key_ids(tokens: Iterable[str]) -> list[str]:
    """The token keys that made ``tokens`` (one, until the token key is rotated): an identifier is
    tokenised under each to be compared."""
    from riskguard.privacy.cipher import FieldCipher

    return sorted({key for key in (FieldCipher.token_key_of(t) for t in tokens) if key is not None})


def read_values(path: Path) -> Iterator[tuple[str, str]]:
    """(kind, raw value) of every identifier in a leak file; a clear error naming the line otherwise."""
    suffix = path.suffix.lower()
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        if suffix in (".jsonl", ".ndjson", ".json"):
            yield from _jsonl(handle, path.name)
        else:
            yield from _csv(handle, path.name)


def _bad(where: str, msg: str) -> ValidationFailed:
    return ValidationFailed([{"loc": [where], "type": "value_error", "msg": msg}])


def _csv(handle: io.TextIOBase, name: str) -> Iterator[tuple[str, str]]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        return
    columns = [h.strip().lower() for h in header]
    if "kind" in columns and "value" in columns:
        k, v = columns.index("kind"), columns.index("value")
        for number, row in enumerate(reader, 2):
            if len(row) <= max(k, v):
                continue
            kind = _kind(row[k])
            if kind is None:
                raise _bad(f"{name}:{number}", f"kind {row[k]!r} is not one of {', '.join(KINDS)}")
            if row[v].strip():
                yield kind, row[v].strip()
        return
    kinds = [(i, _kind(c)) for i, c in enumerate(columns)]
    known = [(i, k) for i, k in kinds if k is not None]
    if not known:
        raise _bad(f"{name}:1", f"no column named {', '.join(KINDS)} (or kind and value)")
    for row in reader:
        for i, kind in known:
            if i < len(row) and row[i].strip():
                yield kind, row[i].strip()


def _jsonl(handle: io.TextIOBase, name: str) -> Iterator[tuple[str, str]]:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad(f"{name}:{number}", f"not JSON: {exc.msg}") from None
        if not isinstance(item, dict):
            raise _bad(f"{name}:{number}", "each line must be a JSON object")
        if "kind" in item and "value" in item:
            kind = _kind(str(item["kind"]))
            if kind is None:
                raise _bad(f"{name}:{number}", f"kind {item['kind']!r} is not one of {', '.join(KINDS)}")
            if str(item["value"]).strip():
                yield kind, str(item["value"]).strip()
            continue
        for key, value in item.items():
            kind = _kind(key)
            if kind is not None and value not in (None, ""):
                yield kind, str(value).strip()


@dataclass
class LeakImport:
    leak_id: int
    name: str
    identifiers: int  # distinct tokens of this leak after the import
    new_identifiers: int
    accounts: int  # accounts flagged
    kinds: dict[str, int] = field(default_factory=dict)  # accounts matched per kind
    alert_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "leak_id": self.leak_id,
            "name": self.name,
            "identifiers": self.identifiers,
            "new_identifiers": self.new_identifiers,
            "accounts": self.accounts,
            "accounts_by_kind": self.kinds,
            "alert_id": self.alert_id,
        }


class LeakRegistry:
    """Leaks, their tokens, the accounts they touch, and their alerts, in riskguard's database."""

    def __init__(self, engine: Engine, cipher: Any) -> None:
        self.engine = engine
        self.cipher = cipher
        self.alerts = AlertRepository(engine, leak_alerts, noun="leak alert", audit_action="leak_alert.status")

    # ------------------------------------------------------------------ import
    def import_leak(
        self,
        values: Iterable[tuple[str, str]],
        *,
        name: str,
        source: str,
        discovered_at: datetime,
        watch_days: float,
        actor: str,
        events: Iterable[Event] = (),
        expires_at: datetime | None = None,
    ) -> LeakImport:
        """Registers (or extends) the leak ``name``, flags the accounts whose identifiers in ``events``
        (the event log) are in it, and raises its alert."""
        if not name.strip() or len(name) > 128:
            raise _bad("name", "give the leak a name of 1-128 characters")
        now = utcnow()
        discovered_at = discovered_at if discovered_at.tzinfo else discovered_at.replace(tzinfo=UTC)
        if expires_at is None:
            if watch_days <= 0:
                raise _bad("watch_days", "must be positive")
            expires_at = max(now, discovered_at) + timedelta(days=watch_days)
        leak_id = self._leak_row(name, source, discovered_at, expires_at, actor, now)
        before = self._token_count(leak_id)
        token = self.cipher.token
        batch: set[tuple[str, str]] = set()
        try:
            for kind, value in values:
                batch.add((kind, token(kind, value)))
                if len(batch) >= BATCH:
                    self._insert_tokens(leak_id, batch)
                    batch.clear()
            if batch:
                self._insert_tokens(leak_id, batch)
        except BaseException:
            # a file that turns out bad half-way: a new leak is not registered at all; an existing one keeps
            # what it had plus the batches already written (importing the corrected file again is harmless)
            if before == 0 and self._watched_count(leak_id) == 0:
                self._drop(leak_id)
            raise
        total = self._token_count(leak_id)
        matched = self.match(leak_id, events, discovered_at=discovered_at, expires_at=expires_at, now=now)
        flagged = len(matched)
        kinds: dict[str, int] = {}
        for found in matched.values():
            for kind in found:
                kinds[kind] = kinds.get(kind, 0) + 1
        kinds = dict(sorted(kinds.items()))
        with self.engine.begin() as connection:
            connection.execute(
                update(leaks).where(leaks.c.id == leak_id).values(identifiers=total, accounts=flagged, imported_at=now)
            )
            audit.record(
                connection,
                actor,
                "leak.import",
                name,
                {"source": source, "identifiers": total, "new": total - before, "accounts": flagged},
            )
        alert_id = self._raise_alert(leak_id, name, source, discovered_at, expires_at, total, kinds, sorted(matched))
        return LeakImport(leak_id, name, total, total - before, flagged, kinds, alert_id)

    def _leak_row(
        self, name: str, source: str, discovered_at: datetime, expires_at: datetime, actor: str, now: datetime
    ) -> int:
        with self.engine.begin() as connection:
            found = connection.execute(select(leaks.c.id).where(leaks.c.name == name)).scalar()
            if found is not None:
                connection.execute(
                    update(leaks)
                    .where(leaks.c.id == found)
                    .values(source=source, discovered_at=discovered_at, expires_at=expires_at)
                )
                return int(found)
            return int(
                connection.execute(
                    insert(leaks).values(
                        name=name,
                        source=source,
                        discovered_at=discovered_at,
                        imported_at=now,
                        imported_by=actor,
                        expires_at=expires_at,
                        identifiers=0,
                        accounts=0,
                    )
                ).inserted_primary_key[0]
            )

    def _insert_tokens(self, leak_id: int, batch: set[tuple[str, str]]) -> None:
        mark = "?" if self.engine.dialect.name == "sqlite" else "%s"
        sql = (
            f"INSERT INTO leak_identifiers (leak_id, kind, token) VALUES ({mark}, {mark}, {mark}) "
            "ON CONFLICT DO NOTHING"
        )
        raw: Any = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.executemany(sql, [(leak_id, kind, tok) for kind, tok in batch])
            cursor.close()
            raw.commit()
        finally:
            raw.close()

    def _watched_count(self, leak_id: int) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(leak_watch).where(leak_watch.c.leak_id == leak_id)
                ).scalar_one()
            )

    def _drop(self, leak_id: int, connection: Any = None) -> None:
        if connection is None:
            with self.engine.begin() as connection:
                self._drop(leak_id, connection)
            return
        connection.execute(delete(leak_watch).where(leak_watch.c.leak_id == leak_id))
        connection.execute(delete(leak_identifiers).where(leak_identifiers.c.leak_id == leak_id))
        connection.execute(delete(leaks).where(leaks.c.id == leak_id))

    def _token_count(self, leak_id: int) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(leak_identifiers).where(leak_identifiers.c.leak_id == leak_id)
                ).scalar_one()
            )

    def tokens(self, leak_id: int | None = None) -> dict[str, str]:
        """token → kind of every (or one leak's) identifier."""
        query = select(leak_identifiers.c.token, leak_identifiers.c.kind)
        if leak_id is not None:
            query = query.where(leak_identifiers.c.leak_id == leak_id)
        with self.engine.connect() as connection:
            return {row.token: row.kind for row in connection.execute(query)}

    # ------------------------------------------------------------------ matching
    def match(
        self,
        leak_id: int,
        events: Iterable[Event],
        *,
        discovered_at: datetime,
        expires_at: datetime,
        now: datetime,
    ) -> dict[str, set[str]]:
        """Flags the accounts whose identifiers in ``events`` are in the leak; returns every account the
        leak flags now (earlier matches included) with the kinds that matched."""
        leaked = self.tokens(leak_id)
        found: dict[str, set[str]] = {}
        if leaked:
            key_ids = token_key_ids(leaked)
            token_with = self.cipher.token_with
            hits: dict[tuple[str, str], bool] = {}  # an identifier seen again is not hashed again
            for event in events:
                for kind, value in event_identifiers(event):
                    hit = hits.get((kind, value))
                    if hit is None:
                        hit = hits[(kind, value)] = any(token_with(k, kind, value) in leaked for k in key_ids)
                    if hit:
                        found.setdefault(event.account_id, set()).add(kind)
        with self.engine.begin() as connection:
            existing = {
                row.account_id: set(row.kinds.split(","))
                for row in connection.execute(
                    select(leak_watch.c.account_id, leak_watch.c.kinds).where(leak_watch.c.leak_id == leak_id)
                )
            }
            for account, kinds in found.items():
                merged = sorted(kinds | existing.get(account, set()))
                values = {"kinds": ",".join(merged), "discovered_at": discovered_at, "expires_at": expires_at}
                if account in existing:
                    connection.execute(
                        update(leak_watch)
                        .where(leak_watch.c.leak_id == leak_id, leak_watch.c.account_id == account)
                        .values(**values)
                    )
                else:
                    connection.execute(
                        insert(leak_watch).values(account_id=account, leak_id=leak_id, matched_at=now, **values)
                    )
                existing[account] = set(merged)
            connection.execute(
                update(leak_watch)
                .where(leak_watch.c.leak_id == leak_id)
                .values(expires_at=expires_at, discovered_at=discovered_at)
            )
        return existing

    def _raise_alert(
        self,
        leak_id: int,
        name: str,
        source: str,
        discovered_at: datetime,
        expires_at: datetime,
        identifiers: int,
        kinds: dict[str, int],
        accounts: list[str],
    ) -> int | None:
        key = f"leak:{leak_id}"
        self.alerts.upsert(
            [
                {
                    "key": key,
                    "kind": "leak",
                    "score": _alert_score(kinds),
                    "accounts": accounts,
                    "evidence": {
                        "leak": name,
                        "leak_id": leak_id,
                        "source": source,
                        "discovered_at": discovered_at.isoformat(),
                        "watch_until": expires_at.isoformat(),
                        "identifiers": identifiers,
                        "accounts_by_kind": kinds,
                        "accounts_total": len(accounts),
                        "accounts": accounts[:SAMPLE_ACCOUNTS],
                        "action": "contact the affected customers: warn of targeted scams, suggest a password change",
                    },
                }
            ]
        )
        with self.engine.connect() as connection:
            return connection.execute(select(leak_alerts.c.id).where(leak_alerts.c.key == key)).scalar()

    def rematch(self, name: str, events: Iterable[Event], *, actor: str) -> LeakImport:
        """Matches a registered leak against ``events`` again (accounts seen since), keeping its expiry."""
        with self.engine.connect() as connection:
            row = connection.execute(select(leaks).where(leaks.c.name == name)).first()
        if row is None:
            raise NotFound(f"no leak named {name!r}")
        return self.import_leak(
            (),
            name=name,
            source=row.source,
            discovered_at=row.discovered_at,
            watch_days=0,
            actor=actor,
            events=events,
            expires_at=row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC),
        )

    # ------------------------------------------------------------------ reading
    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [row._asdict() for row in connection.execute(select(leaks).order_by(leaks.c.id))]

    def watched(self, now: datetime) -> dict[str, tuple[frozenset[str], datetime]]:
        """account → (kinds, newest discovery) over every unexpired watch flag."""
        out: dict[str, tuple[frozenset[str], datetime]] = {}
        query = select(leak_watch.c.account_id, leak_watch.c.kinds, leak_watch.c.discovered_at).where(
            leak_watch.c.expires_at > now
        )
        with self.engine.connect() as connection:
            for row in connection.execute(query):
                kinds = frozenset(row.kinds.split(","))
                found = out.get(row.account_id)
                if found is None:
                    out[row.account_id] = (kinds, row.discovered_at)
                else:
                    out[row.account_id] = (found[0] | kinds, max(found[1], row.discovered_at))
        return out

    def generation(self) -> tuple[Any, ...]:
        """Changes whenever a leak is imported, re-matched or removed (what a running service polls)."""
        with self.engine.connect() as connection:
            row = connection.execute(select(func.count(), func.max(leaks.c.imported_at))).first()
        return tuple(row) if row is not None else ()

    def remove(self, name: str, actor: str) -> bool:
        with self.engine.begin() as connection:
            found = connection.execute(select(leaks.c.id).where(leaks.c.name == name)).scalar()
            if found is None:
                return False
            self._drop(int(found), connection)
            audit.record(connection, actor, "leak.remove", name, {})
        return True
