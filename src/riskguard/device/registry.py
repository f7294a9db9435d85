"""Registered device keys: the table (durable, shared by every worker) and an in-memory index of it.

Decisions never wait for the database: the index holds every binding, by key, by account and device, by
registration network and by fingerprint; it is loaded at start-up and kept current from the table.

Writes are steps of the group commit (store/writer.py), so that on SQLite one connection per process
writes and nothing waits for SQLite's busy handler:

- a registration is indexed at once (the decisions after it see it, as they would have) and its row is
  inserted by a step of the next batch; the partial unique index on active keys refuses a key that
  another worker bound meanwhile, and a failed step takes the binding back out of the index;
- a decision that accepted a signature carries a step that advances the key's counter with a conditional
  update (``counter < new``, or the same event again) in that decision's own transaction: the counter is
  durable exactly when the decision is, and no counter is accepted twice by two workers or across a
  crash (the second write fails; the retry is told ``COUNTER_REGRESSION``);
- a revocation is a step too, waited for.

Other workers' registrations, rebindings and revocations are picked up by ``refresh`` (every poll, about
a second): it re-reads the rows changed in the last ``REFRESH_MARGIN_S`` seconds (``changed_at``, indexed)
and merges them by id, so a transaction that commits late is still seen; an unknown key in a signature is
looked up at once (``load_key``).
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from riskguard.device import codes
from riskguard.device.errors import DeviceRefused
from riskguard.device.keys import b64, unb64
from riskguard.device.providers.base import Attestation
from riskguard.device.sql import Sql
from riskguard.device.tables import device_keys

Step = Callable[[Any], None]
REFRESH_MARGIN_S = 10.0
#: the columns a registration step inserts, in order
_INSERTED = [c.name for c in device_keys.columns if c.name != "id"]


@dataclass(eq=False)
class KeyRecord:
    id: int | None  # None until its registration step has inserted the row
    key_id: str
    device_id: str
    account_id: str
    provider: str
    scheme: str
    public_key: bytes
    attested: bool
    security_level: str
    boot_state: str
    patch_level: int | None
    package: str | None
    signing_digest: str | None
    serials: list[str]
    findings: list[str]
    environment: dict[str, bool]
    details: dict[str, Any]
    fingerprint: str | None
    network: str | None
    status: str
    rebound_from: str | None
    registered_at: datetime
    created_at: datetime
    ended_at: datetime | None = None
    counter: int = 0
    fingerprint_changes: int = 0
    last_used_at: datetime | None = None
    cose_key: bytes | None = None
    credential_id: bytes | None = None
    last_event: str | None = None  # the event whose signature set ``counter``
    # runtime only
    last_fingerprint: str | None = None
    key: Any = field(default=None, repr=False)

    @property
    def registered_ts(self) -> float:
        return self.registered_at.timestamp()

    def view(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "device_id": self.device_id,
            "account_id": self.account_id,
            "provider": self.provider,
            "attested": self.attested,
            "security_level": self.security_level,
            "boot_state": self.boot_state,
            "patch_level": self.patch_level,
            "package": self.package,
            "signing_digest": self.signing_digest,
            "findings": self.findings,
            "environment": self.environment,
            "status": self.status,
            "rebound_from": self.rebound_from,
            "registered_at": self.registered_at,
            "ended_at": self.ended_at,
            "counter": self.counter,
            "last_used_at": self.last_used_at,
            "details": self.details,
        }


def _row_record(row: Any) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        key_id=row.key_id,
        device_id=row.device_id,
        account_id=row.account_id,
        provider=row.provider,
        scheme=row.scheme,
        public_key=unb64(row.public_key, field="public_key"),
        attested=bool(row.attested),
        security_level=row.security_level,
        boot_state=row.boot_state,
        patch_level=row.patch_level,
        package=row.package,
        signing_digest=row.signing_digest,
        serials=json.loads(row.serials),
        findings=json.loads(row.findings),
        environment=json.loads(row.environment),
        details=json.loads(row.details),
        fingerprint=row.fingerprint,
        network=row.network,
        status=row.status,
        rebound_from=row.rebound_from,
        registered_at=row.registered_at,
        created_at=row.created_at,
        ended_at=row.ended_at,
        counter=row.counter,
        fingerprint_changes=row.fingerprint_changes,
        last_used_at=row.last_used_at,
        cose_key=unb64(row.cose_key, field="cose_key") if row.cose_key else None,
        credential_id=unb64(row.credential_id, field="credential_id") if row.credential_id else None,
        last_event=row.last_event,
        last_fingerprint=row.fingerprint,
    )


def new_record(attestation: Attestation, values: dict[str, Any], now: datetime) -> KeyRecord:
    """A new active binding of ``attestation``'s key (``values``: key_id, device_id, account_id,
    environment, fingerprint, network, rebound_from, registered_at), not yet stored."""
    return KeyRecord(
        id=None,
        provider=attestation.provider,
        scheme=attestation.scheme,
        public_key=attestation.public_key,
        attested=attestation.attested,
        security_level=attestation.security_level,
        boot_state=attestation.boot_state,
        patch_level=attestation.patch_level,
        package=attestation.package,
        signing_digest=attestation.signing_digest,
        serials=list(attestation.serials),
        findings=list(attestation.findings),
        details=json.loads(json.dumps(attestation.details, default=str, sort_keys=True)),
        status="active",
        created_at=now,
        counter=attestation.counter,
        cose_key=attestation.cose_key,
        credential_id=attestation.credential_id,
        last_fingerprint=values.get("fingerprint"),
        **values,
    )


def _row_values(record: KeyRecord, sql: Sql, now: datetime) -> tuple[Any, ...]:
    """The inserted columns (``_INSERTED``) of a new binding, as the driver takes them."""
    values = {
        **record.__dict__,
        "public_key": b64(record.public_key),
        "cose_key": b64(record.cose_key) if record.cose_key else None,
        "credential_id": b64(record.credential_id) if record.credential_id else None,
        "serials": json.dumps(record.serials),
        "findings": json.dumps(record.findings),
        "environment": json.dumps(record.environment, sort_keys=True),
        "details": json.dumps(record.details, default=str, sort_keys=True),
        "changed_at": now,
    }
    return tuple(sql.time(values[c]) if isinstance(values[c], datetime) else values[c] for c in _INSERTED)


class DeviceRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sql = Sql(engine.dialect.name)
        self.lock = threading.RLock()
        self._by_id: dict[int, KeyRecord] = {}
        self._by_key: dict[str, list[KeyRecord]] = {}  # every binding of a key, oldest first
        self._by_pair: dict[tuple[str, str], KeyRecord] = {}  # (account, device) → newest active binding
        self._account_devices: dict[str, set[str]] = {}  # active bindings
        self._device_accounts: dict[str, set[str]] = {}  # every binding, active or not
        self._device_records: dict[str, list[KeyRecord]] = {}  # every binding of a device, oldest first
        self._networks: dict[str, list[tuple[float, str]]] = {}  # registrations, by time
        self._fingerprints: dict[str, set[str]] = {}  # registered fingerprint → devices
        self._refreshed: datetime | None = None  # when the last load or refresh began (DB-independent clock)
        # a signed decision's step: advance the counter if it is still below (or it is this event again)
        self._advance = self.sql(
            "UPDATE device_keys SET counter = ?, last_event = ?, last_used_at = ?, "
            "fingerprint_changes = fingerprint_changes + ? WHERE id = ? AND status = 'active' "
            "AND (counter < ? OR (counter = ? AND (last_event = ? OR ? = 1)))"
        )
        self._stored = self.sql("SELECT status, counter, last_event, ended_at FROM device_keys WHERE id = ?")

    # ------------------------------------------------------------------ loading and merging
    def load(self, now: datetime) -> int:
        """Reads every binding (at start-up)."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(device_keys).order_by(device_keys.c.id)).all()
        with self.lock:
            for row in rows:
                self._merge(row)
            self._refreshed = now
        return len(rows)

    def refresh(self, now: datetime) -> int:
        """Merges the rows registered, ended or revoked (by any worker) since shortly before the last
        refresh; returns how many were read."""
        since = (self._refreshed or now) - timedelta(seconds=REFRESH_MARGIN_S)
        query = select(device_keys).where(device_keys.c.changed_at >= since).order_by(device_keys.c.id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        with self.lock:
            for row in rows:
                self._merge(row)
            self._refreshed = now
        return len(rows)

    def load_key(self, key_id: str) -> KeyRecord | None:
        """Reads ``key_id``'s bindings now (a key this worker has not seen yet) and returns its current one."""
        query = select(device_keys).where(device_keys.c.key_id == key_id).order_by(device_keys.c.id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        with self.lock:
            for row in rows:
                self._merge(row)
            return self.current(key_id)

    def _merge(self, row: Any) -> None:
        known = self._by_id.get(row.id)
        if known is None:
            self._index(_row_record(row))
            return
        if known.status == "active" and row.status != "active":
            self._end(known, row.ended_at, row.status)
        known.status = row.status
        if row.counter > known.counter:
            known.counter, known.last_event, known.last_used_at = row.counter, row.last_event, row.last_used_at
        known.fingerprint_changes = max(known.fingerprint_changes, row.fingerprint_changes)

    def _index(self, record: KeyRecord) -> None:
        if record.id is not None:
            self._by_id[record.id] = record
        self._by_key.setdefault(record.key_id, []).append(record)
        self._device_accounts.setdefault(record.device_id, set()).add(record.account_id)
        self._device_records.setdefault(record.device_id, []).append(record)
        if record.status == "active":
            self._by_pair[(record.account_id, record.device_id)] = record
            self._account_devices.setdefault(record.account_id, set()).add(record.device_id)
        if record.network:
            bisect.insort(self._networks.setdefault(record.network, []), (record.registered_ts, record.device_id))
        if record.fingerprint:
            self._fingerprints.setdefault(record.fingerprint, set()).add(record.device_id)

    def _unindex(self, record: KeyRecord) -> None:
        """Takes a binding that was never stored back out of every index."""
        if record.id is not None:
            self._by_id.pop(record.id, None)
        self._by_key[record.key_id].remove(record)
        siblings = self._device_records[record.device_id]
        siblings.remove(record)
        if not any(r.account_id == record.account_id for r in siblings):
            self._device_accounts[record.device_id].discard(record.account_id)
        if record.status == "active":
            self._end(record, record.created_at)
        if record.network:
            self._networks[record.network].remove((record.registered_ts, record.device_id))
        if record.fingerprint and not any(r.fingerprint == record.fingerprint for r in siblings):
            self._fingerprints[record.fingerprint].discard(record.device_id)

    def _end(self, record: KeyRecord, when: datetime | None, status: str = "ended") -> None:
        record.status = status
        record.ended_at = when
        pair = (record.account_id, record.device_id)
        if self._by_pair.get(pair) is record:
            del self._by_pair[pair]
            others = [
                r
                for r in self._device_records.get(record.device_id, ())
                if r.account_id == record.account_id and r.status == "active"
            ]
            if others:
                self._by_pair[pair] = others[-1]
            else:
                self._account_devices.get(record.account_id, set()).discard(record.device_id)

    def _reopen(self, record: KeyRecord) -> None:
        """Undoes ``_end`` of a binding whose replacement was never stored."""
        record.status, record.ended_at = "active", None
        self._by_pair[(record.account_id, record.device_id)] = record
        self._account_devices.setdefault(record.account_id, set()).add(record.device_id)

    # ------------------------------------------------------------------ writing (steps of the group commit)
    def bind(self, record: KeyRecord, ends: KeyRecord | None, now: datetime) -> None:
        """Indexes a new binding (ending ``ends``, the key's binding it replaces) before it is stored:
        the decisions after it see it; ``binding_step`` stores it and ``withdraw`` undoes this."""
        with self.lock:
            if ends is not None:
                self._end(ends, now)
            self._index(record)

    def withdraw(self, record: KeyRecord, ends: KeyRecord | None) -> None:
        with self.lock:
            self._unindex(record)
            if ends is not None and ends.status == "ended":
                self._reopen(ends)

    def binding_step(
        self, record: KeyRecord, ends: KeyRecord | None, now: datetime, audit: tuple[Any, ...] | None
    ) -> Step:
        """Ends ``ends``, inserts ``record`` (its id is set) and writes ``audit`` (an audit_log row's
        at, actor, action, target, details); refuses, changing nothing, when another worker bound or
        ended the key first."""
        sql = self.sql
        end = sql(
            "UPDATE device_keys SET status = 'ended', ended_at = ?, changed_at = ? WHERE id = ? AND status = 'active'"
        )
        insert = sql(
            f"INSERT INTO device_keys ({', '.join(_INSERTED)}) VALUES ({', '.join('?' * len(_INSERTED))}) "
            "ON CONFLICT (key_id) WHERE status = 'active' DO NOTHING RETURNING id"
        )
        bound = sql("SELECT account_id, device_id FROM device_keys WHERE key_id = ? AND status = 'active'")
        write_audit = self.audit_step(audit) if audit is not None else None
        stamp = sql.time(now)
        row_values = _row_values(record, sql, now)  # now: decisions may advance its counter before it is written

        def store_binding(cursor: Any) -> None:
            if ends is not None:
                cursor.execute(end, (stamp, stamp, ends.id))
                if cursor.rowcount != 1:
                    raise DeviceRefused(codes.KEY_BOUND_TO_OTHER_ACCOUNT, "changed on another worker", status=409)
            cursor.execute(insert, row_values)
            row = cursor.fetchone()
            if row is None:
                cursor.execute(bound, (record.key_id,))
                taken = cursor.fetchone()
                if taken is not None and tuple(taken) == (record.account_id, record.device_id):
                    raise AlreadyBound(record.key_id)
                same_device = taken is not None and taken[1] == record.device_id
                code = codes.KEY_BOUND_TO_OTHER_ACCOUNT if same_device else codes.DEVICE_MISMATCH
                raise DeviceRefused(code, "bound on another worker", status=409)
            if write_audit is not None:
                write_audit(cursor)
            with self.lock:
                record.id = row[0]
                self._by_id[row[0]] = record

        return store_binding

    def revoke_step(self, record: KeyRecord, now: datetime, audit: tuple[Any, ...]) -> Step:
        sql = self.sql
        revoke = sql(
            "UPDATE device_keys SET status = 'revoked', ended_at = ?, changed_at = ? WHERE id = ? AND status = 'active'"
        )
        write_audit = self.audit_step(audit)
        stamp = sql.time(now)

        def store_revocation(cursor: Any) -> None:
            cursor.execute(revoke, (stamp, stamp, record.id))
            write_audit(cursor)

        return store_revocation

    def audit_step(self, entry: tuple[Any, ...]) -> Step:
        """Writes an audit_log row: (at, actor, action, target, details as JSON text)."""
        statement = self.sql("INSERT INTO audit_log (at, actor, action, target, details) VALUES (?, ?, ?, ?, ?)")
        values = (self.sql.time(entry[0]), *entry[1:])

        def write_audit(cursor: Any) -> None:
            cursor.execute(statement, values)

        return write_audit

    def mark_used(
        self, record: KeyRecord, counter: int, event_id: str, when: datetime, fingerprint: str | None
    ) -> bool:
        """Notes an accepted signature in the index; returns whether the fingerprint changed."""
        with self.lock:
            record.counter = counter
            record.last_event = event_id
            record.last_used_at = when
            changed = False
            if fingerprint and fingerprint != record.last_fingerprint:
                if record.last_fingerprint is not None:
                    record.fingerprint_changes += 1
                    changed = True
                record.last_fingerprint = fingerprint
            return changed

    def counter_step(
        self, record: KeyRecord, counter: int, event_id: str, when: datetime, fingerprint_changed: bool
    ) -> Step:
        """Advances the stored counter to ``counter`` for ``event_id`` if it is still below it (or it is
        this event again; a WebAuthn authenticator without a counter stays at 0); otherwise refuses,
        after bringing the index up to what is stored."""
        sql, advance, stored = self.sql, self._advance, self._stored
        counterless = 1 if record.scheme == "webauthn" and counter == 0 else 0
        changes = int(fingerprint_changed)

        def advance_counter(cursor: Any) -> None:  # in the writer's thread; the id is read now (a binding
            # stored earlier in this batch has one by now)
            values = (counter, event_id, sql.time(when), changes, record.id, counter, counter, event_id, counterless)
            cursor.execute(advance, values)
            if cursor.rowcount == 1:
                return
            cursor.execute(stored, (record.id,))
            row = cursor.fetchone()
            with self.lock:
                if row is None:
                    raise DeviceRefused(codes.UNKNOWN_KEY, "the key's binding was not stored")
                status, stored_counter, last_event, ended_at = row
                if int(stored_counter) >= record.counter:
                    record.counter, record.last_event = int(stored_counter), last_event
                if status != "active":
                    if record.status == "active":
                        self._end(record, sql.read_time(ended_at), status)
                    raise DeviceRefused(codes.KEY_REVOKED if status == "revoked" else codes.KEY_ACCOUNT_MISMATCH)
            raise DeviceRefused(codes.COUNTER_REGRESSION, "a higher counter was accepted on another worker")

        return advance_counter

    # ------------------------------------------------------------------ reading
    def current(self, key_id: str) -> KeyRecord | None:
        """The key's active binding, else its newest one (ended or revoked)."""
        records = self._by_key.get(key_id)
        if not records:
            return None
        for record in reversed(records):
            if record.status == "active":
                return record
        return records[-1]

    def bindings(self, key_id: str) -> list[KeyRecord]:
        return list(self._by_key.get(key_id, ()))

    def for_pair(self, account_id: str, device_id: str) -> KeyRecord | None:
        return self._by_pair.get((account_id, device_id))

    def for_device(self, device_id: str) -> list[KeyRecord]:
        with self.lock:
            return list(self._device_records.get(device_id, ()))

    def records(self) -> list[KeyRecord]:
        """Every binding, oldest first (stored ones by id, then any not yet stored)."""
        with self.lock:
            every = [r for records in self._by_key.values() for r in records]
        return sorted(every, key=lambda r: (r.id is None, r.id or 0))

    def account_enrolled(self, account_id: str) -> bool:
        return bool(self._account_devices.get(account_id))

    def account_devices(self, account_id: str) -> int:
        return len(self._account_devices.get(account_id, ()))

    def device_accounts(self, device_id: str) -> int:
        return len(self._device_accounts.get(device_id, ()))

    def network_devices(self, network: str | None, at: float, window_s: float, *, distinct: bool = True) -> int:
        """Devices (``distinct``) or registrations from ``network`` within ``window_s`` either side of ``at``."""
        if not network:
            return 0
        with self.lock:
            times = self._networks.get(network)
            if not times:
                return 0
            low = bisect.bisect_left(times, (at - window_s, ""))
            high = bisect.bisect_right(times, (at + window_s, "\uffff"))
            if not distinct:
                return high - low
            return len({device for _, device in times[low:high]})

    def fingerprint_devices(self, fingerprint: str | None) -> int:
        if not fingerprint:
            return 0
        return len(self._fingerprints.get(fingerprint, ()))


class AlreadyBound(Exception):
    """Another worker bound this key to the same account and device first: the registration is a repeat."""
