"""Feedback labels: an event or an entity confirmed as fraud or legitimate, by whom and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from riskguard.privacy.service import lookup_keys, open_rows, seal_text, token_values
from riskguard.store.tables import labels, utcnow


def _opened(rows: list[dict[str, Any]], connection: Any) -> list[dict[str, Any]]:
    """Label rows with entity values and notes in plaintext (tokens and sealed text at rest)."""
    return open_rows(connection, rows, "entity_value", "note")


class LabelRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, rows: list[dict[str, Any]]) -> list[int]:
        now = utcnow()
        ids = []
        with self._engine.begin() as connection:
            stored = token_values(connection, self._engine, [r["entity_value"] for r in rows if r.get("entity_value")])
            for row in rows:
                kept = {**row, "note": seal_text(self._engine, row.get("note"))}
                if row.get("entity_value"):
                    kept["entity_value"] = stored[row["entity_value"]]  # a token; the value sealed in the vault
                result = connection.execute(insert(labels).values(**kept, recorded_at=now))
                ids.append(int(result.inserted_primary_key[0]))
        return ids

    def for_event(self, event_id: str) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            return _opened(
                [
                    r._asdict()
                    for r in connection.execute(
                        select(labels).where(labels.c.event_id == event_id).order_by(labels.c.id)
                    )
                ],
                connection,
            )

    def known_by(self, as_of: datetime, limit: int = 100_000) -> list[dict[str, Any]]:
        """Labels whose truth was known at ``as_of`` (label-aware replay must not see the future)."""
        with self._engine.connect() as connection:
            return _opened(
                [
                    r._asdict()
                    for r in connection.execute(
                        select(labels).where(labels.c.labelled_at <= as_of).order_by(labels.c.labelled_at).limit(limit)
                    )
                ],
                connection,
            )

    def since(self, column: str, moment: datetime) -> list[dict[str, Any]]:
        """Labels whose ``labelled_at`` or ``recorded_at`` (``column``) is at or after ``moment``, in that
        order (feature rebuilds fold them as label events)."""
        at = labels.c[column]
        with self._engine.connect() as connection:
            rows = connection.execute(select(labels).where(at >= moment).order_by(at, labels.c.id))
            return _opened([r._asdict() for r in rows], connection)

    def for_entity(self, kind: str, value: str) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            return _opened(
                [
                    r._asdict()
                    for r in connection.execute(
                        select(labels)
                        .where(labels.c.entity_kind == kind)
                        .where(labels.c.entity_value.in_(lookup_keys(self._engine, [value])))
                        .order_by(labels.c.id)
                    )
                ],
                connection,
            )
