"""Cases: lifecycle, SLA clocks, labels that reach the labels store (as POST /v1/labels does), actions
that are audited (list add with expiry, freeze request, trace), reveals through the Revealer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from cases_helpers import PHONE, casework, transfer, victim_and_mules
from riskguard.app import RiskGuard
from riskguard.cases.priority import due_at, parse_sla
from riskguard.cases.tables import cases
from riskguard.errors import ConfigError, Forbidden, ValidationFailed
from riskguard.store.tables import utcnow


def _victim_case(guard: RiskGuard, tmp_path: Any) -> tuple[Any, dict[str, Any]]:
    service = casework(guard, tmp_path)
    victim_and_mules(guard)
    service.sync("test")
    group = next(a for a in service.alerts()["alerts"] if a["alerts"] == 3)
    return service, service.open_case([group["id"]], actor="user:ann", assignee="ann")


def test_lifecycle_labels_and_audit(guard: RiskGuard, tmp_path: Any) -> None:
    service, case = _victim_case(guard, tmp_path)
    assert case["status"] == "open" and case["priority"] == "1400.00" and case["assignee"] == "ann"
    assert service.set_status(case["id"], "investigating", actor="user:ann")["status"] == "investigating"
    service.add_note(case["id"], "victim confirms the calls", actor="user:ann")
    closed = service.close(case["id"], "confirmed_fraud", actor="user:ann", note="police script")
    assert closed["status"] == "closed" and closed["resolution"] == "confirmed_fraud"
    assert closed["labels"] == 3 + 3  # accounts acc-v, mule-1, mule-2 and the three review events
    account_labels = guard.labels.for_entity("account", "mule-1")
    assert [(r["label"], r["source"]) for r in account_labels] == [("fraud", "case")]
    assert [r["label"] for r in guard.labels.for_event("v1")] == ["fraud"]
    with pytest.raises(ValidationFailed):  # a closed case takes no action until reopened
        service.add_to_list(case["id"], [{"kind": "account", "value": "mule-1"}], actor="user:ann")
    assert service.alerts(status="closed")["total"] == 1
    assert service.reopen(case["id"], actor="user:lee")["status"] == "investigating"
    actions = [entry["action"] for entry in guard.audit.recent(50) if entry["action"].startswith("case.")]
    assert {"case.open", "case.status", "case.note", "case.close", "case.reopen"} <= set(actions)
    view = service.case(case["id"])
    kinds = [t.get("action") for t in view["timeline"] if t["kind"] in ("action", "note")]
    assert kinds[:1] == ["created"] and "note" in kinds and "closed" in kinds and "reopened" in kinds
    assert [d["event_id"] for d in view["decisions"] if d["decision"] == "review"] == ["m1", "v2", "v1"]
    assert view["decisions"][-1]["reasons"][0]["code"]


def test_inconclusive_writes_no_label(guard: RiskGuard, tmp_path: Any) -> None:
    service, case = _victim_case(guard, tmp_path)
    assert service.close(case["id"], "inconclusive", actor="user:ann")["labels"] == 0
    assert guard.labels.for_entity("account", "acc-v") == []


def test_list_add_with_expiry_and_freeze_and_trace(tmp_path: Any) -> None:
    from conftest import make_settings

    with RiskGuard(make_settings(f"sqlite:///{tmp_path}/rg.db"), background=False) as guard:
        service, case = _victim_case(guard, tmp_path)
        device = next(
            e for e in service.case(case["id"])["entities"] if e["kind"] == "device" and e["value"] == "de*-v"
        )
        added = service.add_to_list(case["id"], [{"ref": device["ref"]}], actor="user:ann", ttl_hours=24)
        assert added["added"] == {"blocked_devices": 1}
        entry = guard.lists.entries("blocked_devices")[0]
        assert entry["value"] == "dev-v" and entry["reason"] == f"case {case['id']}"
        assert timedelta(hours=23) < entry["expires_at"] - utcnow() <= timedelta(hours=24)
        with pytest.raises(ValidationFailed) as bad:
            service.add_to_list(case["id"], [{"ref": "device:0000"}], actor="user:ann")
        assert bad.value.errors[0]["loc"] == ["body", "entities", 0, "ref"]

        traced = service.start_trace(case["id"], actor="user:ann")
        assert traced["summary"]["reported_loss"] == "3500.50"
        view = service.case(case["id"])
        assert view["trace_id"] == traced["trace_id"]
        flows = view["fund_flows"]
        assert flows and flows[0]["paths"] and flows[0]["paths"][0]["links"][0]["from"] == "ac*-v"
        assert any(a["source"] == "trace" for a in view["alerts"])  # the trace's alert joined the case

        frozen = service.request_freeze(case["id"], actor="user:ann")
        assert frozen["list"] == "blocked_accounts"
        held = {
            f["account"]: f
            for f in service.case(case["id"], revealed=True, actor="user:ann", role="analyst")["freezes"]
        }
        assert set(held) <= {"mule-1", "mule-2"} and held
        assert all(f["amount"] is not None and f["trace_id"] == traced["trace_id"] for f in held.values())
        blocked = {e["value"]: e for e in guard.lists.entries("blocked_accounts")}
        assert set(held) <= set(blocked)
        assert timedelta(hours=47) < blocked[next(iter(held))]["expires_at"] - utcnow() <= timedelta(hours=48)
        frozen_account = next(iter(held))
        later = transfer("later", "2026-11-25T14:00:00Z", frozen_account, "10.00", "x")
        decision = guard.decide(later)
        assert decision["decision"] == "block"
        audited = {e["action"] for e in guard.audit.recent(100)}
        assert {"case.list_add", "list.add", "case.trace", "trace.create", "case.freeze", "case.open"} <= audited


def test_sla_tiers_and_breach(tmp_path: Any) -> None:
    from conftest import make_settings

    tiers = parse_sla("10000:4,1000:24,0:72")
    now = utcnow()
    assert due_at(tiers, 1_000_000, now) == now + timedelta(hours=4)
    assert due_at(tiers, 999_999, now) == now + timedelta(hours=24)  # 9,999.99
    assert due_at(tiers, 99_999, now) == now + timedelta(hours=72)
    for bad in ("10:4", "x:1", "0:-1", "0"):
        with pytest.raises(ConfigError):
            parse_sla(bad)
    with RiskGuard(make_settings(f"sqlite:///{tmp_path}/rg.db", case_sla="1000:2,0:48"), background=False) as guard:
        service, case = _victim_case(guard, tmp_path)
        assert 1.9 < case["hours_left"] <= 2 and not case["breached"]  # priority 1400 ≥ 1000: 2 hours
        with guard.engine.begin() as connection:
            connection.execute(
                update(cases).where(cases.c.id == case["id"]).values(due_at=utcnow() - timedelta(minutes=1))
            )
        assert service.summary(case["id"])["breached"]
        assert [c["id"] for c in service.cases(breached_only=True)["cases"]] == [case["id"]]


def test_reveal_goes_through_the_revealer(tmp_path: Any) -> None:
    from conftest import make_settings

    with RiskGuard(make_settings(f"sqlite:///{tmp_path}/rg.db"), background=False) as guard:
        service, case = _victim_case(guard, tmp_path)
        masked = service.case(case["id"])
        assert PHONE not in str(masked)
        with pytest.raises(Forbidden):
            service.case(case["id"], revealed=True, actor="user:aud", role="auditor")
        shown = service.case(case["id"], revealed=True, actor="user:ann", role="analyst")
        assert PHONE in {e["value"] for e in shown["entities"]}
        entries = [e for e in guard.audit.recent(20) if e["target"] == f"case:{case['id']}"]
        assert entries and {e["actor"] for e in entries} == {"user:aud", "user:ann"}
