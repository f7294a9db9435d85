"""Ring alerts: the interface the case-management issue consumes, the same as ``graph/alerts.py``'s.

``ComplaintAlertRepository(engine)``:

- ``upsert(alerts, now)``: records rings (dicts with ``key``, ``kind``, ``score``, ``accounts`` and
  ``evidence``, as ``evidence.ring_alert`` makes them); the same ``key`` (a ring keeps its key as it
  grows) updates the row in place, keeping ``first_seen_at`` and ``status``; returns how many are new;
- ``list(status="open", kind=None, limit=100, after_id=0)``: alerts by id, for a work queue;
- ``get(alert_id)``: one alert with its evidence;
- ``set_status(alert_id, status, actor)``: ``open`` / ``closed``, audited;
- ``close_missing(keys, actor)``: closes open alerts whose ring no longer exists (merged into another).

Rows have the columns of ``graph_alerts`` (id, key, kind, score, accounts, status, evidence,
first_seen_at, last_seen_at); ``kind`` is ``agent_ring`` or ``loan_ring``. Evidence is stored unmasked
(the audited admin view shows it); ``evidence.mask_evidence`` masks it for every other view.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from riskguard.complaints.tables import complaint_alerts
from riskguard.errors import NotFound, ValidationFailed
from riskguard.store import audit
from riskguard.store.tables import utcnow

STATUSES = ("open", "closed")
KINDS = ("agent_ring", "loan_ring")


class ComplaintAlertRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._table = complaint_alerts

    def upsert(self, alerts: list[dict[str, Any]], now: datetime | None = None) -> int:
        now = now or utcnow()
        table = self._table
        new = 0
        with self._engine.begin() as connection:
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
                    "evidence": json.dumps(alert["evidence"], ensure_ascii=False, sort_keys=True, default=str),
                    "last_seen_at": now,
                }
                if alert["key"] in known:
                    connection.execute(update(table).where(table.c.id == known[alert["key"]]).values(**values))
                else:
                    connection.execute(
                        insert(table).values(key=alert["key"], status="open", first_seen_at=now, **values)
                    )
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
            raise NotFound(f"no complaint ring alert {alert_id}")
        return self._row(row)

    def set_status(self, alert_id: int, status: str, actor: str) -> None:
        if status not in STATUSES:
            raise ValidationFailed([{"loc": ["status"], "type": "value_error", "msg": f"one of {STATUSES}"}])
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(self._table).where(self._table.c.id == alert_id).values(status=status)
            ).rowcount
            if not changed:
                raise NotFound(f"no complaint ring alert {alert_id}")
            audit.record(connection, actor, "complaint_alert.status", str(alert_id), {"status": status})

    def close_missing(self, keys: set[str], actor: str) -> int:
        table = self._table
        with self._engine.begin() as connection:
            stale = [
                (alert_id, key)
                for alert_id, key in connection.execute(select(table.c.id, table.c.key).where(table.c.status == "open"))
                if key not in keys
            ]
            for alert_id, _key in stale:
                connection.execute(update(table).where(table.c.id == alert_id).values(status="closed"))
                audit.record(
                    connection, actor, "complaint_alert.status", str(alert_id), {"status": "closed", "why": "merged"}
                )
        return len(stale)

    @staticmethod
    def _row(row: Any) -> dict[str, Any]:
        out = row._asdict()
        out["evidence"] = json.loads(out["evidence"])
        return out
