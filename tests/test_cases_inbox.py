"""The alert inbox: exact priorities, idempotent sync of every source, duplicates merged by key and by
shared entities within the window (and not otherwise), personal data sealed at rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text

from cases_helpers import PHONE, casework, victim_and_mules
from riskguard.app import RiskGuard
from riskguard.cases.inbox import AlertIn
from riskguard.cases.priority import minor_of, priority_minor, score_bp
from riskguard.cases.tables import case_alert_entities, case_alerts
from riskguard.complaints.alerts import ComplaintAlertRepository
from riskguard.graph.alerts import GraphAlertRepository

from conftest import make_settings

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def manual(key: str, entities: list[tuple[str, str]], *, at: datetime = T0, amount: str = "100.00") -> AlertIn:
    return AlertIn("manual", key, "manual", key, Decimal("0.5"), amount, entities, at, {"note": key})


def test_priority_is_score_times_amount_exactly() -> None:
    assert score_bp("review", "transfer", 70) == 7000
    assert score_bp("review", "transfer", 250) == 10_000  # capped at 1
    assert score_bp("graph", "ring", 10) == 5000  # half-saturation constant
    assert score_bp("trace", "trace", 0) == 10_000
    assert minor_of("1500.505") == 150051  # half up to the cent
    assert priority_minor(7000, minor_of("1500.50")) == 105035  # 0.7 × 1500.50 = 1050.35
    assert priority_minor(3333, minor_of("0.15")) == 5  # 0.049995 → 0.05
    assert priority_minor(1, 1) == 0


def test_review_sync_is_idempotent_and_merges_by_shared_account(
    guard: RiskGuard, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from riskguard.cases import sources

    monkeypatch.setattr(sources, "BATCH", 3)  # pages of three decisions: keyset paging is exercised
    service = casework(guard, tmp_path)
    victim_and_mules(guard)
    first = service.sync("test")["sources"]["review"]
    assert first == {"new": 4, "updated": 0, "merged": 2, "unchanged": 0}  # v2 joins v1, m1 joins (mule-1)
    again = service.sync("test")["sources"]["review"]
    assert again["new"] == 0
    page = service.alerts()
    assert page["total"] == 2
    top, other = page["alerts"]
    assert top["priority"] == "3500.00"  # o1: 0.7 × 5000
    assert other["alerts"] == 3 and other["priority"] == "1400.00"  # v2: 0.7 × 2000 is the group's highest
    assert {e["kind"] for e in other["entities"]} >= {"account", "device", "phone"}
    assert all("*" in e["value"] for e in other["entities"])  # masked
    with guard.engine.connect() as connection:
        assert connection.execute(select(case_alerts.c.id)).all().__len__() == 4


def test_graph_and_complaint_alerts_sync_by_key(guard: RiskGuard, tmp_path: Any) -> None:
    service = casework(guard, tmp_path)
    victim_and_mules(guard)
    ring = {
        "kind": "ring",
        "score": 10.0,
        "accounts": ["mule-1", "mule-2"],
        "evidence": {
            "members": ["mule-1", "mule-2"],
            "binding": [{"kind": "device", "value": "dev-m", "role": "device", "binds": 2}],
            "first_activity_ms": int((T0 - timedelta(days=1)).timestamp() * 1000),
            "last_activity_ms": int((T0 + timedelta(hours=1)).timestamp() * 1000),
            "known_fraud": 0,
            "fraud_share": 0.0,
        },
    }
    GraphAlertRepository(guard.engine).upsert([ring])
    complaint = {
        "key": "c-ring-1",
        "kind": "agent_ring",
        "score": 8.0,
        "accounts": ["acc-z1", "acc-z2"],
        "evidence": {
            "customers": 2,
            "members": [
                {"account_id": "acc-z1", "occurred_at": "2026-11-20T10:00:00+00:00", "agent_phone": "13900000001"},
                {"account_id": "acc-z2", "occurred_at": "2026-11-21T10:00:00+00:00", "agent_phone": "13900000001"},
            ],
        },
    }
    ComplaintAlertRepository(guard.engine).upsert([complaint])
    counts = service.sync("test")["sources"]
    assert counts["graph"]["new"] == 1 and counts["graph"]["merged"] == 1  # shares mule-1 with the review group
    assert counts["complaint"] == {"new": 1, "updated": 0, "merged": 0, "unchanged": 0}
    graph_item = service.alerts(source="graph")["alerts"][0]
    assert set(graph_item["sources"]) == {"graph", "review"}
    ring_member = next(m for m in service.alert(graph_item["id"])["members"] if m["source"] == "graph")
    assert ring_member["amount_at_risk"] == "1200.00"  # what the members sent out during the ring's activity
    assert ring_member["score"] == "0.5000" and ring_member["priority"] == "600.00"
    # the same ring found again with new evidence updates its row; nothing new
    ring["evidence"]["known_fraud"] = 1
    GraphAlertRepository(guard.engine).upsert([ring])
    counts = service.sync("test")["sources"]
    assert counts["graph"] == {"new": 0, "updated": 1, "merged": 0, "unchanged": 0}
    assert service.sync("test")["sources"]["graph"]["updated"] == 0  # re-read in the overlap: unchanged


def test_merge_rules_window_kinds_and_closed(guard: RiskGuard, tmp_path: Any) -> None:
    service = casework(guard, tmp_path)
    inbox = service.inbox
    inbox.record([manual("a", [("account", "acc-1"), ("ip", "10.0.0.1")])])
    inbox.record([manual("b", [("ip", "10.0.0.1")])])  # an address alone never merges
    inbox.record([manual("c", [("account", "acc-1")], at=T0 + timedelta(days=8))])  # outside the 7-day window
    inbox.record([manual("d", [("phone", PHONE), ("account", "acc-1")], at=T0 + timedelta(days=2))])
    groups = {a["title"]: a for a in service.alerts(limit=10)["alerts"]}
    assert set(groups) == {"a", "b", "c"}
    assert groups["a"]["alerts"] == 2  # d joined a
    # a closed group is no merge target
    case = service.open_case([groups["a"]["id"]], actor="test")
    service.close(case["id"], "inconclusive", actor="test")
    inbox.record([manual("e", [("account", "acc-1")], at=T0 + timedelta(days=1))])
    groups = {a["title"]: a for a in service.alerts(limit=10)["alerts"]}
    assert set(groups) == {"b", "c"}  # e (a day after a, a week before c) joined the open group c
    assert groups["c"]["alerts"] == 2


def test_new_alert_joins_a_case_it_overlaps(guard: RiskGuard, tmp_path: Any) -> None:
    service = casework(guard, tmp_path)
    service.inbox.record([manual("a", [("device", "dev-1")])])
    case = service.open_case([service.alerts()["alerts"][0]["id"]], actor="test")
    service.inbox.record([manual("b", [("device", "dev-1"), ("account", "acc-2")], at=T0 + timedelta(hours=3))])
    view = service.case(case["id"])
    assert [a["title"] for a in view["alerts"]] == ["a", "b"]
    assert any(t["kind"] == "action" and t["action"] == "alert_added" for t in view["timeline"])
    assert service.alerts()["total"] == 0  # both in the case


def test_personal_identifiers_are_sealed_at_rest(guard: RiskGuard, tmp_path: Any) -> None:
    service = casework(guard, tmp_path)
    victim_and_mules(guard)
    service.sync("test")
    group = service.alerts()["alerts"][1]
    case = service.open_case([group["id"]], actor="test")
    service.add_note(case["id"], f"the victim called from {PHONE} twice", actor="test")
    tip = service.create_alert(actor="test", title=f"caller {PHONE}", entities=[{"kind": "phone", "value": PHONE}])
    assert tip["title"] == f"caller {PHONE}"  # opened again for the caller (masking titles is the page's job)
    service.request_freeze(case["id"], actor="test", reason=f"victim {PHONE} asked")
    with guard.engine.connect() as connection:
        stored = connection.execute(select(case_alert_entities.c.value).where(case_alert_entities.c.kind == "phone"))
        assert [v for (v,) in stored] and all(PHONE not in v for (v,) in stored)
        for table in ("case_alerts", "case_alert_entities", "case_activity", "cases", "case_freezes"):
            dump = " ".join(str(row) for row in connection.execute(text(f"SELECT * FROM {table}")))
            assert PHONE not in dump, table
    revealed = service.case(case["id"], revealed=True, actor="user:ann", role="analyst")
    assert ("phone", PHONE) in {(e["kind"], e["value"]) for e in revealed["entities"]}
    assert {a["id"] for a in service.alerts_for_entity("phone", PHONE)} == {group["id"], tip["id"]}


def test_inbox_filters_are_checked(tmp_path: Any) -> None:
    from riskguard.errors import ValidationFailed

    with RiskGuard(make_settings(f"sqlite:///{tmp_path}/rg.db"), background=False) as guard:
        service = casework(guard, tmp_path)
        for bad in ({"source": "nope"}, {"sort": "loudest"}, {"limit": 0}, {"status": "pending"}):
            with pytest.raises(ValidationFailed) as failure:
                service.alerts(**bad)
            assert failure.value.errors[0]["loc"] == ["query", next(iter(bad))]
