"""The complaints analyser in the service: HTTP analyze and clusters, masking and the audited evidence
view, stored records after a restart, published features in live decisions, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from riskguard.api.http import create_asgi
from riskguard.app import RiskGuard
from riskguard.cli.main import app
from riskguard.complaints.service import ComplaintService
from riskguard.complaints.tables import complaint_records
from riskguard.events.validate import parse_event_obj

from conftest import make_settings

AGENT_PHONE = "+8616612345678"
TEXT = "本人因疫情失业，无力偿还贵司借款{}元。现要求停息挂账、减免全部罚息，否则向金融监管总局投诉。我的电话13912345678"


def agent_complaint(i: int, **attributes: Any) -> dict[str, Any]:
    return {
        "event_id": f"ac-{i}",
        "type": "complaint",
        "occurred_at": f"2026-11-20T02:{10 + 3 * i:02d}:00Z",
        "account_id": f"cust-{i}",
        "phone": f"+86139000000{i:02d}",
        "device_id": "agent-phone-1",
        "amount": "20000.00",
        "currency": "CNY",
        "attributes": {"text": TEXT.format(20000 + i), "contact_phone": AGENT_PHONE, **attributes},
    }


def plain_complaint() -> dict[str, Any]:
    return {
        "event_id": "plain-1",
        "type": "complaint",
        "occurred_at": "2026-11-20T03:00:00Z",
        "account_id": "cust-plain",
        "phone": "+8613800000000",
        "device_id": "own-phone",
        "attributes": {
            "text": "我在商城买的洗衣机一直没发货，客服电话打不通，请帮忙处理。",
            "contact_phone": "+86 138 0000 0000",
        },
    }


@pytest.fixture
def guard(tmp_path: Path) -> Any:
    with RiskGuard(make_settings(f"sqlite:///{tmp_path}/c.db"), background=False) as rg:
        yield rg


def test_http_analyze_routes_links_and_masks(guard: RiskGuard) -> None:
    admin = guard.ensure_admin_key()
    _, label = guard.api_keys.create(["label"], "investigator", actor="test")
    _, decide = guard.api_keys.create(["decide"], "intake", actor="test")
    with TestClient(create_asgi(guard)) as client:
        as_decide = {"Authorization": f"Bearer {decide}"}
        plain = client.post("/v1/complaints/analyze", json=plain_complaint(), headers=as_decide)
        assert plain.status_code == 200, plain.text
        assert plain.json()["route"] == "handle normally" and plain.json()["ring"] is None
        first = client.post("/v1/complaints/analyze", json=agent_complaint(0), headers=as_decide).json()
        assert first["route"] == "verify identity and authorisation"  # another's phone, lure words
        batch = client.post(
            "/v1/complaints/analyze", json={"events": [agent_complaint(i) for i in range(1, 5)]}, headers=as_decide
        )
        assert batch.status_code == 200, batch.text
        results = batch.json()["results"]
        assert [r["route"] for r in results] == ["verify identity and authorisation"] + [
            "review as suspected agent"
        ] * 3
        ring = results[-1]["ring"]
        assert ring["customers"] == 5 and ring["alert_id"] == 1
        assert "cust-4" not in batch.text and AGENT_PHONE[3:] not in batch.text  # masked
        again = client.post("/v1/complaints/analyze", json=agent_complaint(0), headers=as_decide).json()
        assert again["route"] == "review as suspected agent"  # re-assessed, not filed twice

        listed = client.get("/v1/complaints/clusters", headers={"Authorization": f"Bearer {label}"})
        assert listed.status_code == 200
        (alert,) = listed.json()["clusters"]
        assert alert["kind"] == "agent_ring" and alert["accounts"] == 5
        assert "13912345678" not in listed.text and AGENT_PHONE not in listed.text
        assert {"phone", "device"} <= set(alert["evidence"]["tied_by"])
        url = f"/v1/complaints/clusters/{alert['id']}?unmask=true"
        assert client.get(url, headers={"Authorization": f"Bearer {label}"}).status_code == 403
        clear = client.get(url, headers={"Authorization": f"Bearer {admin}"})
        assert clear.status_code == 200 and "13912345678" in clear.text and AGENT_PHONE in clear.text

        bad_text = {**agent_complaint(9), "attributes": {"text": 12}}
        refused = client.post("/v1/complaints/analyze", json=bad_text, headers=as_decide)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "attributes", "text"]
        login = {**plain_complaint(), "type": "login", "event_id": "l1"}
        wrong = client.post("/v1/complaints/analyze", json=login, headers=as_decide)
        assert wrong.status_code == 422 and "type" in wrong.text
        assert client.get("/v1/complaints/clusters", headers=as_decide).status_code == 403  # needs label
        assert (
            client.get("/v1/complaints/clusters?status=maybe", headers={"Authorization": f"Bearer {label}"}).status_code
            == 422
        )
    assert len(guard.audit.recent(action="complaint_alert.unmasked_view")) == 1
    with guard.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(complaint_records)).scalar() == 6


PAYEE_STRATEGY = """
name: agent_payees
version: 1
features:
  - {name: agent_payee, aggregate: published, source: complaints.agent_payee, entity: counterparty_id}
rules:
  - {id: pays_suspected_agent, when: 'event.type == "transfer" && features.agent_payee >= 3.0', action: review,
     score: 70, reason: the payee is the receiving account of a suspected complaint agent}
thresholds: {block: 90, review: 60, challenge: 40}
"""


def test_a_ring_s_receiving_account_reaches_live_decisions(guard: RiskGuard) -> None:
    guard.publish(PAYEE_STRATEGY, actor="test")
    service = ComplaintService(guard)
    events = [parse_event_obj(agent_complaint(i, refund_account="acc-agent")) for i in range(4)]
    service.analyze(events, "test")
    pay = {
        "event_id": "fee-1",
        "type": "transfer",
        "occurred_at": "2026-11-21T10:00:00Z",
        "account_id": "cust-9",
        "amount": "3000.00",
        "currency": "CNY",
        "counterparty_id": "acc-agent",
    }
    assert guard.decide(pay)["decision"] == "review"
    assert guard.decide({**pay, "event_id": "fee-2", "counterparty_id": "acc-friend"})["decision"] == "allow"
    assert guard.published.load("complaints.agent_ring_member")["cust-3"] == 4.0


def test_stored_records_rebuild_the_analyser_in_another_service(guard: RiskGuard) -> None:
    ComplaintService(guard).analyze([parse_event_obj(agent_complaint(i)) for i in range(3)], "test")
    later = ComplaintService(guard)  # a restarted process: the analyser comes back from the table
    (result,) = later.analyze([parse_event_obj(agent_complaint(3))], "test")
    assert result["route"] == "review as suspected agent" and result["ring"]["customers"] == 4
    summary = later.refresh(actor="test")
    assert summary["rings"] == 1 and summary["new_alerts"] == 0 and summary["records"] == 4
    assert summary["published"]["complaints.agent_ring_member"] == 4


def test_cli_refresh_clusters_and_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKGUARD_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("RISKGUARD_LOG_LEVEL", "WARNING")
    rows = [
        {**e, "attributes": json.dumps(e["attributes"], ensure_ascii=False)} for e in map(agent_complaint, range(5))
    ]
    pl.DataFrame(rows).write_parquet(tmp_path / "events.parquet")
    runner = CliRunner()
    refreshed = runner.invoke(app, ["complaints", "refresh", "--events", str(tmp_path / "events.parquet")])
    assert refreshed.exit_code == 0, refreshed.output
    assert json.loads(refreshed.output)["rings"] == 1
    listed = runner.invoke(app, ["complaints", "clusters"])
    assert listed.exit_code == 0 and "agent_ring" in listed.output and "customers    5" in listed.output
    shown = runner.invoke(app, ["complaints", "show", "1"])
    assert shown.exit_code == 0 and AGENT_PHONE not in shown.output and "13912345678" not in shown.output
    clear = runner.invoke(app, ["complaints", "show", "1", "--unmask"])
    assert clear.exit_code == 0 and AGENT_PHONE in clear.output
    missing = runner.invoke(app, ["complaints", "show", "99"])
    assert missing.exit_code == 2 and "no complaint ring alert 99" in missing.output
    (tmp_path / "one.json").write_text(json.dumps(plain_complaint(), ensure_ascii=False), encoding="utf-8")
    one = runner.invoke(app, ["complaints", "analyze", str(tmp_path / "one.json")])
    assert one.exit_code == 0 and json.loads(one.output)["route"] == "handle normally"
