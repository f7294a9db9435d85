"""Feedback labels: an event or an entity confirmed as fraud or legitimate, by whom and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from riskguard.store.tables import labels, utcnow


class LabelRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, rows: list[dict[str, Any]]) -> list[int]:
        now = utcnow()
        ids = []
        with self._engine.begin() as connection:
            for row in rows:
                result = connection.execute(insert(labels).values(**row, recorded_at=now))
                ids.append(int(result.inserted_primary_key[0]))
        return ids

    def for_event(self, event_id: str) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            return [
                r._asdict()
                for r in connection.execute(select(labels).where(labels.c.event_id == event_id).order_by(labels.c.id))
            ]

    def known_by(self, as_of: datetime, limit: int = 100_000) -> list[dict[str, Any]]:
        """Labels whose truth was known at ``as_of`` (label-aware replay must not see the future)."""
        with self._engine.connect() as connection:
            return [
                r._asdict()
                for r in connection.execute(
                    select(labels).where(labels.c.labelled_at <= as_of).order_by(labels.c.labelled_at).limit(limit)
                )
            ]

    def since(self, column: str, moment: datetime) -> list[dict[str, Any]]:
        """Labels whose ``labelled_at`` or ``recorded_at`` (``column``) is at or after ``moment``, in that
        order (feature rebuilds fold them as label events)."""
        at = labels.c[column]
        with self._engine.connect() as connection:
            rows = connection.execute(select(labels).where(at >= moment).order_by(at, labels.c.id))
            return [r._asdict() for r in rows]

    def for_entity(self, kind: str, value: str) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            return [
                r._asdict()
                for r in connection.execute(
                    select(labels)
                    .where(labels.c.entity_kind == kind)
                    .where(labels.c.entity_value == value)
                    .order_by(labels.c.id)
                )
            ]
