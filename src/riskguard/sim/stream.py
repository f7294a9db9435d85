"""Streams events into riskguard and collects the decisions: in process (the library) or over HTTP.

In process, each event is decided through ``RiskGuard.submit`` (the same pipeline and durable group commit
as the server); up to ``window`` decisions wait for their commit at once. Over HTTP, ``connections``
keep-alive connections send ``POST /v1/decisions`` concurrently, in time order (an event may overtake at
most ``connections - 1`` others). Both can be paced to a ``rate`` in events per second. A 503 is retried
with the same event id (the service's contract); any other refusal is counted as an error.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from riskguard.errors import ConfigError, RiskguardError

_decode = msgspec.json.decode
_encode = msgspec.json.encode
RETRIES = 5
LABEL_BATCH_BYTES = 60_000  # under the service's default body limit (RISKGUARD_MAX_BODY_BYTES, 64 KiB)


@dataclass(frozen=True)
class Decided:
    """One event's answer as the demo keeps it."""

    event_id: str
    decision: str  # allow, challenge, review, block; "error" when refused
    score: int
    latency_ms: float  # the service's own pipeline time
    round_trip_ms: float  # submit → durable (in process), request → answer (HTTP)
    rules: tuple[str, ...]
    error: str | None = None


def _decided(event_id: str, body: dict[str, Any], round_trip_ms: float) -> Decided:
    return Decided(
        event_id=event_id,
        decision=body["decision"],
        score=int(body["score"]),
        latency_ms=float(body.get("latency_ms", 0.0)),
        round_trip_ms=round_trip_ms,
        rules=tuple(r["rule"] for r in body.get("reasons", ()) if r.get("rule")),
    )


class _Pacer:
    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.started = time.perf_counter()
        self.sent = 0

    def delay(self) -> float:
        """Seconds to wait before the next event may go (0 when unpaced or behind)."""
        if not self.interval:
            return 0.0
        due = self.started + self.sent * self.interval
        self.sent += 1
        return max(0.0, due - time.perf_counter())


class InProcessTarget:
    """Decides events with a ``RiskGuard`` in this process."""

    def __init__(self, guard: Any, *, window: int = 64) -> None:
        self.guard = guard
        self.window = window

    def stream(
        self, bodies: Iterable[dict[str, Any]], on_decided: Callable[[Decided], None], rate: float | None = None
    ) -> None:
        from riskguard.events.validate import parse_event_obj

        limits = self.guard.settings.event_limits
        pending: deque[tuple[str, Any, list[float]]] = deque()
        pacer = _Pacer(rate)

        def settle_one() -> None:
            event_id, submission, mark = pending.popleft()
            if not submission.ticket.wait(self.guard.settings.commit_timeout_ms / 1000 * 4):
                on_decided(Decided(event_id, "error", 0, 0.0, 0.0, (), "not recorded in time"))
                return
            if submission.ticket.error is not None:
                on_decided(Decided(event_id, "error", 0, 0.0, 0.0, (), f"not recorded: {submission.ticket.error}"))
                return
            on_decided(_decided(event_id, submission.body, mark[1] * 1000 if len(mark) > 1 else 0.0))

        for body in bodies:
            wait = pacer.delay()
            if wait:
                time.sleep(wait)
            try:
                event = parse_event_obj(body, **limits)
                started = time.perf_counter()
                submission = self.guard.submit(event)
            except RiskguardError as exc:
                on_decided(Decided(body.get("event_id", "?"), "error", 0, 0.0, 0.0, (), str(exc)))
                continue
            mark = [started]
            submission.ticket.on_done(lambda _t, m=mark: m.append(time.perf_counter() - m[0]))
            pending.append((event.event_id, submission, mark))
            while len(pending) > self.window or (pending and pending[0][1].ticket.done):
                settle_one()
        while pending:
            settle_one()

    def post_labels(self, labels: list[dict[str, Any]]) -> int:
        rows = [
            {
                "event_id": item.get("event_id"),
                "entity_kind": (item.get("entity") or {}).get("kind"),
                "entity_value": (item.get("entity") or {}).get("value"),
                "label": item["label"],
                "source": item["source"],
                "typology": item.get("typology"),
                "labelled_at": datetime.fromisoformat(item["labelled_at"]),
                "note": item.get("note"),
            }
            for item in labels
        ]
        return len(self.guard.add_labels(rows))


class HttpTarget:
    """Decides events through a running service's ``POST /v1/decisions``."""

    def __init__(self, url: str, *, key: str | None = None, connections: int = 8, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(f"--url {url!r}: give the service's address as http://HOST:PORT (TLS: use a proxy)")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.base = parts.path.rstrip("/")
        self.key = key
        self.connections = max(1, connections)
        self.timeout_s = timeout_s

    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        head = [f"{method} {self.base}{path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if self.key:
            head.append(f"Authorization: Bearer {self.key}")
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(head[9:12]), await reader.readexactly(length)

    def check(self) -> dict[str, Any]:
        """``GET /healthz``: raises ``ConfigError`` when nothing answers there."""

        async def probe() -> tuple[int, bytes]:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 5)
            try:
                writer.write(self._request("GET", "/healthz"))
                return await asyncio.wait_for(self._response(reader), 10)
            finally:
                writer.close()

        try:
            status, body = asyncio.run(probe())
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            raise ConfigError(f"no riskguard service answers at http://{self.host}:{self.port} ({exc})") from None
        if status != 200:
            raise ConfigError(f"http://{self.host}:{self.port}/healthz answered {status}")
        return _decode(body)

    def stream(
        self, bodies: Iterable[dict[str, Any]], on_decided: Callable[[Decided], None], rate: float | None = None
    ) -> None:
        asyncio.run(self._stream(iter(bodies), on_decided, rate))

    async def _stream(
        self, bodies: Iterator[dict[str, Any]], on_decided: Callable[[Decided], None], rate: float | None
    ) -> None:
        pacer = _Pacer(rate)
        lock = asyncio.Lock()

        async def next_body() -> dict[str, Any] | None:
            async with lock:
                body = next(bodies, None)
                if body is not None:
                    wait = pacer.delay()
                    if wait:
                        await asyncio.sleep(wait)
                return body

        async def worker() -> None:
            reader = writer = None
            try:
                while (body := await next_body()) is not None:
                    request = self._request("POST", "/v1/decisions", _encode(body))
                    event_id = body["event_id"]
                    for attempt in range(RETRIES + 1):
                        try:
                            if writer is None:
                                reader, writer = await asyncio.open_connection(self.host, self.port)
                            started = time.perf_counter()
                            writer.write(request)
                            status, answer = await asyncio.wait_for(self._response(reader), self.timeout_s)
                        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                            if writer is not None:
                                writer.close()
                            reader = writer = None
                            if attempt == RETRIES:
                                on_decided(Decided(event_id, "error", 0, 0.0, 0.0, (), f"connection: {exc!r}"))
                            else:
                                await asyncio.sleep(0.5 * (attempt + 1))
                            continue
                        elapsed = (time.perf_counter() - started) * 1000
                        if status == 200:
                            on_decided(_decided(event_id, _decode(answer), elapsed))
                        elif status == 503 and attempt < RETRIES:
                            await asyncio.sleep(1.0)
                            continue
                        else:
                            message = answer.decode(errors="replace")[:300]
                            on_decided(Decided(event_id, "error", 0, 0.0, elapsed, (), f"HTTP {status}: {message}"))
                        break
            finally:
                if writer is not None:
                    writer.close()

        await asyncio.gather(*(worker() for _ in range(self.connections)))

    def post_labels(self, labels: list[dict[str, Any]]) -> int:
        """``POST /v1/labels`` in batches within the service's body limit (the key needs the ``label`` or
        ``admin`` scope)."""

        async def post_all() -> int:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            recorded = 0
            try:
                for batch in _batches(labels, max_items=1000, max_bytes=LABEL_BATCH_BYTES):
                    body = b'{"labels":[' + b",".join(batch) + b"]}"
                    writer.write(self._request("POST", "/v1/labels", body))
                    status, answer = await asyncio.wait_for(self._response(reader), self.timeout_s)
                    if status != 201:
                        raise ConfigError(f"POST /v1/labels answered {status}: {answer.decode(errors='replace')[:300]}")
                    recorded += int(_decode(answer)["recorded"])
            finally:
                writer.close()
            return recorded

        return asyncio.run(post_all())


def _batches(items: list[dict[str, Any]], *, max_items: int, max_bytes: int) -> Iterator[list[bytes]]:
    """Encoded items grouped so that each group has at most ``max_items`` and about ``max_bytes``."""
    batch: list[bytes] = []
    size = 0
    for item in items:
        encoded = _encode(item)
        if batch and (len(batch) >= max_items or size + len(encoded) + 1 > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(encoded)
        size += len(encoded) + 1
    if batch:
        yield batch
