"""The shared alert store (store/alerts.py) under the graph and complaint alert tables, on both databases."""

from __future__ import annotations

import pytest

from riskguard.app import RiskGuard
from riskguard.complaints.alerts import ComplaintAlertRepository
from riskguard.errors import NotFound, ValidationFailed
from riskguard.graph.alerts import GraphAlertRepository, alert_key


def ring(key: str, score: float = 0.5, accounts: tuple[str, ...] = ("a", "b", "c")) -> dict:
    return {"key": key, "kind": "agent_ring", "score": score, "accounts": list(accounts), "evidence": {"k": key}}


def test_upsert_keeps_first_seen_and_status_and_counts_new_alerts(guard: RiskGuard) -> None:
    store = ComplaintAlertRepository(guard.engine)
    assert store.upsert([ring("r1"), ring("r2"), ring("r1", score=0.9)]) == 2  # r1 twice in one call: one alert
    (first,) = [a for a in store.list() if a["key"] == "r1"]
    assert first["score"] == 0.9 and first["evidence"] == {"k": "r1"}
    store.set_status(first["id"], "closed", actor="analyst")
    assert store.upsert([ring("r1", score=0.7, accounts=("a", "b", "c", "d"))]) == 0
    again = store.get(first["id"])
    assert (again["status"], again["accounts"], again["first_seen_at"]) == ("closed", 4, first["first_seen_at"])
    assert [a["key"] for a in store.list(status=None)] == ["r1", "r2"]
    assert guard.audit.recent(action="complaint_alert.status")[0]["target"] == str(first["id"])


def test_close_missing_and_bad_input(guard: RiskGuard) -> None:
    store = ComplaintAlertRepository(guard.engine)
    store.upsert([ring("r1"), ring("r2")])
    assert store.close_missing({"r2"}, actor="refresh") == 1
    assert [a["key"] for a in store.list()] == ["r2"]
    with pytest.raises(ValidationFailed):
        store.set_status(1, "maybe", actor="x")
    with pytest.raises(NotFound, match="complaint ring alert 999"):
        store.get(999)


def test_graph_alerts_are_keyed_by_kind_and_members(guard: RiskGuard) -> None:
    store = GraphAlertRepository(guard.engine)
    alert = {"kind": "ring", "score": 3.0, "accounts": ["b", "a"], "evidence": {}}
    assert store.upsert([alert]) == 1
    assert store.upsert([{**alert, "accounts": ["a", "b"]}]) == 0  # the same ring in another order
    (stored,) = store.list()
    assert stored["key"] == alert_key("ring", ["a", "b"])
