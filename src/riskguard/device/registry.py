"""Registered device keys: the table (durable) and an in-memory index of it (what decisions read).

Decisions never query the database: the index holds every binding, by key, by account and device, by
registration network and by fingerprint, and is loaded once at start-up. What a decision changes — the
signature counter, the last use, fingerprint changes — is kept in memory and written back by ``flush``
(every second from the service's thread, and at close). A crash can lose the last second of counters;
nonces are single use regardless, so a lost counter cannot let a signed request be replayed.
"""

from __future__ import annotations

import bisect
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from riskguard.device.keys import b64, unb64
from riskguard.device.providers.base import Attestation
from riskguard.device.tables import device_keys


@dataclass(eq=False)
class KeyRecord:
    id: int
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
    # runtime only
    last_event: str | None = None
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
        counter=int(row.counter),
        fingerprint_changes=int(row.fingerprint_changes),
        last_used_at=row.last_used_at,
        cose_key=unb64(row.cose_key, field="cose_key") if row.cose_key else None,
        credential_id=unb64(row.credential_id, field="credential_id") if row.credential_id else None,
        last_fingerprint=row.fingerprint,
    )


class DeviceRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.RLock()
        self._by_key: dict[str, list[KeyRecord]] = {}  # every binding of a key, oldest first
        self._by_pair: dict[tuple[str, str], KeyRecord] = {}  # (account, device) → newest active binding
        self._account_devices: dict[str, set[str]] = {}  # active bindings
        self._device_accounts: dict[str, set[str]] = {}  # every binding, active or not
        self._device_records: dict[str, list[KeyRecord]] = {}  # every binding of a device, oldest first
        self._networks: dict[str, list[tuple[float, str]]] = {}  # registrations, by time
        self._fingerprints: dict[str, set[str]] = {}  # registered fingerprint → devices
        self._dirty: set[KeyRecord] = set()

    # ------------------------------------------------------------------ loading and writing
    def load(self) -> int:
        with self.engine.connect() as connection:
            rows = connection.execute(select(device_keys).order_by(device_keys.c.id)).all()
        with self.lock:
            for row in rows:
                self._index(_row_record(row))
        return len(rows)

    def _index(self, record: KeyRecord) -> None:
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

    def add(
        self, attestation: Attestation, values: dict[str, Any], *, ends: KeyRecord | None, now: datetime
    ) -> KeyRecord:
        """Stores a new binding (and ends ``ends``, the key's binding it replaces) in one transaction."""
        row = {
            "provider": attestation.provider,
            "scheme": attestation.scheme,
            "public_key": b64(attestation.public_key),
            "cose_key": b64(attestation.cose_key) if attestation.cose_key else None,
            "credential_id": b64(attestation.credential_id) if attestation.credential_id else None,
            "attested": attestation.attested,
            "security_level": attestation.security_level,
            "boot_state": attestation.boot_state,
            "patch_level": attestation.patch_level,
            "package": attestation.package,
            "signing_digest": attestation.signing_digest,
            "serials": json.dumps(attestation.serials),
            "findings": json.dumps(attestation.findings),
            "details": json.dumps(attestation.details, default=str, sort_keys=True),
            "status": "active",
            "created_at": now,
            "counter": attestation.counter,
            "fingerprint_changes": 0,
            **values,
            "environment": json.dumps(values["environment"], sort_keys=True),
        }
        with self.lock:
            with self.engine.begin() as connection:
                if ends is not None:
                    connection.execute(
                        update(device_keys).where(device_keys.c.id == ends.id).values(status="ended", ended_at=now)
                    )
                new_id = connection.execute(insert(device_keys).values(**row)).inserted_primary_key[0]
                stored = connection.execute(select(device_keys).where(device_keys.c.id == new_id)).one()
            if ends is not None:
                self._end(ends, now)
            record = _row_record(stored)
            self._index(record)
        return record

    def _end(self, record: KeyRecord, now: datetime, status: str = "ended") -> None:
        record.status = status
        record.ended_at = now
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

    def revoke(self, key_id: str, now: datetime) -> KeyRecord | None:
        with self.lock:
            record = self.current(key_id)
            if record is None or record.status != "active":
                return record
            with self.engine.begin() as connection:
                connection.execute(
                    update(device_keys).where(device_keys.c.id == record.id).values(status="revoked", ended_at=now)
                )
            self._end(record, now, status="revoked")
            return record

    def mark_used(
        self, record: KeyRecord, counter: int, event_id: str, when: datetime, fingerprint: str | None
    ) -> None:
        with self.lock:
            record.counter = counter
            record.last_event = event_id
            record.last_used_at = when
            if fingerprint and fingerprint != record.last_fingerprint:
                if record.last_fingerprint is not None:
                    record.fingerprint_changes += 1
                record.last_fingerprint = fingerprint
            self._dirty.add(record)

    def flush(self) -> int:
        with self.lock:
            dirty, self._dirty = self._dirty, set()
            values = [(r.id, r.counter, r.last_used_at, r.fingerprint_changes) for r in dirty]
        if not values:
            return 0
        with self.engine.begin() as connection:
            for record_id, counter, last_used, changes in values:
                connection.execute(
                    update(device_keys)
                    .where(device_keys.c.id == record_id)
                    .values(counter=counter, last_used_at=last_used, fingerprint_changes=changes)
                )
        return len(values)

    # ------------------------------------------------------------------ reading
    def current(self, key_id: str) -> KeyRecord | None:
        """The key's newest binding (active, ended or revoked)."""
        records = self._by_key.get(key_id)
        return records[-1] if records else None

    def bindings(self, key_id: str) -> list[KeyRecord]:
        return list(self._by_key.get(key_id, ()))

    def for_pair(self, account_id: str, device_id: str) -> KeyRecord | None:
        return self._by_pair.get((account_id, device_id))

    def for_device(self, device_id: str) -> list[KeyRecord]:
        with self.lock:
            return list(self._device_records.get(device_id, ()))

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
