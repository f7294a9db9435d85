"""Stored traces: each trace's request and result document, so ``GET /v1/traces/{id}`` and freeze orders
can be read back later (table ``traces``, migration 0004)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Engine, Index, Integer, String, Table, Text, insert, select

from riskguard.errors import NotFound
from riskguard.privacy.fields import open_document
from riskguard.privacy.service import sealer_for
from riskguard.store import audit
from riskguard.store.tables import UTCDateTime, metadata, utcnow


def _seal(engine: Engine, text: str) -> str:
    """Trace requests and documents name victims' and mules' identifiers: sealed whole at rest."""
    cipher = sealer_for(engine)
    return cipher.seal("document", text) if cipher is not None else text


traces = Table(
    "traces",
    metadata,
    Column("trace_id", String(32), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("rule", String(16), nullable=False),
    Column("as_of", UTCDateTime(), nullable=False),
    Column("reports", Integer, nullable=False),
    Column("request", Text, nullable=False),
    Column("document", Text, nullable=False),
    Index("ix_traces_created_at", "created_at"),
)


class TraceRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def save(
        self, trace_id: str, *, actor: str, rule: str, as_of: datetime, request: Any, document: dict[str, Any]
    ) -> None:
        """Stores a trace and its audit entry in one transaction."""
        with self._engine.begin() as connection:
            connection.execute(
                insert(traces).values(
                    trace_id=trace_id,
                    created_at=utcnow(),
                    created_by=actor[:64],
                    rule=rule,
                    as_of=as_of,
                    reports=document["summary"]["reports"],
                    request=_seal(self._engine, json.dumps(request, ensure_ascii=False, default=str)),
                    document=_seal(self._engine, json.dumps(document, ensure_ascii=False)),
                )
            )
            audit.record(
                connection,
                actor,
                "trace.create",
                trace_id,
                {
                    "rule": rule,
                    "reports": document["summary"]["reports"],
                    "freezable": document["summary"]["freezable"],
                },
            )

    def document(self, trace_id: str) -> dict[str, Any]:
        with self._engine.connect() as connection:
            text = connection.execute(select(traces.c.document).where(traces.c.trace_id == trace_id)).scalar()
        if text is None:
            raise NotFound(f"no trace {trace_id!r}")
        return json.loads(open_document(text))

    def requests_since(self, since: datetime) -> list[dict[str, Any]]:
        query = select(traces.c.request).where(traces.c.created_at >= since).order_by(traces.c.created_at)
        with self._engine.connect() as connection:
            return [json.loads(open_document(text)) for (text,) in connection.execute(query)]

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        query = (
            select(
                traces.c.trace_id,
                traces.c.created_at,
                traces.c.created_by,
                traces.c.rule,
                traces.c.as_of,
                traces.c.reports,
                traces.c.document,
            )
            .order_by(traces.c.created_at.desc())
            .limit(limit)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            {
                "trace_id": row.trace_id,
                "created_at": row.created_at,
                "created_by": row.created_by,
                "rule": row.rule,
                "as_of": row.as_of,
                "reports": row.reports,
                "summary": json.loads(open_document(row.document))["summary"],
            }
            for row in rows
        ]
