"""The event bus on Redis Streams (the default).

One stream ``<prefix>:events`` holds the published messages (fields ``i``: message id, ``b``: body), trimmed
by ``XADD … MAXLEN ~ N`` so that Redis memory stays bounded: N must be larger than the biggest backlog a
consumer group is allowed to build up (a message trimmed before a group read it is lost to that group;
``lost`` counts those that were trimmed while handed out, and the log says so).

A consumer group per consumer (``XGROUP CREATE … 0 MKSTREAM``: a new group starts at the beginning);
members read with ``XREADGROUP`` and acknowledge with ``XACK`` after processing. ``XAUTOCLAIM`` takes
over messages whose hand-out is older than ``redeliver_s`` (a member died or failed them); a message
claimed more than ``max_deliveries`` times moves to ``<prefix>:dead:<group>`` (with the reason) and is
acknowledged. ``lag`` reads ``XINFO GROUPS`` (``lag`` and ``pending``, Redis 7).
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from riskguard.bus.base import BusUnavailable, DeadLetter, Delivery, Lag

log = logging.getLogger("riskguard.bus.redis")


class RedisStreamBus:
    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "riskguard",
        maxlen: int = 1_000_000,
        redeliver_s: float = 30.0,
        max_deliveries: int = 5,
        timeout_s: float = 5.0,
    ) -> None:
        self.stream = f"{prefix}:events"
        self._prefix = prefix
        self._maxlen = maxlen
        self._redeliver_ms = max(1, int(redeliver_s * 1000))
        self._max_deliveries = max_deliveries
        self._timeout_s = timeout_s
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._groups: set[str] = set()
        self._claim_cursor: dict[str, str] = {}
        self.lost = 0

    def dead_stream(self, group: str) -> str:
        return f"{self._prefix}:dead:{group}"

    def _run(self, what: str, call: Any) -> Any:
        try:
            return call()
        except redis.exceptions.ResponseError:
            raise
        except redis.exceptions.RedisError as exc:
            raise BusUnavailable(f"Redis bus: {what} failed: {exc}") from exc

    # ------------------------------------------------------------------ publishing
    def publish(self, messages: list[tuple[str, bytes]]) -> None:
        if not messages:
            return

        def send() -> None:
            pipe = self._client.pipeline(transaction=False)
            for message_id, body in messages:
                pipe.xadd(self.stream, {"i": message_id, "b": body}, maxlen=self._maxlen, approximate=True)
            pipe.execute()

        self._run("publish", send)

    # ------------------------------------------------------------------ consuming
    def _ensure_group(self, group: str) -> None:
        if group in self._groups:
            return
        try:
            self._run("create group", lambda: self._client.xgroup_create(self.stream, group, id="0", mkstream=True))
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise BusUnavailable(f"Redis bus: creating group {group!r} failed: {exc}") from exc
        self._groups.add(group)

    def fetch(self, group: str, member: str, count: int, block_ms: int) -> list[Delivery]:
        self._ensure_group(group)
        try:
            return self._fetch(group, member, count, block_ms)
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._groups.discard(group)  # the stream was deleted (a Redis without persistence restarted)
            raise BusUnavailable(f"Redis bus: group {group!r} vanished; it is created again") from exc

    def _fetch(self, group: str, member: str, count: int, block_ms: int) -> list[Delivery]:
        out = self._reclaim(group, member, count)
        if len(out) < count:
            block = None if out else max(1, block_ms)
            reply = self._run(
                "read",
                lambda: self._client.xreadgroup(group, member, {self.stream: ">"}, count=count - len(out), block=block),
            )
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    out.append(Delivery(fields[b"i"].decode(), fields[b"b"], 1, entry_id))
        return out

    def _reclaim(self, group: str, member: str, count: int) -> list[Delivery]:
        """Hand-outs older than ``redeliver_s``, claimed by ``member``; those over the limit dead-lettered."""
        start = self._claim_cursor.get(group, "0-0")
        reply = self._run(
            "claim",
            lambda: self._client.xautoclaim(
                self.stream, group, member, min_idle_time=self._redeliver_ms, start_id=start, count=count
            ),
        )
        cursor, entries = reply[0], reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        self._claim_cursor[group] = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        if deleted:
            self.lost += len(deleted)
            log.error(
                "%d messages of group %s were trimmed from the stream before they were acknowledged",
                len(deleted),
                group,
            )
        entries = [(entry_id, fields) for entry_id, fields in entries if fields]
        if not entries:
            return []
        ids = [entry_id for entry_id, _fields in entries]
        pending = self._run(
            "pending",
            lambda: self._client.xpending_range(
                self.stream, group, min=ids[0], max=ids[-1], count=len(ids) * 4 + 16, consumername=member
            ),
        )
        times = {row["message_id"]: int(row["times_delivered"]) for row in pending}
        out: list[Delivery] = []
        for entry_id, fields in entries:
            delivery = Delivery(fields[b"i"].decode(), fields[b"b"], times.get(entry_id, 2), entry_id)
            if delivery.deliveries > self._max_deliveries:
                self.dead_letter(group, delivery, f"not acknowledged after {self._max_deliveries} deliveries")
            else:
                out.append(delivery)
        return out

    def ack(self, group: str, deliveries: list[Delivery]) -> None:
        if deliveries:
            handles = [d.handle for d in deliveries]
            self._run("ack", lambda: self._client.xack(self.stream, group, *handles))

    def dead_letter(self, group: str, delivery: Delivery, reason: str) -> None:
        def move() -> None:
            pipe = self._client.pipeline(transaction=True)
            fields = {"i": delivery.id, "b": delivery.body, "n": delivery.deliveries, "reason": reason[:2000]}
            pipe.xadd(self.dead_stream(group), fields)
            pipe.xack(self.stream, group, delivery.handle)
            pipe.execute()

        self._run("dead-letter", move)
        log.warning("message %s of group %s dead-lettered: %s", delivery.id, group, reason[:200])

    def dead_letters(self, group: str, limit: int = 100) -> list[DeadLetter]:
        entries = self._run("read dead letters", lambda: self._client.xrange(self.dead_stream(group), count=limit))
        return [
            DeadLetter(f[b"i"].decode(), f[b"b"], int(f[b"n"]), f[b"reason"].decode(errors="replace"))
            for _entry_id, f in entries
        ]

    # ------------------------------------------------------------------ operations
    def lag(self, group: str) -> Lag:
        dead = self._run("dead letters", lambda: self._client.xlen(self.dead_stream(group)))
        try:
            infos = self._run("info", lambda: self._client.xinfo_groups(self.stream))
        except redis.exceptions.ResponseError:  # no stream yet
            return Lag(group, 0, 0, int(dead))
        for info in infos:
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name == group:
                pending = int(info["pending"])
                waiting = info.get("lag")
                if waiting is None:  # Redis cannot tell after deletions: count what follows the group's position
                    last = info["last-delivered-id"]
                    waiting = len(
                        self._run("range", lambda last=last: self._client.xrange(self.stream, f"({last.decode()}", "+"))
                    )
                return Lag(group, int(waiting), pending, int(dead))
        return Lag(group, int(self._run("length", lambda: self._client.xlen(self.stream))), 0, int(dead))

    def groups(self) -> list[str]:
        try:
            infos = self._run("info", lambda: self._client.xinfo_groups(self.stream))
        except redis.exceptions.ResponseError:
            return []
        return sorted(i["name"].decode() if isinstance(i["name"], bytes) else i["name"] for i in infos)

    def length(self) -> int:
        return int(self._run("length", lambda: self._client.xlen(self.stream)))

    def reset(self) -> None:
        groups = self.groups()
        self._run("reset", lambda: self._client.delete(self.stream, *[self.dead_stream(g) for g in groups]))
        self._groups.clear()
        self._claim_cursor.clear()

    def close(self) -> None:
        self._client.close()
