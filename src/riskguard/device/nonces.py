"""Single-use challenges: a nonce bound to one digest, valid for a short time, used once by any worker.

Issuing stores nothing. A nonce carries its issue time and two 128-bit tags, keyed BLAKE2b MACs (RFC 7693
keyed mode, one personalisation per tag) under the installation's nonce key (``device_secrets``: made by
the first process that starts on the database, read by every other, so every worker checks every
worker's nonces)::

    version (1) ‖ issued, ms since the epoch (8, big-endian) ‖ random (nonce_bytes) ‖ id tag (16) ‖ digest tag (16)
    id tag     = BLAKE2b(key, person="rg-nonce-id", head)             head = the first three fields
    digest tag = BLAKE2b(key, person="rg-nonce-digest", head ‖ digest)

so any worker can tell whether a nonce was issued here (else ``NONCE_UNKNOWN``), whether it is older than
its time to live (``NONCE_EXPIRED``) and whether it was issued for this digest (``DIGEST_MISMATCH``). What
is recorded is its *use*, named by the id tag:

- with the Redis feature back end, in Redis, atomically when the decision (or registration) uses it (a
  script: set unless set, else answer who used it), so a replay to another worker is refused at once;
- otherwise in the ``device_nonces`` table, by a step of the decision's own group commit: an insert that
  meets another consumer's row fails that write (the request is answered "not recorded, retry", and the
  retry with the same event id is told ``NONCE_REPLAYED``), so a nonce is never accepted twice and its use
  is durable exactly when the decision that used it is.

Uses seen by this process are also kept here, so a replay to the same worker is refused at once either
way. A use is remembered until the nonce is two times to live old (a replay after that is expired). The
consumer is the event id: the same event decided again (a retry after a failed commit) is not a replay.
Worker clocks must agree to well within the time to live (NTP): the issuing worker's time is in the nonce.

Written by hand: the format is riskguard's own; it is ``hashlib``, ``struct`` and one table or Redis key.
(Keyed BLAKE2b rather than HMAC-SHA256: the same guarantee for a third of the CPU, about 0.6 µs a tag.)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from riskguard.device import codes
from riskguard.device.errors import DeviceRefused
from riskguard.device.sql import Sql

VERSION = 1
TAG = 16
_HEAD = struct.Struct(">BQ")
_ID = b"rg-nonce-id"
_DIGEST = b"rg-nonce-digest"
MIN_RANDOM, MAX_RANDOM = 16, 64
#: Redis: set the use unless one is set; answer the consumer already there (nil when this one was set)
_USE = """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

Step = Callable[[Any], None]
POOL_BYTES = 4096


class RandomPool:
    """Random bytes from ``os.urandom``, read 4 KiB at a time.

    Nonces and consumer ids are public values: slices of one read are as random as separate reads, and
    a system call per nonce is saved (under load, each one is a chance to lose the CPU)."""

    def __init__(self) -> None:
        self._pool = b""
        self._lock = threading.Lock()

    def take(self, size: int) -> bytes:
        with self._lock:
            if len(self._pool) < size:
                self._pool = os.urandom(max(POOL_BYTES, size))
            out, self._pool = self._pool[:size], self._pool[size:]
        return out


class _Parsed:
    __slots__ = ("digest_tag", "head", "ident", "issued", "matched")

    def __init__(self, head: bytes, issued: float, ident: bytes, digest_tag: bytes) -> None:
        self.head, self.issued, self.ident, self.digest_tag = head, issued, ident, digest_tag
        self.matched: bytes | None = None  # the digest its tag was found to bind


class NonceStore:
    def __init__(
        self,
        secret: bytes,
        *,
        ttl_s: float = 60.0,
        size: int = 32,
        clock: Callable[[], float] = time.time,
        sql: Sql | None = None,
        redis: Any = None,
        prefix: str = "{rg}:device:nonce:",
    ) -> None:
        """``sql``: record uses in ``device_nonces`` (steps of the group commit); ``redis``: a client to
        record them in Redis instead (keys ``prefix`` + id tag, hex)."""
        self._secret = secret
        self.ttl = ttl_s
        self.size = size
        self.clock = clock
        self.sql = sql
        self.redis = redis
        self.prefix = prefix
        self._use = redis.register_script(_USE) if redis is not None else None
        self._last: tuple[bytes, _Parsed] | None = None  # a decision checks, then uses, the same nonce
        self._used: dict[bytes, str] = {}  # id tag → consumer, uses seen by this process
        self._order: deque[tuple[float, bytes]] = deque()  # (forget after, id tag)
        self._lock = threading.Lock()
        self.random = RandomPool()

    def __len__(self) -> int:
        return len(self._used)

    # ------------------------------------------------------------------ issuing
    def issue(self, digest: bytes) -> tuple[bytes, datetime]:
        """A fresh nonce for ``digest`` and when it expires."""
        issued = self.clock()
        head = _HEAD.pack(VERSION, int(issued * 1000)) + self.random.take(self.size)
        nonce = head + self._tag(_ID, head) + self._tag(_DIGEST, head + digest)
        return nonce, datetime.fromtimestamp(int(issued * 1000) / 1000 + self.ttl, UTC)

    def _tag(self, label: bytes, data: bytes) -> bytes:
        return hashlib.blake2b(data, digest_size=TAG, key=self._secret, person=label).digest()

    def _parse(self, nonce: bytes) -> _Parsed | None:
        last = self._last
        if last is not None and last[0] == nonce:
            return last[1]
        random_size = len(nonce) - _HEAD.size - 2 * TAG
        if not MIN_RANDOM <= random_size <= MAX_RANDOM or nonce[0] != VERSION:
            return None
        head = nonce[: -2 * TAG]
        ident = nonce[-2 * TAG : -TAG]
        if not hmac.compare_digest(ident, self._tag(_ID, head)):
            return None
        parsed = _Parsed(head, _HEAD.unpack_from(nonce)[1] / 1000, ident, nonce[-TAG:])
        self._last = (nonce, parsed)
        return parsed

    # ------------------------------------------------------------------ checking and using
    def check(self, nonce: bytes, digest: bytes, consumer: str, *, shared: bool = True) -> str | None:
        """The reason ``nonce`` may not be used for ``digest`` now, or None; uses nothing up. ``shared``
        also asks Redis about uses by other workers (the table is consulted when a use is written)."""
        parsed = self._parse(nonce)
        if parsed is None:
            return codes.NONCE_UNKNOWN
        used_by = self._used.get(parsed.ident)
        if used_by is None and shared and self.redis is not None:
            value = self.redis.get(self.prefix + parsed.ident.hex())
            used_by = value.decode() if value is not None else None
        return self._reason(parsed, digest, consumer, used_by)

    def consume(self, nonce: bytes, digest: bytes, consumer: str) -> tuple[str | None, Step | None]:
        """Uses ``nonce`` up for ``consumer`` (an event id): (the refusal reason or None, the step that
        records the use in the decision's group commit, when uses live in the database)."""
        parsed = self._parse(nonce)
        if parsed is None:
            return codes.NONCE_UNKNOWN, None
        reason = self._reason(parsed, digest, consumer, self._used.get(parsed.ident))
        if reason is not None:
            return reason, None
        forget = parsed.issued + 2 * self.ttl
        if self._use is not None:
            remaining_ms = max(1, int((forget - self.clock()) * 1000))
            found = self._use(keys=[self.prefix + parsed.ident.hex()], args=[consumer, remaining_ms])
            if found is not None and found.decode() != consumer:
                self._remember(parsed.ident, found.decode(), forget)
                return codes.NONCE_REPLAYED, None
        self._remember(parsed.ident, consumer, forget)
        if self.sql is None or self._use is not None:
            return None, None
        return None, self._record_step(parsed.ident, consumer, forget)

    def _reason(self, parsed: _Parsed, digest: bytes, consumer: str, used_by: str | None) -> str | None:
        if used_by is not None and used_by != consumer:
            return codes.NONCE_REPLAYED
        age = self.clock() - parsed.issued
        if age > self.ttl or age < -self.ttl:
            return codes.NONCE_EXPIRED if age > 0 else codes.NONCE_UNKNOWN
        if parsed.matched != digest:
            if not hmac.compare_digest(parsed.digest_tag, self._tag(_DIGEST, parsed.head + digest)):
                return codes.DIGEST_MISMATCH
            parsed.matched = digest
        return None

    def _remember(self, ident: bytes, consumer: str, forget: float) -> None:
        with self._lock:
            order, used = self._order, self._used
            now = self.clock()
            while order and order[0][0] < now:
                _, old = order.popleft()
                used.pop(old, None)
            used[ident] = consumer
            order.append((forget, ident))

    # ------------------------------------------------------------------ the table
    def _record_step(self, ident: bytes, consumer: str, forget: float) -> Step:
        sql = self.sql
        assert sql is not None
        insert = sql(
            "INSERT INTO device_nonces (nonce_id, consumed_by, expires_ms) VALUES (?, ?, ?) "
            "ON CONFLICT (nonce_id) DO NOTHING"
        )
        select = sql("SELECT consumed_by FROM device_nonces WHERE nonce_id = ?")
        name = ident.hex()

        def record_use(cursor: Any) -> None:
            cursor.execute(insert, (name, consumer, int(forget * 1000)))
            if cursor.rowcount == 1:
                return
            cursor.execute(select, (name,))
            row = cursor.fetchone()
            if row is not None and row[0] == consumer:
                return
            self._remember(ident, row[0] if row is not None else "?", forget)
            raise DeviceRefused(codes.NONCE_REPLAYED, "used by another event on another worker")

        return record_use

    def sweep_step(self) -> Step:
        """A step that deletes the table's uses of nonces now two times to live old."""
        sql = self.sql
        assert sql is not None
        delete = sql("DELETE FROM device_nonces WHERE expires_ms < ?")
        now_ms = int(self.clock() * 1000)

        def sweep(cursor: Any) -> None:
            cursor.execute(delete, (now_ms,))

        return sweep
