"""Alerts that batch analyses raise (graph rings and dense blocks, suspected complaint-agent rings), one
repository shape over each capability's own table — the interface case management consumes.

A table has the columns id, key, kind, score, accounts, status, evidence (JSON), first_seen_at and
last_seen_at. ``upsert`` records alerts by ``key`` (the same key updates the row in place, keeping
``first_seen_at`` and ``status``); ``list``, ``get``, ``set_status`` (audited) and ``close_missing``
(closes open alerts whose key a refresh no longer produced) read and change them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, select, update

from riskguard.errors import NotFound, ValidationFailed
from riskguard.privacy.fields import open_document
from riskguard.privacy.service import sealer_for
from riskguard.store import audit
from riskguard.store.tables import utcnow

STATUSES = ("open", "closed")


class AlertRepository:
    def __init__(self, engine: Engine, table: Table, *, noun: str, audit_action: str) -> None:
        """``noun`` names one alert in messages ("graph alert"); ``audit_action`` is the audit log's action
        for status changes ("graph_alert.status")."""
        self._engine = engine
        self._table = table
        self._noun = noun
        self._action = audit_action

    def upsert(self, alerts: list[dict[str, Any]], now: datetime | None = None) -> int:
        """``alerts``: dicts with ``key``, ``kind``, ``score``, ``accounts`` (ids) and ``evidence`` (a
        dict). Returns how many were new."""
        with self._engine.begin() as connection:
            return self.upsert_in(connection, alerts, now)

    def upsert_in(self, connection: Connection, alerts: list[dict[str, Any]], now: datetime | None = None) -> int:
        """``upsert`` inside the caller's transaction (an alert raised together with what caused it)."""
        now = now or utcnow()
        table = self._table
        new = 0
        known = dict(
            connection.execute(
                select(table.c.key, table.c.id).where(table.c.key.in_([a["key"] for a in alerts]))
            ).all()
        )
        for alert in alerts:
            values = {
                "kind": alert["kind"],
                "score": float(alert["score"]),
                "accounts": len(alert["accounts"]),
                "evidence": self._seal(json.dumps(alert["evidence"], ensure_ascii=False, sort_keys=True, default=str)),
                "last_seen_at": now,
            }
            if alert["key"] in known:
                connection.execute(update(table).where(table.c.id == known[alert["key"]]).values(**values))
            else:
                inserted = connection.execute(
                    insert(table).values(key=alert["key"], status="open", first_seen_at=now, **values)
                )
                known[alert["key"]] = inserted.inserted_primary_key[0]  # a key given twice is one alert
                new += 1
        return new

    def list(
        self, status: str | None = "open", kind: str | None = None, limit: int = 100, after_id: int = 0
    ) -> list[dict[str, Any]]:
        table = self._table
        query = select(table).where(table.c.id > after_id).order_by(table.c.id).limit(limit)
        if status is not None:
            query = query.where(table.c.status == status)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        with self._engine.connect() as connection:
            return [self._row(row) for row in connection.execute(query)]

    def get(self, alert_id: int) -> dict[str, Any]:
        with self._engine.connect() as connection:
            row = connection.execute(select(self._table).where(self._table.c.id == alert_id)).first()
        if row is None:
            raise NotFound(f"no {self._noun} {alert_id}")
        return self._row(row)

    def set_status(self, alert_id: int, status: str, actor: str) -> None:
        if status not in STATUSES:
            raise ValidationFailed([{"loc": ["status"], "type": "value_error", "msg": f"one of {STATUSES}"}])
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(self._table).where(self._table.c.id == alert_id).values(status=status)
            ).rowcount
            if not changed:
                raise NotFound(f"no {self._noun} {alert_id}")
            audit.record(connection, actor, self._action, str(alert_id), {"status": status})

    def close_missing(self, keys: set[str], actor: str) -> int:
        """Closes open alerts whose key is not in ``keys`` (the ring merged into another, or is gone)."""
        table = self._table
        with self._engine.begin() as connection:
            stale = [
                alert_id
                for alert_id, key in connection.execute(select(table.c.id, table.c.key).where(table.c.status == "open"))
                if key not in keys
            ]
            for alert_id in stale:
                connection.execute(update(table).where(table.c.id == alert_id).values(status="closed"))
                audit.record(connection, actor, self._action, str(alert_id), {"status": "closed", "why": "merged"})
        return len(stale)

    def _seal(self, text: str) -> str:
        cipher = sealer_for(self._engine)
        return cipher.seal("document", text) if cipher is not None else text

    @staticmethod
    def _row(row: Any) -> dict[str, Any]:
        out = row._asdict()
        out["evidence"] = json.loads(open_document(out["evidence"]))  # sealed at rest: it names identifiers
        return out
