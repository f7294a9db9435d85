"""Cases, their activity and freeze requests in the database (tables ``cases``, ``case_activity``,
``case_freezes``). Every write takes the caller's connection, so a change, its activity entry and its
audit entry commit together."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from riskguard.cases import sealing
from riskguard.cases.tables import case_activity, case_freezes, cases
from riskguard.errors import NotFound, ValidationFailed

STATUSES = ("open", "investigating", "closed")
RESOLUTIONS = ("confirmed_fraud", "legitimate", "inconclusive")


def query_errors(
    limit: int, offset: int, choices: dict[str, tuple[str | None, tuple[str, ...]]] | None = None
) -> list[dict[str, Any]]:
    """422 items for a list query: each of ``choices`` ({field: (value, allowed)}) must be allowed when
    given, ``limit`` 1..500, ``offset`` 0 or more."""
    errors = []
    for field, (value, allowed) in (choices or {}).items():
        if value is not None and value not in allowed:
            errors.append({"loc": ["query", field], "type": "value_error", "msg": f"one of {', '.join(allowed)}"})
    if not 1 <= limit <= 500:
        errors.append({"loc": ["query", "limit"], "type": "value_error", "msg": "1 to 500"})
    if offset < 0:
        errors.append({"loc": ["query", "offset"], "type": "value_error", "msg": "0 or more"})
    return errors


class CaseRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self,
        connection: Connection,
        *,
        title: str,
        assignee: str | None,
        priority: int,
        due_at: datetime,
        actor: str,
        now: datetime,
    ) -> int:
        return int(
            connection.execute(
                insert(cases).values(
                    title=sealing.text(self._engine, title[:200]),
                    status="open",
                    assignee=assignee,
                    priority_minor=priority,
                    due_at=due_at,
                    created_at=now,
                    created_by=actor[:64],
                    updated_at=now,
                )
            ).inserted_primary_key[0]
        )

    def row(self, connection: Connection, case_id: int, *, for_update: bool = False) -> Any:
        query = select(cases).where(cases.c.id == case_id)
        if for_update and connection.dialect.name == "postgresql":
            query = query.with_for_update()
        found = connection.execute(query).first()
        if found is None:
            raise NotFound(f"no case {case_id}")
        return found

    def get(self, case_id: int) -> Any:
        with self._engine.connect() as connection:
            return self.row(connection, case_id)

    def change(self, connection: Connection, case_id: int, now: datetime, **values: Any) -> None:
        connection.execute(update(cases).where(cases.c.id == case_id).values(updated_at=now, **values))

    def log(
        self, connection: Connection, case_id: int, actor: str, kind: str, details: dict[str, Any], now: datetime
    ) -> int:
        return int(
            connection.execute(
                insert(case_activity).values(
                    case_id=case_id, at=now, actor=actor[:64], kind=kind, details=sealing.dumps(self._engine, details)
                )
            ).inserted_primary_key[0]
        )

    def activity(self, case_id: int) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(case_activity).where(case_activity.c.case_id == case_id).order_by(case_activity.c.id)
            ).all()
        return [{**r._asdict(), "details": sealing.loads(r.details)} for r in rows]

    def freeze(self, connection: Connection, **values: Any) -> int:
        return int(connection.execute(insert(case_freezes).values(**values)).inserted_primary_key[0])

    def freezes(self, case_id: int) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(case_freezes).where(case_freezes.c.case_id == case_id).order_by(case_freezes.c.id)
            ).all()
        return [r._asdict() for r in rows]

    def list(
        self,
        *,
        status: str | None,
        assignee: str | None,
        breached_before: datetime | None,
        limit: int,
        offset: int,
    ) -> tuple[int, list[Any]]:
        errors = query_errors(limit, offset, {"status": (status, STATUSES)})
        if errors:
            raise ValidationFailed(errors)
        query = select(cases)
        if status is not None:
            query = query.where(cases.c.status == status)
        if assignee is not None:
            query = query.where(cases.c.assignee == assignee)
        if breached_before is not None:  # open past its due time
            query = query.where(cases.c.status != "closed").where(cases.c.due_at < breached_before)
        with self._engine.connect() as connection:
            total = connection.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            rows = connection.execute(
                query.order_by(cases.c.priority_minor.desc(), cases.c.id).limit(limit).offset(offset)
            ).all()
        return int(total), rows
