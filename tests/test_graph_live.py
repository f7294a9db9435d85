"""Graph features in live decisions, alerts, and the investigator's neighbourhood endpoint."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from fastapi.testclient import TestClient

from riskguard.api.http import create_asgi
from riskguard.app import RiskGuard
from riskguard.graph.alerts import GraphAlertRepository
from riskguard.graph.refresh import refresh_service

from conftest import make_settings

RING_STRATEGY = """
name: graph_rings
version: 1
features:
  - {name: ring_size, aggregate: published, source: graph.ring_size, entity: account_id}
rules:
  - {id: ring_member_transfer, when: 'event.type == "transfer" && features.ring_size >= 3.0', action: review,
     score: 70, reason: the payer belongs to a ring of accounts bound by shared devices and phones}
thresholds: {block: 90, review: 60, challenge: 40}
"""


def ring_events() -> pl.DataFrame:
    """Four accounts run from two phones and a shared contact number (a ring), and one ordinary account."""
    rows = []
    for i in range(4):
        for j, device in enumerate(("gang-phone-1", "gang-phone-2")):
            rows.append(
                {
                    "event_id": f"r{i}-{j}",
                    "type": "loan_application",
                    "occurred_at": f"2026-11-20T0{i}:1{j}:00Z",
                    "account_id": f"acc-ring-{i}",
                    "device_id": device,
                    "amount": "50000.00",
                    "currency": "CNY",
                    "attributes": '{"contact_phone": "+8617000000001"}',
                }
            )
    rows.append(
        {
            "event_id": "o1",
            "type": "login",
            "occurred_at": "2026-11-20T05:00:00Z",
            "account_id": "acc-plain",
            "device_id": "own-phone",
            "amount": None,
            "currency": None,
            "attributes": '{"success": true}',
        }
    )
    return pl.DataFrame(rows)


def transfer(event_id: str, account: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "type": "transfer",
        "occurred_at": "2026-11-25T10:00:00Z",
        "account_id": account,
        "amount": "300.00",
        "currency": "CNY",
        "counterparty_id": "acc-someone",
        "device_id": "dev-x",
    }


def test_a_ring_members_transfer_is_reviewed_because_of_its_ring(tmp_path: Path) -> None:
    with RiskGuard(make_settings(f"sqlite:///{tmp_path}/g.db"), background=False) as guard:
        guard.publish(RING_STRATEGY, actor="test")
        before = guard.decide(transfer("t-before", "acc-ring-1"))
        assert before["decision"] == "allow"  # nothing published yet: the feature is unbound
        summary = refresh_service(guard, events=ring_events(), save_dir=tmp_path / "graph")
        assert summary["rings"] == 1 and summary["published"]["graph.ring_size"] >= 4
        member = guard.decide(transfer("t-member", "acc-ring-2"))
        plain = guard.decide(transfer("t-plain", "acc-plain"))
        assert member["decision"] == "review"
        assert [r["rule"] for r in member["reasons"]] == ["ring_member_transfer"]
        assert plain["decision"] == "allow"
        alerts = GraphAlertRepository(guard.engine).list()
        assert len(alerts) == 1 and alerts[0]["kind"] == "ring" and alerts[0]["accounts"] == 4
        assert {"kind": "device", "value": "gang-phone-1", "role": "binding", "binds": 4} in alerts[0]["evidence"][
            "binding"
        ]
        again = refresh_service(guard, events=ring_events(), save_dir=tmp_path / "graph")
        assert again["new_alerts"] == 0  # the same ring is updated, not duplicated


def test_neighbourhood_is_masked_paged_and_unmasked_views_are_audited(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RISKGUARD_GRAPH_DIR", str(tmp_path / "graph"))
    with RiskGuard(make_settings(f"sqlite:///{tmp_path}/g.db"), background=False) as guard:
        refresh_service(guard, events=ring_events(), save_dir=tmp_path / "graph")
        admin = guard.ensure_admin_key()
        _, label_key = guard.api_keys.create(["label"], "investigator", actor="test")
        with TestClient(create_asgi(guard)) as client:
            url = "/v1/graph/entity/account/acc-ring-0?hops=2&limit=3"
            masked = client.get(url, headers={"Authorization": f"Bearer {label_key}"})
            assert masked.status_code == 200, masked.text
            body = masked.json()
            assert body["masked"] and body["total_nodes"] >= 7 and len(body["nodes"]) == 3
            assert body["next_offset"] == 3 and "ring-0" not in masked.text
            refused = client.get(url + "&unmask=true", headers={"Authorization": f"Bearer {label_key}"})
            assert refused.status_code == 403
            clear = client.get(url + "&unmask=true", headers={"Authorization": f"Bearer {admin}"})
            assert clear.status_code == 200 and clear.json()["center"]["id"] == "acc-ring-0"
            bad = client.get("/v1/graph/entity/planet/x", headers={"Authorization": f"Bearer {admin}"})
            assert bad.status_code == 422 and "kind" in bad.text
            missing = client.get("/v1/graph/entity/account/nobody", headers={"Authorization": f"Bearer {admin}"})
            assert missing.status_code == 404
            listed = client.get("/v1/graph/alerts", headers={"Authorization": f"Bearer {label_key}"})
            assert listed.status_code == 200 and len(listed.json()["alerts"]) == 1
        views = guard.audit.recent(action="graph.unmasked_view")
        assert len(views) == 1 and views[0]["target"] == "account:acc-ring-0"
