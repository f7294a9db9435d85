"""The event bus on NATS JetStream (the replicated option).

A stream (``<name>``, subject ``<prefix>.events``, file storage, ``num_replicas`` copies — 3 in a
three-node cluster, so the bus survives losing a node) holds the published messages; each message
carries its id in the ``Nats-Msg-Id`` header, so a publisher that sends a message again within the
stream's duplicate window (two minutes) does not store it twice. Each consumer group is a durable pull
consumer with explicit acknowledgement, ``ack_wait = redeliver_s`` and ``max_deliver =
max_deliveries + 1``: a message that arrives for the ``max_deliveries + 1``-th time is published to
``<prefix>.dead.<group>`` (kept in the ``<name>_DEAD`` stream) and terminated instead of processed.
``lag`` reads the consumer's ``num_pending`` (waiting) and ``num_ack_pending`` (in flight).

nats-py is asynchronous; this class runs its own event loop in one thread and offers the same
synchronous methods as the Redis bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api
from nats.js.errors import NotFoundError

from riskguard.bus.base import BusUnavailable, DeadLetter, Delivery, Lag

log = logging.getLogger("riskguard.bus.jetstream")
T = TypeVar("T")


class JetStreamBus:
    name = "nats"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "riskguard",
        stream: str = "RISKGUARD",
        replicas: int = 1,
        max_msgs: int = 1_000_000,
        redeliver_s: float = 30.0,
        max_deliveries: int = 5,
        timeout_s: float = 5.0,
    ) -> None:
        self.subject = f"{prefix}.events"
        self._prefix = prefix
        self.stream = stream
        self.dead = f"{stream}_DEAD"
        self._replicas = replicas
        self._max_msgs = max_msgs
        self._redeliver_s = redeliver_s
        self._max_deliveries = max_deliveries
        self._timeout_s = timeout_s
        self._subs: dict[str, Any] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="riskguard-nats", daemon=True)
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None
        try:
            self._call("connect", self._connect(url))
        except BaseException:
            self._stop_loop()
            raise

    # ------------------------------------------------------------------ plumbing
    def _call(self, what: str, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout if timeout is not None else self._timeout_s * 3)
        except (NatsError, OSError, TimeoutError) as exc:
            future.cancel()
            raise BusUnavailable(f"NATS bus: {what} failed: {exc!r}") from exc

    async def _connect(self, url: str) -> None:
        self._nc = await nats.connect(
            url,
            connect_timeout=self._timeout_s,
            max_reconnect_attempts=1,  # the first connection fails fast: the caller retries with back-off
            reconnect_time_wait=0.5,
            error_cb=self._error,
        )
        self._nc.options["max_reconnect_attempts"] = -1  # once connected, ride out server restarts
        self._js = self._nc.jetstream(timeout=self._timeout_s)
        await self._ensure_streams()

    async def _error(self, exc: Exception) -> None:
        log.warning("NATS bus: %s", exc)

    async def _ensure_streams(self) -> None:
        await self._stream(
            api.StreamConfig(
                name=self.stream,
                subjects=[self.subject],
                storage=api.StorageType.FILE,
                num_replicas=self._replicas,
                max_msgs=self._max_msgs,
                discard=api.DiscardPolicy.OLD,
                duplicate_window=120.0,
            )
        )
        await self._stream(
            api.StreamConfig(
                name=self.dead,
                subjects=[f"{self._prefix}.dead.>"],
                storage=api.StorageType.FILE,
                num_replicas=self._replicas,
            )
        )

    async def _stream(self, config: api.StreamConfig) -> None:
        try:
            await self._js.add_stream(config)
        except nats.js.errors.BadRequestError:  # exists with other settings: bring it to these
            await self._js.update_stream(config)

    def dead_subject(self, group: str) -> str:
        return f"{self._prefix}.dead.{group}"

    # ------------------------------------------------------------------ publishing
    def publish(self, messages: list[tuple[str, bytes]]) -> None:
        if messages:
            self._call("publish", self._publish(messages), timeout=self._timeout_s * 3 + len(messages) / 1000)

    async def _publish(self, messages: list[tuple[str, bytes]]) -> None:
        for start in range(0, len(messages), 256):  # PubAcks awaited together, a window at a time
            chunk = messages[start : start + 256]
            await asyncio.gather(
                *(self._js.publish(self.subject, body, headers={"Nats-Msg-Id": mid}) for mid, body in chunk)
            )

    # ------------------------------------------------------------------ consuming
    async def _subscription(self, group: str) -> Any:
        sub = self._subs.get(group)
        if sub is None:
            config = api.ConsumerConfig(
                durable_name=group,
                ack_policy=api.AckPolicy.EXPLICIT,
                deliver_policy=api.DeliverPolicy.ALL,
                ack_wait=self._redeliver_s,
                max_deliver=self._max_deliveries + 1,
                max_ack_pending=20_000,
            )
            sub = await self._js.pull_subscribe(self.subject, durable=group, stream=self.stream, config=config)
            self._subs[group] = sub
        return sub

    def fetch(self, group: str, member: str, count: int, block_ms: int) -> list[Delivery]:
        return self._call("fetch", self._fetch(group, count, block_ms), timeout=self._timeout_s * 3 + block_ms / 1000)

    async def _fetch(self, group: str, count: int, block_ms: int) -> list[Delivery]:
        sub = await self._subscription(group)
        try:
            msgs = await sub.fetch(count, timeout=max(0.001, block_ms / 1000))
        except (NatsTimeout, TimeoutError):  # nothing arrived within block_ms
            return []
        out: list[Delivery] = []
        for msg in msgs:
            delivered = int(msg.metadata.num_delivered)
            mid = (msg.headers or {}).get("Nats-Msg-Id", "")
            delivery = Delivery(mid, msg.data, delivered, msg)
            if delivered > self._max_deliveries:
                await self._dead_letter(group, delivery, f"not acknowledged after {self._max_deliveries} deliveries")
            else:
                out.append(delivery)
        return out

    def ack(self, group: str, deliveries: list[Delivery]) -> None:
        if deliveries:
            self._call("ack", self._ack(deliveries))

    async def _ack(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            await delivery.handle.ack()
        await self._nc.flush(timeout=self._timeout_s)

    def dead_letter(self, group: str, delivery: Delivery, reason: str) -> None:
        self._call("dead-letter", self._dead_letter(group, delivery, reason))

    async def _dead_letter(self, group: str, delivery: Delivery, reason: str) -> None:
        headers = {
            "Nats-Msg-Id": f"{group}:{delivery.id}",
            "Rg-Id": delivery.id,
            "Rg-Deliveries": str(delivery.deliveries),
            "Rg-Reason": " ".join(reason[:1000].split()),
        }
        await self._js.publish(self.dead_subject(group), delivery.body, headers=headers)
        await delivery.handle.term()
        log.warning("message %s of group %s dead-lettered: %s", delivery.id, group, reason[:200])

    def dead_letters(self, group: str, limit: int = 100) -> list[DeadLetter]:
        return self._call("read dead letters", self._dead_letters(group, limit))

    async def _dead_letters(self, group: str, limit: int) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        seq = 1
        while len(out) < limit:
            try:
                raw = await self._js.get_msg(self.dead, seq=seq, subject=self.dead_subject(group), next=True)
            except NotFoundError:
                break
            headers = raw.headers or {}
            out.append(
                DeadLetter(
                    headers.get("Rg-Id", ""),
                    raw.data or b"",
                    int(headers.get("Rg-Deliveries", 0)),
                    headers.get("Rg-Reason", ""),
                )
            )
            seq = int(raw.seq) + 1
        return out

    # ------------------------------------------------------------------ operations
    def lag(self, group: str) -> Lag:
        return self._call("lag", self._lag(group))

    async def _lag(self, group: str) -> Lag:
        info = await self._js.stream_info(self.dead, subjects_filter=self.dead_subject(group))
        dead = int((info.state.subjects or {}).get(self.dead_subject(group), 0))
        try:
            consumer = await self._js.consumer_info(self.stream, group)
        except NotFoundError:
            stream = await self._js.stream_info(self.stream)
            return Lag(group, int(stream.state.messages), 0, dead)
        return Lag(group, int(consumer.num_pending or 0), int(consumer.num_ack_pending or 0), dead)

    def groups(self) -> list[str]:
        infos = self._call("groups", self._js.consumers_info(self.stream))
        return sorted(i.name for i in infos)

    def length(self) -> int:
        return int(self._call("length", self._js.stream_info(self.stream)).state.messages)

    def reset(self) -> None:
        async def drop() -> None:
            for sub in self._subs.values():
                await sub.unsubscribe()
            self._subs.clear()
            for name in (self.stream, self.dead):
                with contextlib.suppress(NotFoundError):
                    await self._js.delete_stream(name)
            await self._ensure_streams()

        self._call("reset", drop())

    def close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(BusUnavailable):
                self._call("close", self._nc.close(), timeout=self._timeout_s)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
