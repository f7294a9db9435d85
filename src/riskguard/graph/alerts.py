"""Graph alerts: the interface the case-management issue consumes.

``GraphAlertRepository(engine)``:

- ``upsert(alerts, now)``: records rings and blocks found by a refresh (same ``key`` → updated in place,
  keeping ``first_seen_at`` and ``status``); returns how many are new;
- ``list(status="open", kind=None, limit=100, after_id=0)``: alerts by id, for a work queue;
- ``get(alert_id)``: one alert with its evidence (``members``, ``binding``, ``first_activity``,
  ``last_activity``, ``known_fraud``);
- ``set_status(alert_id, status, actor)``: ``open`` / ``closed``, audited.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from riskguard.errors import NotFound, ValidationFailed
from riskguard.graph.tables import graph_alerts
from riskguard.store import audit
from riskguard.store.tables import utcnow

STATUSES = ("open", "closed")


def alert_key(kind: str, accounts: Iterable[str]) -> str:
    digest = hashlib.sha256("\n".join([kind, *sorted(accounts)]).encode()).hexdigest()
    return digest[:40]


class GraphAlertRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def upsert(self, alerts: list[dict[str, Any]], now: datetime | None = None) -> int:
        """``alerts``: dicts with ``kind``, ``score``, ``accounts`` (ids) and ``evidence`` (a dict)."""
        now = now or utcnow()
        new = 0
        with self._engine.begin() as connection:
            for alert in alerts:
                key = alert_key(alert["kind"], alert["accounts"])
                values = {
                    "kind": alert["kind"],
                    "score": float(alert["score"]),
                    "accounts": len(alert["accounts"]),
                    "evidence": json.dumps(alert["evidence"], ensure_ascii=False, sort_keys=True, default=str),
                    "last_seen_at": now,
                }
                found = connection.execute(select(graph_alerts.c.id).where(graph_alerts.c.key == key)).scalar()
                if found is None:
                    connection.execute(insert(graph_alerts).values(key=key, status="open", first_seen_at=now, **values))
                    new += 1
                else:
                    connection.execute(update(graph_alerts).where(graph_alerts.c.id == found).values(**values))
        return new

    def list(
        self, status: str | None = "open", kind: str | None = None, limit: int = 100, after_id: int = 0
    ) -> list[dict[str, Any]]:
        query = select(graph_alerts).where(graph_alerts.c.id > after_id).order_by(graph_alerts.c.id).limit(limit)
        if status is not None:
            query = query.where(graph_alerts.c.status == status)
        if kind is not None:
            query = query.where(graph_alerts.c.kind == kind)
        with self._engine.connect() as connection:
            return [self._row(row) for row in connection.execute(query)]

    def get(self, alert_id: int) -> dict[str, Any]:
        with self._engine.connect() as connection:
            row = connection.execute(select(graph_alerts).where(graph_alerts.c.id == alert_id)).first()
        if row is None:
            raise NotFound(f"no graph alert {alert_id}")
        return self._row(row)

    def set_status(self, alert_id: int, status: str, actor: str) -> None:
        if status not in STATUSES:
            raise ValidationFailed([{"loc": ["status"], "type": "value_error", "msg": f"one of {STATUSES}"}])
        with self._engine.begin() as connection:
            done = connection.execute(
                update(graph_alerts).where(graph_alerts.c.id == alert_id).values(status=status)
            ).rowcount
            if not done:
                raise NotFound(f"no graph alert {alert_id}")
            audit.record(connection, actor, "graph_alert.status", str(alert_id), {"status": status})

    @staticmethod
    def _row(row: Any) -> dict[str, Any]:
        out = row._asdict()
        out["evidence"] = json.loads(out["evidence"])
        return out
