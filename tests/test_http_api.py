"""The HTTP adapter: status codes, error bodies, authentication and every endpoint."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from riskguard.api.http import create_asgi
from riskguard.app import RiskGuard

from conftest import EXAMPLE_STRATEGY, transfer


def test_decision_round_trip(client: TestClient) -> None:
    response = client.post("/v1/decisions", json=transfer("h1"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {
        "event_id",
        "decision",
        "score",
        "reasons",
        "warning",
        "strategy",
        "shadow",
        "latency_ms",
        "degraded",
    }
    assert "explain" not in body
    explained = client.get("/v1/decisions/h1", params={"explain": "true"}).json()
    assert explained["status"] == "decided"
    assert explained["decision"] == body["decision"]
    assert "features" in explained["explain"]
    again = client.post("/v1/decisions?explain=true", json=transfer("h1"))
    assert again.json()["decided_at"] == body["decided_at"]
    assert "rules" in again.json()["explain"]


BAD_INPUTS = [
    (b'{"event_id": "x", ', ["body"], "malformed JSON"),
    (b"[1, 2]", ["body"], "Expected `object`"),
    (
        {"event_id": "x", "type": "teleport", "occurred_at": "2026-11-25T10:00:00Z", "account_id": "a"},
        ["body", "type"],
        "expected one of",
    ),
    (
        {"event_id": "x", "type": "login", "occurred_at": "2026-11-25T10:00:00Z", "account_id": 7},
        ["body", "account_id"],
        "Expected `str`, got `int`",
    ),
    ({"event_id": "x", "type": "login", "occurred_at": "2026-11-25T10:00:00Z"}, ["body", "account_id"], "missing"),
    ({k: v for k, v in transfer("x").items() if k != "amount"}, ["body", "amount"], "required"),
    (transfer("x", amount="-0.01"), ["body", "amount"], "negative"),
    (transfer("x", amount="Infinity"), ["body", "amount"], "finite"),
    (transfer("x", amount="NaN"), ["body", "amount"], "finite"),
    (transfer("x", amount="1.123456789"), ["body", "amount"], "decimal places"),
    (transfer("x", amount=True), ["body", "amount"], "Expected"),
    (transfer("x", occurred_at="2026-11-25 10:00"), ["body", "occurred_at"], "RFC3339"),
    (transfer("x", occurred_at="2026-11-25T10:00:00"), ["body", "occurred_at"], "timezone"),
    (transfer("x", occurred_at="2026-02-30T10:00:00Z"), ["body", "occurred_at"], "RFC3339"),
    (transfer("x", currency="yuan"), ["body", "currency"], "matching regex"),
    (transfer("x", ip="999.1.1.1"), ["body", "ip"], "IPv4"),
    (transfer("x", colour="red"), ["body", "colour"], "unknown field"),
    (transfer("x", attributes={"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}), ["body", "attributes"], "deeper"),
    (transfer("x", attributes={"blob": "y" * 20000}), ["body", "attributes"], "limit"),
    (transfer("x", attributes=[1]), ["body", "attributes"], "Expected `object`"),
    ({**transfer("x"), "type": "login"}, ["body", "amount"], "carry no amount"),
]


@pytest.mark.parametrize(("body", "loc", "phrase"), BAD_INPUTS)
def test_bad_input_is_a_422_naming_the_field(client: TestClient, body: object, loc: list[str], phrase: str) -> None:
    if isinstance(body, bytes):
        response = client.post("/v1/decisions", content=body, headers={"content-type": "application/json"})
    else:
        response = client.post("/v1/decisions", json=body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["error"] == "validation_error"
    assert payload["detail"][0]["loc"] == loc
    assert phrase in payload["detail"][0]["msg"]
    assert "Traceback" not in response.text


def test_oversized_body_is_refused(client: TestClient) -> None:
    response = client.post("/v1/decisions", content=b" " * 70_000, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "limit is 65536" in response.json()["detail"][0]["msg"]


def test_authentication_and_scopes(guard: RiskGuard, client: TestClient) -> None:
    anonymous = TestClient(create_asgi(guard))
    assert anonymous.post("/v1/decisions", json=transfer("a1")).status_code == 401
    bad = anonymous.post("/v1/decisions", json=transfer("a1"), headers={"Authorization": "Bearer rg_nope_x"})
    assert bad.status_code == 401
    _, decide_token = guard.api_keys.create(["decide"], "checkout", actor="test")
    decider = TestClient(create_asgi(guard), headers={"Authorization": f"Bearer {decide_token}"})
    assert decider.post("/v1/decisions", json=transfer("a2")).status_code == 200
    assert decider.post("/v1/lists/blocked_devices/entries", json={"values": ["d"]}).status_code == 403
    assert decider.post("/v1/labels", json={"labels": []}).status_code == 403
    key_id = decide_token.split("_")[1]
    guard.api_keys.revoke(key_id, actor="test")
    fresh = TestClient(create_asgi(guard), headers={"Authorization": f"Bearer {decide_token}"})
    assert fresh.post("/v1/decisions", json=transfer("a3")).status_code == 401
    stored = next(row for row in guard.api_keys.list() if row["key_id"] == key_id)
    assert "secret_hash" not in stored and decide_token.split("_", 2)[2] not in str(guard.api_keys.list())


def test_async_ingest_endpoint(client: TestClient, guard: RiskGuard) -> None:
    events = [transfer(f"b{i}", account_id=f"acc-{i}") for i in range(5)]
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 202
    assert response.json()["accepted"] == 5
    assert client.get("/v1/decisions/b0").status_code == 202
    guard.drain()
    decided = client.get("/v1/decisions/b4")
    assert decided.status_code == 200 and decided.json()["status"] == "decided"
    assert client.get("/v1/decisions/unknown").status_code == 404
    too_many = client.post("/v1/events", json={"events": [transfer(f"m{i}") for i in range(1001)]})
    assert too_many.status_code == 422
    one_bad = client.post("/v1/events", json={"events": [transfer("ok1"), transfer("bad1", amount="-1")]})
    assert one_bad.status_code == 422
    assert one_bad.json()["detail"][0]["loc"] == ["body", "events", 1, "amount"]
    assert guard.events.event_exists("ok1") is False  # the batch is all or nothing


def test_outcome_labels_and_lists_endpoints(client: TestClient, guard: RiskGuard) -> None:
    client.post(
        "/v1/decisions",
        json={
            "event_id": "bind",
            "type": "device_bind",
            "account_id": "acc-o",
            "occurred_at": "2026-11-25T09:00:00Z",
            "device_id": "dev-o",
        },
    )
    withdrawal = {
        "event_id": "wd",
        "type": "withdrawal",
        "account_id": "acc-o",
        "amount": "50.00",
        "currency": "CNY",
        "occurred_at": "2026-11-25T09:10:00Z",
    }
    assert client.post("/v1/decisions", json=withdrawal).json()["decision"] == "challenge"
    outcome = client.post("/v1/decisions/wd/outcome", json={"result": "passed", "method": "face"})
    assert outcome.status_code == 200 and outcome.json()["result"] == "passed"
    assert client.post("/v1/decisions/wd/outcome", json={"result": "failed"}).status_code == 409
    assert client.post("/v1/decisions/zz/outcome", json={"result": "failed"}).status_code == 404
    assert client.post("/v1/decisions/wd/outcome", json={"result": "maybe"}).status_code == 422

    label = {"event_id": "wd", "label": "legitimate", "source": "analyst", "labelled_at": "2026-11-26T00:00:00Z"}
    assert client.post("/v1/labels", json={"labels": [label]}).status_code == 201
    both = dict(label, entity={"kind": "device", "value": "dev-o"})
    assert client.post("/v1/labels", json={"labels": [both]}).status_code == 422

    added = client.post(
        "/v1/lists/blocked_devices/entries", json={"values": ["dev-o"], "reason": "farm", "ttl_seconds": 3600}
    )
    assert added.status_code == 201 and added.json()["added"] == 1
    assert client.post("/v1/lists/Bad-Name/entries", json={"values": ["x"]}).status_code == 422
    entries = client.get("/v1/lists/blocked_devices/entries").json()["entries"]
    assert [e["value"] for e in entries] == ["de*-o"]  # masked unless a `reveal` key asks (docs/privacy.md)
    blocked = client.post("/v1/decisions", json={**withdrawal, "event_id": "wd2", "device_id": "dev-o"})
    assert blocked.json()["decision"] == "block"
    assert client.delete("/v1/lists/blocked_devices/entries/dev-o").json()["removed"] == 1
    audit = [row["action"] for row in guard.audit.recent()]
    assert audit[:3] == ["list.remove", "list.view", "list.add"]


def test_strategy_endpoints(client: TestClient) -> None:
    dry = client.post("/v1/strategies?dry_run=true", content=EXAMPLE_STRATEGY)
    assert dry.status_code == 201 and dry.json()["published"] is False
    broken = client.post(
        "/v1/strategies", content=EXAMPLE_STRATEGY.replace("features.device_accounts_7d", "features.typo")
    )
    assert broken.status_code == 422
    assert "undeclared reference to 'features.typo'" in broken.json()["message"]
    assert client.post("/v1/strategies", content=EXAMPLE_STRATEGY).status_code == 201
    listed = client.get("/v1/strategies").json()
    assert listed["live"] == {"name": "payments", "version": 1}
    assert client.get("/healthz").json()["strategy"]["name"] == "payments"


def test_metrics_and_openapi(client: TestClient) -> None:
    client.post("/v1/decisions", json=transfer("m1"))
    text = client.get("/metrics").text
    assert 'riskguard_decisions_total{decision="allow"} 1.0' in text
    assert "riskguard_decision_latency_seconds_bucket" in text
    spec = client.get("/openapi.json").json()
    assert "Event" in spec["components"]["schemas"]
    assert "/v1/decisions" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_the_hand_written_hot_path_answers_like_the_framework_route(guard: RiskGuard, admin_token: str) -> None:
    from riskguard.api.http import create_app

    headers = {"Authorization": f"Bearer {admin_token}"}
    fast = TestClient(create_asgi(guard), headers=headers)
    framework = TestClient(create_app(guard), headers=headers)
    cases: list[tuple[str, object, dict[str, str]]] = [
        ("/v1/decisions", transfer("same-1"), {}),
        ("/v1/decisions?explain=true", transfer("same-1"), {}),
        ("/v1/decisions?explain=maybe", transfer("same-1"), {}),
        ("/v1/decisions", transfer("same-2", amount="-1"), {}),
        ("/v1/decisions", b'{"event_id": ', {}),
        ("/v1/decisions", b" " * 70_000, {}),
        ("/v1/decisions", transfer("same-1"), {"Authorization": "Bearer rg_wrong_key"}),
        ("/v1/decisions", transfer("same-1", amount="1.00"), {}),
    ]
    for path, body, extra in cases:
        answers = []
        for client in (fast, framework):
            if isinstance(body, bytes):
                response = client.post(path, content=body, headers={"content-type": "application/json", **extra})
            else:
                response = client.post(path, json=body, headers=extra)
            answers.append((response.status_code, response.json()))
        assert answers[0] == answers[1], (path, answers)
    assert answers[0][0] == 409
