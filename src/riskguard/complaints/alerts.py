"""Suspected agent-ring alerts in the shared alert store (store/alerts.py), the same interface as
``graph/alerts.py``'s: the case-management issue consumes both.

``ComplaintAlertRepository(engine)``: ``upsert`` takes rings as ``evidence.ring_alert`` makes them (``key``,
``kind``, ``score``, ``accounts``, ``evidence``; a ring keeps its key as it grows); ``list``, ``get``,
``set_status`` (audited), ``close_missing(keys, actor)`` (rings merged into another). ``kind`` is
``agent_ring`` or ``loan_ring``. Evidence is stored unmasked (the audited admin view shows it);
``evidence.mask_evidence`` masks it for every other view.
"""

from __future__ import annotations

from sqlalchemy import Engine

from riskguard.complaints.tables import complaint_alerts
from riskguard.store.alerts import STATUSES, AlertRepository

__all__ = ["KINDS", "STATUSES", "ComplaintAlertRepository"]

KINDS = ("agent_ring", "loan_ring")


class ComplaintAlertRepository(AlertRepository):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, complaint_alerts, noun="complaint ring alert", audit_action="complaint_alert.status")
