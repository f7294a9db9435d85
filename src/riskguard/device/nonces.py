"""Single-use challenges: a random nonce bound to one digest, valid for a short time.

Kept in process memory: a nonce is issued and consumed by the same serving process (riskguard runs one
serving process per database; see docs/architecture.md), and losing them in a restart only makes clients
ask again — a nonce this process never issued is refused as ``NONCE_UNKNOWN``. A consumed nonce is
remembered until it would have expired plus one time to live, so a replay inside that span is reported
as ``NONCE_REPLAYED``; after it, as unknown (refused either way).

The event that consumed a nonce is remembered too: the same event decided again (a retry after a failed
commit) is not a replay.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from riskguard.device import codes


class NonceStore:
    def __init__(
        self,
        *,
        ttl_s: float = 60.0,
        size: int = 32,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ttl = ttl_s
        self.size = size
        self.clock = clock
        self.wall = wall
        # nonce → [digest, issued (clock), consumed by (event id) or None]
        self._entries: dict[bytes, list[object]] = {}
        self._order: deque[tuple[float, bytes]] = deque()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def issue(self, digest: bytes) -> tuple[bytes, datetime]:
        """A fresh nonce for ``digest`` and when it expires."""
        nonce = secrets.token_bytes(self.size)
        now = self.clock()
        with self._lock:
            self._sweep(now)
            self._entries[nonce] = [digest, now, None]
            self._order.append((now, nonce))
        return nonce, self.wall() + timedelta(seconds=self.ttl)

    def check(self, nonce: bytes, digest: bytes, consumer: str) -> str | None:
        """The reason ``nonce`` may not be used for ``digest`` now, or None; does not consume it."""
        with self._lock:
            return self._reason(nonce, digest, consumer, self.clock())

    def consume(self, nonce: bytes, digest: bytes, consumer: str) -> str | None:
        """Marks ``nonce`` used by ``consumer`` (an event id); returns the refusal reason or None."""
        now = self.clock()
        with self._lock:
            reason = self._reason(nonce, digest, consumer, now)
            if reason is None:
                self._entries[nonce][2] = consumer
            return reason

    def release(self, nonce: bytes, consumer: str) -> None:
        """Un-consumes a nonce (its decision was not recorded, so the client may retry)."""
        with self._lock:
            entry = self._entries.get(nonce)
            if entry is not None and entry[2] == consumer:
                entry[2] = None

    def _reason(self, nonce: bytes, digest: bytes, consumer: str, now: float) -> str | None:
        entry = self._entries.get(nonce)
        if entry is None:
            return codes.NONCE_UNKNOWN
        bound, issued, used_by = entry
        if used_by is not None and used_by != consumer:
            return codes.NONCE_REPLAYED
        if now - issued > self.ttl:  # type: ignore[operator]
            return codes.NONCE_EXPIRED
        if bound != digest:
            return codes.DIGEST_MISMATCH
        return None

    def _sweep(self, now: float) -> None:
        horizon = now - 2 * self.ttl
        order, entries = self._order, self._entries
        while order and order[0][0] < horizon:
            _, nonce = order.popleft()
            entries.pop(nonce, None)
