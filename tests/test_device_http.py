"""The device routes over HTTP: challenge, register, lookup, revoke, and a signed decision end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from riskguard.api.http import create_asgi
from riskguard.app import RiskGuard
from riskguard.device.client import DeviceClient, HttpTransport
from riskguard.device.testing import AndroidFacts, TestAuthority, trust_config

from conftest import transfer

LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority()


@pytest.fixture
def api(guard: RiskGuard, client: TestClient, authority: TestAuthority) -> TestClient:
    guard.devices.configure(trust_config(authority))
    return client


def phone(api: TestClient, authority: TestAuthority, **options: object) -> DeviceClient:
    return DeviceClient(
        "acc-1", "dev-1", HttpTransport("http://testserver", client=api), authority=authority, **options
    )  # type: ignore[arg-type]


def test_register_sign_and_decide_over_http(api: TestClient, authority: TestAuthority) -> None:
    device = phone(api, authority)
    answer = device.register(occurred_at=LONG_AGO)
    assert answer["registered"] and answer["attested"] and answer["account_id"] == "acc-1"
    again = api.post(
        "/v1/devices/register", json={"account_id": "acc-1", "device_id": "dev-1", "nonce": "x", "attestation": {}}
    )
    assert again.status_code == 422 and again.json()["error"] == "ATTESTATION_UNSUPPORTED"
    response = api.post("/v1/decisions?explain=true", json=device.sign(transfer("t1")))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] == "allow" and body["explain"]["variables"]["device.signature_ok"] is True
    replay = api.post("/v1/decisions?explain=true", json={**device.sign(transfer("t2")), "event_id": "t2"})
    assert replay.json()["explain"]["variables"]["device.signature_ok"] is True
    looked_up = api.get("/v1/devices/dev-1", params={"account_id": "acc-1"}).json()
    assert looked_up["keys"][0]["key_id"] == device.key_id and looked_up["keys"][0]["counter"] == 2
    assert looked_up["assessment"]["trust"] >= 90 and looked_up["assessment"]["account_id"] == "acc-1"


def test_challenge_and_register_errors_name_the_field_or_reason(api: TestClient, authority: TestAuthority) -> None:
    bad = api.post("/v1/devices/challenge", json={"digest": "abc"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "digest"]
    assert api.post("/v1/devices/challenge", json={}).status_code == 422
    assert api.post("/v1/devices/challenge", json={"digest": "00" * 32, "extra": 1}).status_code == 422
    good = api.post("/v1/devices/challenge", json={"digest": "ab" * 32}).json()
    assert good["purpose"] == "transaction" and good["ttl_s"] <= 60
    expires = datetime.fromisoformat(good["expires_at"])
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=60)
    with pytest.raises(RuntimeError, match="WRONG_PACKAGE"):
        phone(api, authority, facts=AndroidFacts(packages=[("com.other", 1)])).register()
    phone(api, authority).register()
    thief = DeviceClient("acc-2", "dev-1", HttpTransport("http://testserver", client=api), authority=authority)  # type: ignore[arg-type]
    assert thief.register()["registered"]
    assert api.get("/v1/devices/dev-1").json()["accounts"] == 2
    nope = api.post(
        "/v1/devices/register",
        json={"account_id": "a", "device_id": "d", "nonce": "AA", "attestation": {"format": "none"}, "ip": "x"},
    )
    assert nope.status_code == 422 and nope.json()["detail"][0]["loc"] == ["body", "ip"]
    assert api.get("/v1/devices/never-seen").status_code == 404


def test_rebinding_conflict_and_revocation_need_the_right_scope(
    guard: RiskGuard, api: TestClient, authority: TestAuthority
) -> None:
    device = phone(api, authority)
    key_id = device.register()["key_id"]
    other = DeviceClient(
        "acc-2", "dev-1", HttpTransport("http://testserver", client=api), authority=authority, key=device.key
    )  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"409.*KEY_BOUND_TO_OTHER_ACCOUNT"):
        other.register()
    _, token = guard.api_keys.create(["decide"], "app backend", actor="test")
    with TestClient(create_asgi(guard), headers={"Authorization": f"Bearer {token}"}) as backend:
        masked = backend.get("/v1/devices/dev-1").json()
        assert masked["keys"][0]["account_id"] != "acc-1" and "*" in masked["keys"][0]["account_id"]
        assert backend.post(f"/v1/devices/keys/{key_id}/revoke").status_code == 403
    revoked = api.post(f"/v1/devices/keys/{key_id}/revoke")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert "/v1/devices/register" in api.get("/openapi.json").json()["paths"]
