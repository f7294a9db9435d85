"""Events, their decisions and challenge outcomes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, bindparam, func, insert, select

from riskguard.errors import Conflict, NotFound
from riskguard.privacy.cipher import SealError
from riskguard.privacy.fields import open_document
from riskguard.store.tables import challenge_outcomes, decisions, events, utcnow


def _opened(body: str | None) -> str | None:
    """A stored decision body with its sealed parts opened (field encryption at rest, riskguard.privacy)."""
    return None if body is None else open_document(body)  # type: ignore[return-value]


def _opened_row(row: dict[str, Any]) -> dict[str, Any]:
    row["payload"] = _opened(row["payload"])
    return row


class EventRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._decision_by_id = select(decisions.c.body).where(decisions.c.event_id == bindparam("event_id"))
        self._raw: Any = None
        self._fast_lock = threading.Lock()
        self._sql = ""

    def decision_body(self, event_id: str) -> str | None:
        """The stored decision of ``event_id``, or None. On the hot path (every new event asks it).

        Uses one dedicated driver connection in autocommit mode: a checkout from the pool plus SQLAlchemy's
        statement machinery costs about 75 µs here, the bare driver call about 6 µs. Callers serialise
        (the decision lock); any driver error drops the connection and answers through the pool instead.
        """
        with self._fast_lock:
            try:
                return _opened(self._fast_lookup(event_id))
            except SealError:
                raise
            except Exception:
                self._close_fast()
        with self._engine.connect() as connection:
            return _opened(connection.execute(self._decision_by_id, {"event_id": event_id}).scalar())

    def _fast_lookup(self, event_id: str) -> str | None:
        if self._raw is None:
            raw = self._engine.raw_connection()
            driver = raw.driver_connection
            if self._engine.dialect.name == "postgresql":
                driver.autocommit = True  # type: ignore[union-attr]
                self._sql = "SELECT body FROM decisions WHERE event_id = %s"
            else:
                self._sql = "SELECT body FROM decisions WHERE event_id = ?"
            self._raw = raw
        cursor = self._raw.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self._sql, (event_id,))
            row = cursor.fetchone()
        finally:
            cursor.close()  # finalises the statement: no read snapshot is held between calls
        return None if row is None else row[0]

    def _close_fast(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to release
                raw.invalidate()

    def close(self) -> None:
        with self._fast_lock:
            self._close_fast()

    def event_exists(self, event_id: str) -> bool:
        with self._engine.connect() as connection:
            found = connection.execute(select(events.c.event_id).where(events.c.event_id == event_id)).scalar()
        return found is not None

    def insert_events(self, rows: list[dict[str, Any]]) -> set[str]:
        """Inserts events that are new; returns the ids that were already stored (left untouched)."""
        ids = [row["event_id"] for row in rows]
        with self._engine.begin() as connection:
            existing: set[str] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                existing.update(
                    connection.execute(select(events.c.event_id).where(events.c.event_id.in_(chunk))).scalars()
                )
            fresh = [row for row in rows if row["event_id"] not in existing]
            seen: set[str] = set()
            unique = []
            for row in fresh:
                if row["event_id"] not in seen:
                    seen.add(row["event_id"])
                    unique.append(row)
            if unique:
                connection.execute(insert(events), unique)
        return existing

    def pending(self, limit: int = 10_000) -> list[tuple[str, str]]:
        """Events accepted asynchronously that have no decision yet, oldest first (restart recovery)."""
        query = (
            select(events.c.event_id, events.c.payload)
            .select_from(events.outerjoin(decisions, decisions.c.event_id == events.c.event_id))
            .where(and_(decisions.c.event_id.is_(None), events.c.source == "async"))
            .order_by(events.c.received_at, events.c.event_id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [(row.event_id, _opened(row.payload) or "") for row in connection.execute(query)]

    def payloads(self, event_ids: list[str]) -> dict[str, str]:
        """The stored payload of each of ``event_ids`` that exists."""
        found: dict[str, str] = {}
        with self._engine.connect() as connection:
            for start in range(0, len(event_ids), 500):
                chunk = event_ids[start : start + 500]
                query = select(events.c.event_id, events.c.payload).where(events.c.event_id.in_(chunk))
                found.update({row.event_id: _opened(row.payload) or "" for row in connection.execute(query)})
        return found

    def stream_since(self, since: datetime, batch: int = 5000) -> Iterator[tuple[str, str]]:
        """(type, payload) of every *decided* event that occurred at or after ``since``, in event time.

        Accepted events still waiting for their decision are left out: they enter feature state when
        they are decided, so a rebuild never counts them twice.
        """
        query = (
            select(events.c.type, events.c.payload)
            .select_from(events.join(decisions, decisions.c.event_id == events.c.event_id))
            .where(events.c.occurred_at >= since)
            .order_by(events.c.occurred_at, events.c.event_id)
            .execution_options(yield_per=batch)
        )
        with self._engine.connect() as connection:
            for row in connection.execute(query):
                yield row.type, _opened(row.payload) or ""

    def decided_since(self, since: datetime, batch: int = 5000) -> Iterator[str]:
        """Payloads of the events decided at or after ``since``, in the order they were decided."""
        query = (
            select(events.c.payload)
            .select_from(events.join(decisions, decisions.c.event_id == events.c.event_id))
            .where(decisions.c.decided_at >= since)
            .order_by(decisions.c.decided_at, events.c.event_id)
            .execution_options(yield_per=batch)
        )
        with self._engine.connect() as connection:
            for row in connection.execute(query):
                yield _opened(row.payload) or ""

    def outcomes_recorded_since(self, since: datetime) -> list[dict[str, Any]]:
        """Challenge outcomes recorded at or after ``since``, in that order, with their event's payload."""
        query = (
            select(challenge_outcomes, events.c.payload)
            .select_from(challenge_outcomes.join(events, events.c.event_id == challenge_outcomes.c.event_id))
            .where(challenge_outcomes.c.recorded_at >= since)
            .order_by(challenge_outcomes.c.recorded_at)
        )
        with self._engine.connect() as connection:
            return [_opened_row(row._asdict()) for row in connection.execute(query)]

    def outcomes_since(self, since: datetime) -> list[dict[str, Any]]:
        query = (
            select(challenge_outcomes, events.c.payload)
            .select_from(challenge_outcomes.join(events, events.c.event_id == challenge_outcomes.c.event_id))
            .where(challenge_outcomes.c.reported_at >= since)
            .order_by(challenge_outcomes.c.reported_at)
        )
        with self._engine.connect() as connection:
            return [_opened_row(row._asdict()) for row in connection.execute(query)]

    def record_outcome(self, event_id: str, result: str, method: str, reported_at: datetime) -> dict[str, Any]:
        """Stores the client's report of a step-up challenge; a second, different report is a conflict."""
        with self._engine.begin() as connection:
            row = connection.execute(
                select(decisions.c.decision, events.c.payload)
                .select_from(decisions.join(events, events.c.event_id == decisions.c.event_id))
                .where(decisions.c.event_id == event_id)
            ).first()
            if row is None:
                raise NotFound(f"no decision for event_id {event_id!r}")
            if row.decision != "challenge":
                raise Conflict(f"event {event_id!r} was decided {row.decision!r}, not 'challenge'")
            existing = connection.execute(
                select(challenge_outcomes).where(challenge_outcomes.c.event_id == event_id)
            ).first()
            if existing is not None:
                if existing.result == result and existing.method == method:
                    return {
                        "event_id": event_id,
                        "result": result,
                        "method": method,
                        "reported_at": existing.reported_at,
                        "payload": row.payload,
                        "duplicate": True,
                    }
                raise Conflict(f"an outcome ({existing.result!r}) is already recorded for {event_id!r}")
            connection.execute(
                insert(challenge_outcomes).values(
                    event_id=event_id,
                    result=result,
                    method=method,
                    reported_at=reported_at,
                    recorded_at=utcnow(),
                )
            )
        return {
            "event_id": event_id,
            "result": result,
            "method": method,
            "reported_at": reported_at,
            "payload": row.payload,
            "duplicate": False,
        }

    def outcome(self, event_id: str) -> dict[str, Any] | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(challenge_outcomes).where(challenge_outcomes.c.event_id == event_id)
            ).first()
        return None if row is None else row._asdict()

    def counts(self) -> dict[str, int]:
        with self._engine.connect() as connection:
            n_events = connection.execute(select(func.count()).select_from(events)).scalar_one()
            n_decisions = connection.execute(select(func.count()).select_from(decisions)).scalar_one()
        return {"events": n_events, "decisions": n_decisions}
