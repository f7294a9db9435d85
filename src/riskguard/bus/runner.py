"""Runs one consumer from the bus: fetch a batch, process it once, acknowledge it.

Exactly-once effects over an at-least-once bus: the event ids a consumer processed are recorded in
``bus_processed`` in the same database transaction as its effects (consumers that write through other
services instead are idempotent by event id, and run before that transaction). A message delivered again
— the process was killed after its commit but before its acknowledgement, or its hand-out timed out — is
found there and only acknowledged. The ``bus_processed`` row goes in first, so two members racing for one
message conflict on its key and one of them rolls back.

A batch that fails is retried one message at a time, so that one bad message cannot hold back the
others; a message that fails is left unacknowledged (the bus hands it out again after
``RISKGUARD_BUS_REDELIVER_S``) and on its ``RISKGUARD_BUS_MAX_DELIVERIES``-th failure it goes to the
consumer's dead-letter stream with the error.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec
from sqlalchemy import Connection, delete, insert, select

from riskguard.bus.base import Bus, Delivery
from riskguard.bus.tables import bus_processed
from riskguard.events.schema import Event, from_stored
from riskguard.store.tables import utcnow

log = logging.getLogger("riskguard.bus.runner")


@dataclass
class Message:
    """A published event and its decision, as consumers see them (personal fields opened)."""

    event_id: str
    event: Event
    decision: dict[str, Any]
    published_at: float

    @property
    def decided_at(self) -> datetime:
        return datetime.fromisoformat(self.decision["decided_at"])


def decode(delivery: Delivery) -> Message:
    body = msgspec.json.decode(delivery.body)
    return Message(body["event_id"], from_stored(body["payload"]), body["decision"], float(body["published_at"]))


class Consumer(Protocol):
    """One asynchronous monitoring job. ``transactional`` consumers write their effects with the given
    connection (in the transaction that records the processed ids); the others get ``None`` and must be
    idempotent by event id. ``after`` runs after the commit (derived, repeatable work)."""

    name: str
    transactional: bool

    def start(self) -> None: ...

    def apply(self, connection: Connection | None, messages: Sequence[Message]) -> None: ...

    def after(self, messages: Sequence[Message]) -> None: ...

    def close(self) -> None: ...


def default_member() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ConsumerRunner:
    def __init__(
        self,
        engine: Any,
        bus: Bus,
        consumer: Consumer,
        *,
        max_deliveries: int,
        member: str | None = None,
        batch: int = 200,
        block_ms: int = 1000,
        retention_days: float = 7.0,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.consumer = consumer
        self.group = consumer.name
        self.member = member or default_member()
        self.batch = batch
        self.block_ms = block_ms
        self.max_deliveries = max_deliveries
        self.retention = timedelta(days=retention_days)
        self.processed = 0  # messages whose effects this runner committed
        self.skipped = 0  # deliveries of messages processed before (redeliveries)
        self.failures = 0
        self.dead = 0
        self.lags: list[float] = []  # seconds from decision to processed, of the latest messages
        self._pruned_at = 0.0

    def step(self) -> int:
        """One fetch and its processing; returns how many deliveries it handled."""
        deliveries = self.bus.fetch(self.group, self.member, self.batch, self.block_ms)
        if not deliveries:
            return 0
        try:
            self._process(deliveries)
            self.bus.ack(self.group, deliveries)
        except Exception as exc:
            log.warning(
                "a batch of %d failed in consumer %s (%s); one message at a time", len(deliveries), self.group, exc
            )
            for delivery in deliveries:
                self._one(delivery)
        return len(deliveries)

    def _one(self, delivery: Delivery) -> None:
        try:
            self._process([delivery])
        except Exception as exc:
            self.failures += 1
            if delivery.deliveries >= self.max_deliveries:
                self.bus.dead_letter(self.group, delivery, f"{type(exc).__name__}: {exc}")
                self.dead += 1
            else:
                log.warning(
                    "event %s failed in consumer %s (delivery %d): %s",
                    delivery.id,
                    self.group,
                    delivery.deliveries,
                    exc,
                )
            return
        self.bus.ack(self.group, [delivery])

    def _process(self, deliveries: list[Delivery]) -> None:
        messages: dict[str, Message] = {}
        for delivery in deliveries:
            message = decode(delivery)
            messages.setdefault(message.event_id, message)
        with self.engine.connect() as connection:
            done = set(
                connection.execute(
                    select(bus_processed.c.event_id).where(
                        bus_processed.c.consumer == self.group, bus_processed.c.event_id.in_(list(messages))
                    )
                ).scalars()
            )
        fresh = [m for event_id, m in messages.items() if event_id not in done]
        self.skipped += len(deliveries) - len(fresh)
        if not fresh:
            return
        if not self.consumer.transactional:
            self.consumer.apply(None, fresh)
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                insert(bus_processed),
                [{"consumer": self.group, "event_id": m.event_id, "processed_at": now} for m in fresh],
            )
            if self.consumer.transactional:
                self.consumer.apply(connection, fresh)
        self.processed += len(fresh)
        self.consumer.after(fresh)
        finished = time.time()
        self.lags.extend(finished - m.decided_at.timestamp() for m in fresh)
        del self.lags[:-10_000]

    def prune(self) -> int:
        """Forgets processed ids older than the retention (a redelivery that late cannot happen)."""
        with self.engine.begin() as connection:
            return connection.execute(
                delete(bus_processed).where(
                    bus_processed.c.consumer == self.group, bus_processed.c.processed_at < utcnow() - self.retention
                )
            ).rowcount

    def run(self, stop: threading.Event, *, until_idle: bool = False) -> None:
        """Processes until ``stop`` is set (or, with ``until_idle``, until the group has nothing waiting or in
        flight — messages a dead member held are taken over once their hand-out times out)."""
        self.consumer.start()
        backoff = 0.0
        try:
            while not stop.is_set():
                try:
                    handled = self.step()
                    backoff = 0.0
                except Exception as exc:  # the bus or the database is down: wait, nothing was acknowledged
                    backoff = min(5.0, max(0.2, backoff * 2))
                    log.warning("consumer %s: %s; retrying in %.1f s", self.group, exc, backoff)
                    stop.wait(backoff)
                    continue
                if until_idle and handled == 0 and self.bus.lag(self.group).total == 0:
                    return
                if time.monotonic() - self._pruned_at > 3600:
                    self._pruned_at = time.monotonic()
                    self.prune()
        finally:
            self.consumer.close()
