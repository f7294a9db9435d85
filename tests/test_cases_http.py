"""REST routes of investigations: the `investigate` scope, 4xx answers that name the field, a case worked
end to end over HTTP, and the evidence download verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cases_helpers import STRATEGY, victim_and_mules
from riskguard.api.http import create_asgi
from riskguard.app import RiskGuard

from conftest import make_settings


@pytest.fixture
def api(tmp_path: Path) -> Any:
    settings = make_settings(f"sqlite:///{tmp_path}/rg.db", reveal_working_hours="00:00-24:00")
    with RiskGuard(settings, background=False) as guard:
        guard.publish(STRATEGY, actor="test")
        victim_and_mules(guard)
        admin = guard.ensure_admin_key()
        _, investigate = guard.api_keys.create(["investigate"], "analyst tool", actor="test")
        _, decide = guard.api_keys.create(["decide"], "payments", actor="test")
        _, reveal = guard.api_keys.create(["investigate", "reveal"], "investigator", actor="test")
        with TestClient(create_asgi(guard)) as client:
            yield client, {"admin": admin, "investigate": investigate, "decide": decide, "reveal": reveal}


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_scope_and_reveal_rules(api: Any) -> None:
    client, keys = api
    assert client.get("/v1/alerts").status_code == 401
    assert client.get("/v1/alerts", headers=_h(keys["decide"])).status_code == 403
    page = client.get("/v1/alerts?sync=true", headers=_h(keys["investigate"])).json()
    assert page["total"] == 2 and page["masked"]
    group = page["alerts"][1]["id"]
    refused = client.get(f"/v1/alerts/{group}?unmask=true", headers=_h(keys["investigate"]))
    assert refused.status_code == 403 and "reveal" in refused.json()["message"]
    assert client.get(f"/v1/alerts/{group}?unmask=true", headers=_h(keys["admin"])).status_code == 403
    shown = client.get(f"/v1/alerts/{group}?unmask=true", headers=_h(keys["reveal"])).json()
    assert "13812345678" in {e["value"] for e in shown["entities"]}


ACCOUNT = [{"kind": "account", "value": "a"}]
BAD: list[tuple[str, str, Any, list[Any]]] = [
    ("post", "/v1/cases", {"alert_ids": []}, ["body", "alert_ids"]),
    ("post", "/v1/cases", {"alert_ids": [1], "colour": "red"}, ["body", "colour"]),
    (
        "post",
        "/v1/alerts",
        {"title": "x", "entities": [{"kind": "email", "value": "a"}]},
        ["body", "entities", 0, "kind"],
    ),
    ("post", "/v1/alerts", {"title": "x", "entities": ACCOUNT, "score": "7"}, ["body", "score"]),
    ("post", "/v1/cases/1/close", {"resolution": "maybe"}, ["body", "resolution"]),
    ("post", "/v1/cases/1/status", {"status": "closed"}, ["body", "status"]),
    ("post", "/v1/cases/1/notes", {"text": ""}, ["body", "text"]),
    ("post", "/v1/cases/1/lists", {"entities": ACCOUNT, "list": "Bad Name"}, ["path", "name"]),
    ("post", "/v1/cases/1/lists", {"entities": ACCOUNT, "ttl_hours": -1}, ["body", "ttl_hours"]),
    ("post", "/v1/cases/1/lists", {"entities": [{"ref": "nope"}]}, ["body", "entities", 0, "ref"]),
    ("post", "/v1/cases/1/freeze", {"ttl_hours": 0}, ["body", "ttl_hours"]),
    ("post", "/v1/cases/1/trace", {"event_ids": ["o-missing"]}, ["body", "event_ids"]),
    ("get", "/v1/alerts?sort=loudest", None, ["query", "sort"]),
    ("get", "/v1/cases?status=pending", None, ["query", "status"]),
    ("get", "/v1/cases/abc", None, ["path", "case_id"]),
]


def test_bad_input_names_the_field(api: Any) -> None:
    client, keys = api
    headers = _h(keys["investigate"])
    client.get("/v1/alerts?sync=true", headers=headers)
    assert client.post("/v1/cases", json={"alert_ids": [1]}, headers=headers).status_code == 201
    for method, path, body, loc in BAD:
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 422, (path, body, response.text)
        assert response.json()["detail"][0]["loc"] == loc, (path, body)


def test_unknown_ids_are_404(api: Any) -> None:
    client, keys = api
    headers = _h(keys["investigate"])
    assert client.get("/v1/cases/99", headers=headers).status_code == 404
    assert client.get("/v1/alerts/99", headers=headers).status_code == 404
    assert client.post("/v1/cases", json={"alert_ids": [99]}, headers=headers).status_code == 404


def test_work_a_case_over_http(api: Any) -> None:
    client, keys = api
    headers = _h(keys["investigate"])
    client.post("/v1/alerts/sync", headers=headers)
    group = next(a for a in client.get("/v1/alerts", headers=headers).json()["alerts"] if a["alerts"] == 3)
    assert (
        client.post("/v1/alerts/assign", json={"alert_ids": [group["id"]], "assignee": "ann"}, headers=headers).json()[
            "alerts"
        ]
        == 3
    )
    case = client.post("/v1/cases", json={"alert_ids": [group["id"]]}, headers=headers).json()
    assert case["assignee"] == "ann"
    case_id = case["id"]
    assert (
        client.post(f"/v1/cases/{case_id}/status", json={"status": "investigating"}, headers=headers).status_code == 200
    )
    assert client.post(f"/v1/cases/{case_id}/notes", json={"text": "called"}, headers=headers).status_code == 201
    view = client.get(f"/v1/cases/{case_id}", headers=headers).json()
    device = next(e for e in view["entities"] if e["kind"] == "device")
    listed = client.post(
        f"/v1/cases/{case_id}/lists", json={"entities": [{"ref": device["ref"]}], "ttl_hours": 12}, headers=headers
    )
    assert listed.status_code == 200 and listed.json()["added"] == {"blocked_devices": 1}
    traced = client.post(f"/v1/cases/{case_id}/trace", headers=headers)
    assert traced.status_code == 201 and traced.json()["summary"]["reported_loss"] == "3500.50"
    assert client.post(f"/v1/cases/{case_id}/freeze", headers=headers).status_code == 201
    view = client.get(f"/v1/cases/{case_id}", headers=headers).json()
    assert view["ring_graph"]["elements"]["nodes"] and view["fund_flows"] and view["freezes"]
    package = client.get(f"/v1/cases/{case_id}/evidence", headers=headers)
    assert package.status_code == 200 and package.headers["content-type"] == "application/zip"
    digest = package.headers["x-package-digest"]
    checked = client.post(f"/v1/evidence/verify?digest={digest}", content=package.content, headers=headers).json()
    assert checked["ok"] and checked["case_id"] == case_id
    tampered = package.content.replace(b"PK", b"PX", 1)
    assert not client.post("/v1/evidence/verify", content=tampered, headers=headers).json()["ok"]
    closed = client.post(f"/v1/cases/{case_id}/close", json={"resolution": "confirmed_fraud"}, headers=headers)
    assert closed.json()["status"] == "closed" and closed.json()["labels"] == 6
    assert client.post(f"/v1/cases/{case_id}/notes", json={"text": "late"}, headers=headers).status_code == 201
    again = client.post(f"/v1/cases/{case_id}/lists", json={"entities": [{"ref": device["ref"]}]}, headers=headers)
    assert again.status_code == 422 and again.json()["detail"][0]["loc"] == ["path", "case_id"]
