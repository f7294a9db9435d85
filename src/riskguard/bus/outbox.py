"""The transactional outbox: every committed decision reaches the bus, even when the bus was down.

``OutboxHook`` runs inside the group-commit writer's transaction (``GroupCommitWriter.batch_hooks``) and
adds one ``bus_outbox`` row per decision, so a decision is committed if and only if its outbox row is.
``OutboxRelay`` takes the oldest rows (on PostgreSQL ``FOR UPDATE SKIP LOCKED``, so the relays of several
workers share the work without sending a row twice), reads the events and decisions they name, publishes
them and deletes the rows in the same transaction. If the bus is unreachable, publishing raises, the
transaction rolls back and the rows stay for the next try (with back-off); if the relay dies after
publishing but before its commit, the rows are published again: delivery is at least once, and consumers
are idempotent by event id (JetStream also drops a message id it saw within two minutes).

A message body is JSON: ``event_id``, ``payload`` (the event as stored — personal fields stay sealed
when field encryption is on, and ``events.schema.from_stored`` opens them), ``decision`` (decision,
score, strategy, version, degraded, decided_at) and ``published_at``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import msgspec
from sqlalchemy import Engine, delete, func, select

from riskguard.bus.base import Bus
from riskguard.bus.tables import bus_outbox
from riskguard.store.tables import decisions, events

log = logging.getLogger("riskguard.bus.outbox")
_encode = msgspec.json.Encoder().encode


def outbox_hook(cursor: Any, *, dialect: str, decision_rows: list[dict[str, Any]]) -> None:
    """The writer's batch hook: one outbox row per decision, in the batch's transaction."""
    if decision_rows:
        mark = "?" if dialect == "sqlite" else "%s"
        cursor.executemany(
            f"INSERT INTO bus_outbox (event_id) VALUES ({mark})", [(r["event_id"],) for r in decision_rows]
        )


class OutboxRelay:
    def __init__(self, engine: Engine, bus: Bus, *, batch: int = 500, poll_s: float = 0.2, metrics: Any = None) -> None:
        self._engine = engine
        self.bus = bus
        self._batch = batch
        self._poll_s = poll_s
        self.metrics = metrics
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._skip_locked = engine.dialect.name == "postgresql"
        self.published = 0
        self.failures = 0

    def notify(self, *_args: Any, **_kwargs: Any) -> None:
        """A batch with decisions committed (or is about to): publish without waiting for the poll."""
        self._wake.set()

    def run_once(self) -> int:
        """Publishes up to one batch of outbox rows; returns how many; raises if the bus refused them."""
        query = select(bus_outbox.c.seq, bus_outbox.c.event_id).order_by(bus_outbox.c.seq).limit(self._batch)
        if self._skip_locked:
            query = query.with_for_update(skip_locked=True)
        with self._engine.begin() as connection:
            rows = connection.execute(query).all()
            if not rows:
                return 0
            ids = list(dict.fromkeys(row.event_id for row in rows))
            found = {
                row.event_id: row
                for row in connection.execute(
                    select(
                        events.c.event_id,
                        events.c.payload,
                        decisions.c.decision,
                        decisions.c.score,
                        decisions.c.strategy_name,
                        decisions.c.strategy_version,
                        decisions.c.degraded,
                        decisions.c.decided_at,
                    )
                    .select_from(events.join(decisions, decisions.c.event_id == events.c.event_id))
                    .where(events.c.event_id.in_(ids))
                )
            }
            now = time.time()
            messages = [(event_id, self.encode(found[event_id], now)) for event_id in ids if event_id in found]
            if len(messages) < len(ids):  # cannot happen while rows are written with their decision
                log.error("%d outbox rows name no stored decision; dropped", len(ids) - len(messages))
            self.bus.publish(messages)
            connection.execute(delete(bus_outbox).where(bus_outbox.c.seq.in_([row.seq for row in rows])))
        self.published += len(messages)
        if self.metrics is not None:
            self.metrics.published.inc(len(messages))
        return len(rows)

    @staticmethod
    def encode(row: Any, now: float) -> bytes:
        return _encode(
            {
                "event_id": row.event_id,
                "payload": row.payload,
                "decision": {
                    "decision": row.decision,
                    "score": row.score,
                    "strategy": row.strategy_name,
                    "version": row.strategy_version,
                    "degraded": bool(row.degraded),
                    "decided_at": row.decided_at.isoformat(),
                },
                "published_at": now,
            }
        )

    def drain(self, timeout: float = 30.0) -> int:
        """Publishes everything in the outbox now (tests, the CLI); returns how many rows."""
        deadline = time.monotonic() + timeout
        total = 0
        while time.monotonic() < deadline:
            done = self.run_once()
            total += done
            if done < self._batch:
                return total
        return total

    def backlog(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(bus_outbox)).scalar_one())

    # ------------------------------------------------------------------ the relay thread
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="riskguard-bus-relay", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        backoff = 0.0
        woken = False
        while not self._stop.is_set():
            if backoff:
                self._stop.wait(backoff)
                woken = False
            else:
                woken = self._wake.wait(self._poll_s)
                self._wake.clear()
            try:
                done = self.run_once()
                if woken and not done:  # woken from inside the writer's transaction: it commits in a moment
                    self._stop.wait(0.002)
                    done = self.run_once()
                while done >= self._batch and not self._stop.is_set():
                    done = self.run_once()
                backoff = 0.0
            except Exception as exc:  # the bus or the database is down: the rows wait in the outbox
                self.failures += 1
                if self.metrics is not None:
                    self.metrics.publish_failures.inc()
                if not backoff:
                    log.warning("publishing to the %s bus failed (%s); retrying with back-off", self.bus.name, exc)
                backoff = min(5.0, max(0.1, backoff * 2))

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        self.bus.close()
