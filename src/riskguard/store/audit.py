"""The append-only audit log: who changed or looked at what, and when."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from riskguard.store.tables import audit_log, utcnow


def record(connection: Connection, actor: str, action: str, target: str, details: dict[str, Any]) -> None:
    """Writes one audit entry inside the caller's transaction, so the change and its trace commit together."""
    connection.execute(
        insert(audit_log).values(
            at=utcnow(),
            actor=actor,
            action=action,
            target=target[:256],
            details=json.dumps(details, default=str, ensure_ascii=False, sort_keys=True),
        )
    )


class AuditRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, actor: str, action: str, target: str, details: dict[str, Any]) -> None:
        with self._engine.begin() as connection:
            record(connection, actor, action, target, details)

    def recent(self, limit: int = 100, action: str | None = None) -> list[dict[str, Any]]:
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if action:
            query = query.where(audit_log.c.action == action)
        with self._engine.connect() as connection:
            return [{**row._asdict(), "details": json.loads(row.details)} for row in connection.execute(query)]
