"""Graph alerts: rings and dense blocks a refresh reports, in the shared alert store (store/alerts.py) —
the interface the case-management issue consumes.

``GraphAlertRepository(engine)`` has ``upsert(alerts, now)`` (alerts as ``RefreshResult.alerts()`` makes
them: ``kind``, ``score``, ``accounts``, ``evidence``; the key is derived from the kind and the member
accounts, so the same ring found again updates its row), ``list``, ``get`` (evidence: ``members``,
``binding``, ``first_activity``, ``last_activity``, ``known_fraud``), ``set_status`` (audited) and
``close_missing``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from riskguard.graph.tables import graph_alerts
from riskguard.store.alerts import STATUSES, AlertRepository

__all__ = ["STATUSES", "GraphAlertRepository", "alert_key"]


def alert_key(kind: str, accounts: Iterable[str]) -> str:
    digest = hashlib.sha256("\n".join([kind, *sorted(accounts)]).encode()).hexdigest()
    return digest[:40]


class GraphAlertRepository(AlertRepository):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, graph_alerts, noun="graph alert", audit_action="graph_alert.status")

    def upsert(self, alerts: list[dict[str, Any]], now: datetime | None = None) -> int:
        keyed = [{**alert, "key": alert.get("key") or alert_key(alert["kind"], alert["accounts"])} for alert in alerts]
        return super().upsert(keyed, now)
