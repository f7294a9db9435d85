"""Reads of the decision log that investigations need: the events and decisions of a set of accounts in a
time span (timelines, amounts at risk) and the review decisions made since a cursor (alert sync).

Plain SQL over ``events`` ⋈ ``decisions`` on their indexes (``ix_events_account_time``,
``ix_decisions_decided_at``); payloads and decision bodies are JSON documents parsed here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import Engine, and_, or_, select

from riskguard.privacy.fields import open_document
from riskguard.store.tables import decisions, events

MONEY_TYPES = ("transfer", "payment", "withdrawal")


@dataclass
class Decided:
    event_id: str
    type: str
    occurred_at: datetime
    account_id: str
    payload: dict[str, Any]
    decision: str | None
    score: int | None
    decided_at: datetime | None
    body: dict[str, Any] | None

    @property
    def amount(self) -> Decimal | None:
        value = self.payload.get("amount")
        return None if value is None else Decimal(str(value))

    def reasons(self) -> list[dict[str, Any]]:
        if not self.body:
            return []
        return [
            {"code": r.get("code"), "rule": r.get("rule"), "message": r.get("message")}
            for r in self.body.get("reasons", [])
        ]


_decode = msgspec.json.Decoder().decode


def _decided(row: Any) -> Decided:
    return Decided(
        event_id=row.event_id,
        type=row.type,
        occurred_at=row.occurred_at,
        account_id=row.account_id,
        payload=_decode(open_document(row.payload)),  # personal fields are sealed at rest
        decision=row.decision,
        score=row.score,
        decided_at=row.decided_at,
        body=_decode(open_document(row.body)) if row.body else None,
    )


_COLUMNS = (
    events.c.event_id,
    events.c.type,
    events.c.occurred_at,
    events.c.account_id,
    events.c.payload,
    decisions.c.decision,
    decisions.c.score,
    decisions.c.decided_at,
    decisions.c.body,
)


def reviews_since(
    engine: Engine, since: datetime | None, limit: int, after: tuple[datetime, str] | None = None
) -> list[tuple[str, datetime]]:
    """(event_id, decided_at) of review decisions made at or after ``since`` (all when None), oldest first,
    at most ``limit``; with ``after`` = (decided_at, event_id), only those after it (keyset paging)."""
    query = (
        select(decisions.c.event_id, decisions.c.decided_at)
        .where(decisions.c.decision == "review")
        .order_by(decisions.c.decided_at, decisions.c.event_id)
        .limit(limit)
    )
    if since is not None:
        query = query.where(decisions.c.decided_at >= since)
    if after is not None:
        query = query.where(
            or_(
                decisions.c.decided_at > after[0],
                and_(decisions.c.decided_at == after[0], decisions.c.event_id > after[1]),
            )
        )
    with engine.connect() as connection:
        return [(row.event_id, row.decided_at) for row in connection.execute(query)]


def of_accounts(
    engine: Engine,
    accounts: Iterable[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    types: tuple[str, ...] | None = None,
    limit: int = 1000,
) -> list[Decided]:
    """Events of ``accounts`` (with their decisions, if decided) between ``since`` and ``until``, newest
    first, at most ``limit``."""
    accounts = sorted(set(accounts))
    out: list[Decided] = []
    for start in range(0, len(accounts), 500):
        chunk = accounts[start : start + 500]
        query = (
            select(*_COLUMNS)
            .select_from(events.outerjoin(decisions, decisions.c.event_id == events.c.event_id))
            .where(events.c.account_id.in_(chunk))
            .order_by(events.c.occurred_at.desc(), events.c.event_id)
            .limit(limit)
        )
        if since is not None:
            query = query.where(events.c.occurred_at >= since)
        if until is not None:
            query = query.where(events.c.occurred_at <= until)
        if types is not None:
            query = query.where(events.c.type.in_(types))
        with engine.connect() as connection:
            out.extend(_decided(row) for row in connection.execute(query))
    out.sort(key=lambda d: (d.occurred_at, d.event_id), reverse=True)
    return out[:limit]


def by_ids(engine: Engine, event_ids: Iterable[str]) -> list[Decided]:
    ids = sorted(set(event_ids))
    out: list[Decided] = []
    with engine.connect() as connection:
        for start in range(0, len(ids), 500):
            query = (
                select(*_COLUMNS)
                .select_from(events.outerjoin(decisions, decisions.c.event_id == events.c.event_id))
                .where(events.c.event_id.in_(ids[start : start + 500]))
            )
            out.extend(_decided(row) for row in connection.execute(query))
    out.sort(key=lambda d: (d.occurred_at, d.event_id))
    return out


def money_moved(
    engine: Engine, accounts: Iterable[str], since: datetime | None, until: datetime | None, limit: int = 20_000
) -> Decimal:
    """What ``accounts`` sent out (transfers, payments, withdrawals) between ``since`` and ``until``: a ring's
    exposure, used as its amount at risk."""
    total = Decimal(0)
    for item in of_accounts(engine, accounts, since=since, until=until, types=MONEY_TYPES, limit=limit):
        amount = item.amount
        if amount is not None and amount > 0:
            total += amount
    return total
