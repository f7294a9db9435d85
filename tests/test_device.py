"""Trusted devices: registration per provider, transaction signing, and every negative case refused or
degraded with its reason (issue 10). Attestations come from a throwaway test authority."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from riskguard.app import RiskGuard
from riskguard.device import codes
from riskguard.device.client import DeviceClient, InProcessTransport
from riskguard.device.errors import DeviceRefused
from riskguard.device.tables import device_keys
from riskguard.device.testing import TEST_PACKAGE, AndroidFacts, TestAuthority, trust_config

from conftest import make_settings
from conftest import transfer as base_transfer

T0 = datetime(2026, 11, 25, 10, tzinfo=UTC)
LONG_AGO = T0 - timedelta(days=400)


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, authority: TestAuthority) -> Iterator[RiskGuard]:
    """One service for the module (building one costs a second); each test uses its own ids."""
    guard = RiskGuard(make_settings(f"sqlite:///{tmp_path_factory.mktemp('device')}/riskguard.db"), background=False)
    guard.devices.nonces.clock = Clock()
    yield guard
    guard.close()


@pytest.fixture
def rg(shared: RiskGuard, authority: TestAuthority, request: pytest.FixtureRequest) -> RiskGuard:
    shared.devices.configure(trust_config(authority))  # a fresh trust configuration (and revocation list)
    global NS
    NS = request.node.name.removeprefix("test_")[:40]
    return shared


NS = ""


def client(
    rg: RiskGuard, authority: TestAuthority, account: str = "acc-1", device: str = "dev-1", **options: Any
) -> DeviceClient:
    return DeviceClient(
        f"{NS}:{account}", f"{NS}:{device}", InProcessTransport(rg.devices), authority=authority, **options
    )


def transfer(event_id: str, **fields: Any) -> dict[str, Any]:
    """conftest's transfer, in this test's namespace of ids."""
    for name, default in (("account_id", "acc-1"), ("device_id", "dev-1"), ("counterparty_id", "payee-1")):
        fields[name] = f"{NS}:{fields.get(name, default)}"
    return base_transfer(f"{NS}:{event_id}", **fields)


def variables(result: dict[str, Any]) -> dict[str, Any]:
    return result["explain"]["variables"]


def rules_of(result: dict[str, Any]) -> set[str]:
    return {reason["rule"] for reason in result["reasons"]}


def refused(code: str, action: Any) -> None:
    with pytest.raises(DeviceRefused) as caught:
        action()
    assert caught.value.code == code, str(caught.value)


def decide(rg: RiskGuard, body: dict[str, Any]) -> dict[str, Any]:
    return rg.decide(body, with_explain=True)


def test_signed_transfer_from_an_attested_device_decides_normally(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority, facts=AndroidFacts(security_level="strongbox", os_patch_level=202610))
    answer = phone.register(occurred_at=LONG_AGO)
    assert answer["registered"] and answer["attested"] and answer["security_level"] == "strongbox"
    assert answer["package"] == TEST_PACKAGE and answer["boot_state"] == "verified"
    result = decide(rg, phone.sign(transfer("t1", occurred_at=T0.isoformat())))
    device = variables(result)
    assert device["device.signed"] and device["device.signature_ok"] and device["device.failure"] == ""
    assert device["device.attested"] and device["device.registered"] and not device["device.new_for_account"]
    assert device["device.trust"] == 100 and device["device.reasons"] == []
    assert device["device.key_age_days"] == 400 and 0 <= device["device.patch_age_days"] < 60
    assert result["decision"] == "allow" and not any(r.startswith("device_") for r in rules_of(result))
    # and the next one, with the next counter
    second = decide(rg, phone.sign(transfer("t2", occurred_at=(T0 + timedelta(minutes=1)).isoformat())))
    assert variables(second)["device.signature_ok"]


def test_every_provider_registers_and_signs(rg: RiskGuard, authority: TestAuthority) -> None:
    expected = {
        "android": ("tee", True),
        "apple": ("secure_enclave", True),
        "webauthn": ("hardware", True),
        "oem": ("hardware", True),
        "software": ("software", False),
    }
    for number, (kind, (level, attested)) in enumerate(expected.items()):
        device = client(rg, authority, account=f"acc-{kind}", device=f"dev-{kind}", kind=kind)
        answer = device.register(occurred_at=LONG_AGO)
        assert (answer["provider"], answer["security_level"], answer["attested"]) == (
            {"software": "software"}.get(kind, kind),
            level,
            attested,
        )
        for step in range(2):
            when = (T0 + timedelta(minutes=number * 5 + step)).isoformat()
            body = transfer(f"{kind}-{step}", account_id=f"acc-{kind}", device_id=f"dev-{kind}", occurred_at=when)
            result = decide(rg, device.sign(body))
            assert variables(result)["device.signature_ok"], (kind, variables(result)["device.failure"])
            assert variables(result)["device.attested"] is attested


def test_replayed_nonce_is_refused(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority)
    phone.register(occurred_at=LONG_AGO)
    signed = phone.sign(transfer("first", occurred_at=T0.isoformat()))
    assert variables(decide(rg, signed))["device.signature_ok"]
    assert decide(rg, signed)["event_id"] == f"{NS}:first"  # the same event again is the stored decision, not a replay
    replay = dict(signed, event_id=f"{NS}:second")
    result = decide(rg, replay)
    assert variables(result)["device.failure"] == codes.NONCE_REPLAYED
    assert result["decision"] == "block" and "device_signature_forged" in rules_of(result)
    assert "DEVICE_SIGNATURE_INVALID" in {r["code"] for r in result["reasons"]}


def test_expired_and_unknown_nonces_are_refused(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority)
    phone.register(occurred_at=LONG_AGO)
    body = transfer("late", occurred_at=T0.isoformat())
    signed = phone.sign(body)
    rg.devices.nonces.clock.now += 61  # type: ignore[attr-defined]
    result = decide(rg, signed)
    assert variables(result)["device.failure"] == codes.NONCE_EXPIRED
    assert result["decision"] in ("challenge", "review") and "device_signature_stale" in rules_of(result)
    made_up = phone.sign(transfer("made-up", occurred_at=T0.isoformat()), nonce=b"\x01" * 32)
    assert variables(decide(rg, made_up))["device.failure"] == codes.NONCE_UNKNOWN


def test_wrong_digest_is_refused(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority)
    phone.register(occurred_at=LONG_AGO)
    signed = phone.sign(transfer("altered", occurred_at=T0.isoformat()))
    signed["amount"] = "60000.00"  # changed after signing: the nonce was bound to the 6,000 digest
    result = decide(rg, signed)
    assert variables(result)["device.failure"] == codes.DIGEST_MISMATCH and result["decision"] == "block"
    # a nonce asked for one payee and used for another
    nonce = phone.challenge(transfer("x"))
    other = phone.sign(transfer("payee-swap", counterparty_id="mule-9", occurred_at=T0.isoformat()), nonce=nonce)
    assert variables(decide(rg, other))["device.failure"] == codes.DIGEST_MISMATCH


def test_amount_formatting_does_not_change_the_digest(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority)
    phone.register(occurred_at=LONG_AGO)
    signed = phone.sign(transfer("fmt", amount="6000.00", occurred_at=T0.isoformat()))
    signed["amount"] = "6000"
    assert variables(decide(rg, signed))["device.signature_ok"]


def test_counter_regression_is_refused(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority)
    phone.register(occurred_at=LONG_AGO)
    assert variables(decide(rg, phone.sign(transfer("c5", occurred_at=T0.isoformat()), counter=5)))[
        "device.signature_ok"
    ]
    result = decide(rg, phone.sign(transfer("c5-again", occurred_at=T0.isoformat()), counter=5))
    assert variables(result)["device.failure"] == codes.COUNTER_REGRESSION and result["decision"] == "block"
    result = decide(rg, phone.sign(transfer("c3", occurred_at=T0.isoformat()), counter=3))
    assert variables(result)["device.failure"] == codes.COUNTER_REGRESSION


def test_tampered_signature_is_refused(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority)
    phone.register(occurred_at=LONG_AGO)
    signed = phone.sign(transfer("tamper", occurred_at=T0.isoformat()))
    signed["attributes"]["device_signature"]["counter"] = 99  # the counter is inside the signed bytes
    assert variables(decide(rg, signed))["device.failure"] == codes.BAD_SIGNATURE
    malformed = transfer("malformed", occurred_at=T0.isoformat(), attributes={"device_signature": {"key_id": 1}})
    result = decide(rg, malformed)
    assert variables(result)["device.failure"] == codes.MALFORMED_SIGNATURE and result["decision"] == "block"


def test_revoked_certificate_is_refused_at_registration_and_afterwards(rg: RiskGuard, authority: TestAuthority) -> None:
    rg.devices.trust.revocation.revoke(authority.intermediate.serial_number)
    try:
        refused(codes.CERT_REVOKED, lambda: client(rg, authority, device="dev-r").register(occurred_at=LONG_AGO))
    finally:
        rg.devices.configure(trust_config(authority))  # a fresh, empty revocation list
    phone = client(rg, authority)
    answer = phone.register(occurred_at=LONG_AGO)
    rg.devices.trust.revocation.revoke(rg.devices.registry.current(answer["key_id"]).serials[0])  # type: ignore[union-attr]
    result = decide(rg, phone.sign(transfer("after-revoke", occurred_at=T0.isoformat())))
    device = variables(result)
    assert device["device.failure"] == codes.KEY_REVOKED and codes.KEY_REVOKED in device["device.reasons"]
    assert result["decision"] == "block"


def test_revoked_key_is_refused(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority)
    answer = phone.register(occurred_at=LONG_AGO)
    rg.devices.revoke(answer["key_id"], actor="test")
    assert (
        variables(decide(rg, phone.sign(transfer("r", occurred_at=T0.isoformat()))))["device.failure"]
        == codes.KEY_REVOKED
    )
    refused(codes.KEY_REVOKED, lambda: phone.register(occurred_at=LONG_AGO))
    assert rg.audit.recent(action="device.revoke")


def test_software_only_key_is_degraded(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority, facts=AndroidFacts(security_level="software"))
    answer = phone.register(occurred_at=T0 - timedelta(hours=2))
    assert (
        not answer["attested"] and answer["security_level"] == "software" and codes.SOFTWARE_KEY in answer["findings"]
    )
    result = decide(rg, phone.sign(transfer("soft", occurred_at=T0.isoformat())))
    device = variables(result)
    assert device["device.signature_ok"] and not device["device.attested"]
    assert codes.SOFTWARE_KEY in device["device.reasons"] and device["device.trust"] <= 50
    assert "device_new_unattested_large_transfer" in rules_of(result) and result["decision"] != "allow"


def test_unlocked_bootloader_is_degraded(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority, facts=AndroidFacts(boot_state="unverified", device_locked=False))
    answer = phone.register(occurred_at=LONG_AGO)
    assert answer["attested"] and answer["boot_state"] == "unverified" and codes.BOOT_UNVERIFIED in answer["findings"]
    result = decide(rg, phone.sign(transfer("unlocked", occurred_at=T0.isoformat(), attributes={"rooted": True})))
    device = variables(result)
    assert device["device.boot_state"] == "unverified" and device["device.trust"] < 40
    assert {codes.BOOT_UNVERIFIED, codes.ROOTED} <= set(device["device.reasons"])
    assert "device_low_trust_large_transfer" in rules_of(result) and result["decision"] in ("challenge", "review")


def test_wrong_package_or_signing_digest_is_refused(rg: RiskGuard, authority: TestAuthority) -> None:
    repackaged = AndroidFacts(packages=[("com.evil.clone", 1)])
    refused(codes.WRONG_PACKAGE, lambda: client(rg, authority, facts=repackaged).register())
    resigned = AndroidFacts(signing_digests=["00" * 32])
    refused(codes.WRONG_SIGNING_DIGEST, lambda: client(rg, authority, facts=resigned).register())


def test_key_used_by_another_account_is_refused(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority)
    phone.register(occurred_at=LONG_AGO)
    stolen = phone.sign(transfer("other-account", account_id="acc-2", occurred_at=T0.isoformat()))
    result = decide(rg, stolen)
    assert variables(result)["device.failure"] == codes.KEY_ACCOUNT_MISMATCH and result["decision"] == "block"
    other = DeviceClient(
        f"{NS}:acc-2", phone.device_id, InProcessTransport(rg.devices), authority=authority, key=phone.key
    )
    refused(codes.KEY_BOUND_TO_OTHER_ACCOUNT, other.register)
    # rebinding is allowed on request, and is an event with its own risk
    answer = other.register(rebind=True, occurred_at=T0 - timedelta(days=1))
    assert answer["rebound_from"] == phone.account_id
    assert rg.audit.recent(action="device.rebind")
    moved = decide(rg, other.sign(transfer("rebound", account_id="acc-2", occurred_at=T0.isoformat())))
    assert variables(moved)["device.rebound"] and codes.KEY_REBOUND in variables(moved)["device.reasons"]
    old = decide(rg, phone.sign(transfer("old-owner", occurred_at=T0.isoformat())))
    assert variables(old)["device.failure"] == codes.KEY_ACCOUNT_MISMATCH


def test_registration_refusals_name_their_reason(rg: RiskGuard, authority: TestAuthority) -> None:
    stranger = TestAuthority("unconfigured")
    refused(codes.CHAIN_UNTRUSTED, lambda: client(rg, stranger).register())
    phone = client(rg, authority)
    answer = phone.transport.challenge({"account_id": phone.account_id, "device_id": phone.device_id})
    body = {"account_id": phone.account_id, "device_id": phone.device_id, "nonce": answer["nonce"]}
    body["attestation"] = phone.attestation(b"not the challenge")
    refused(codes.CHALLENGE_MISMATCH, lambda: phone.transport.register(body))
    refused(codes.NONCE_REPLAYED, lambda: phone.transport.register(body))
    body["attestation"] = {"format": "nope"}
    refused(codes.ATTESTATION_UNSUPPORTED, lambda: phone.transport.register(body))
    expired = TestAuthority("expired", now=datetime.now(UTC) - timedelta(days=30), days=10)
    rg.devices.configure(trust_config(expired))
    refused(codes.CERT_EXPIRED, lambda: client(rg, expired).register())
    rg.devices.configure(trust_config(authority))
    refused(codes.DEVELOPMENT_ENVIRONMENT, lambda: client(rg, authority, kind="apple", development=True).register())


def test_client_flags_and_fingerprints_only_lower_trust(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority, fingerprint="fp-1")
    phone.register(occurred_at=LONG_AGO)
    clean = variables(
        decide(rg, phone.sign(transfer("clean", occurred_at=T0.isoformat(), attributes={"device_fingerprint": "fp-1"})))
    )
    flagged = variables(
        decide(
            rg,
            phone.sign(
                transfer(
                    "flagged",
                    occurred_at=T0.isoformat(),
                    attributes={"emulator": True, "hooking": True, "vpn": True, "device_fingerprint": "fp-2"},
                )
            ),
        )
    )
    assert flagged["device.trust"] < clean["device.trust"]
    assert {codes.EMULATOR, codes.HOOKING, codes.VPN_OR_PROXY, codes.FINGERPRINT_CHANGED} <= set(
        flagged["device.reasons"]
    )
    reassuring = variables(
        decide(rg, phone.sign(transfer("x", occurred_at=T0.isoformat(), attributes={"emulator": False})))
    )
    assert reassuring["device.trust"] == clean["device.trust"]


def test_device_farm_registrations_get_low_trust(rg: RiskGuard, authority: TestAuthority) -> None:
    for number in range(24):
        farm = DeviceClient(
            f"{NS}:farm-{number}",
            f"{NS}:emu-{number % 8}",
            InProcessTransport(rg.devices),
            kind="software",
            fingerprint="emulator-image-7",
            environment={"emulator": True},
            ip=f"198.51.100.{number + 10}",
        )
        farm.register(occurred_at=T0 - timedelta(minutes=60 - number * 2))
    signup = {
        "event_id": f"{NS}:farm-signup",
        "type": "signup",
        "occurred_at": T0.isoformat(),
        "account_id": f"{NS}:farm-3",
        "device_id": f"{NS}:emu-3",
    }
    result = decide(rg, signup)
    device = variables(result)
    assert device["device.farm"] and device["device.trust"] == 0 and device["device.accounts"] == 3
    assert {codes.FARM_NETWORK, codes.FARM_FINGERPRINT, codes.REGISTRATION_BURST, codes.DEVICE_MANY_ACCOUNTS} <= set(
        device["device.reasons"]
    )
    assert "device_farm" in rules_of(result) and result["decision"] in ("review", "block")
    # a legitimate phone registered long ago from a home network is none of that
    phone = client(rg, authority, account="acc-home", device="dev-home", ip="203.0.113.7", fingerprint="fp-home")
    phone.register(occurred_at=LONG_AGO)
    home = variables(
        decide(rg, {**signup, "event_id": f"{NS}:home", "account_id": phone.account_id, "device_id": phone.device_id})
    )
    assert not home["device.farm"] and home["device.trust"] >= 90


def test_unregistered_devices_on_enrolled_accounts(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority)
    phone.register(occurred_at=LONG_AGO)
    stranger = decide(rg, transfer("thief", device_id="thief-phone", occurred_at=T0.isoformat()))
    device = variables(stranger)
    assert not device["device.signed"] and not device["device.registered"] and device["device.account_enrolled"]
    assert device["device.new_for_account"] and codes.UNREGISTERED_DEVICE in device["device.reasons"]
    assert "device_new_unattested_large_transfer" in rules_of(stranger) and stranger["decision"] in (
        "challenge",
        "review",
    )
    # an installation that never enrolled devices is not affected
    plain = decide(rg, transfer("plain", account_id="acc-9", occurred_at=T0.isoformat()))
    assert not any(rule.startswith("device_") for rule in rules_of(plain))


def test_registry_and_counters_survive_a_restart(tmp_path: Path, authority: TestAuthority) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}/riskguard.db")
    first = RiskGuard(settings, background=False)
    first.devices.configure(trust_config(authority))
    phone = DeviceClient("acc-1", "dev-1", InProcessTransport(first.devices), authority=authority)
    phone.register(occurred_at=LONG_AGO)
    assert variables(decide(first, phone.sign(base_transfer("a", occurred_at=T0.isoformat()), counter=7)))[
        "device.signature_ok"
    ]
    first.close()
    second = RiskGuard(settings, background=False)
    second.devices.configure(trust_config(authority))
    phone.transport = InProcessTransport(second.devices)
    assert variables(decide(second, phone.sign(base_transfer("b", occurred_at=T0.isoformat()), counter=7)))[
        "device.failure"
    ] == (codes.COUNTER_REGRESSION)
    assert variables(decide(second, phone.sign(base_transfer("c", occurred_at=T0.isoformat()), counter=8)))[
        "device.signature_ok"
    ]
    second.close()


def test_dry_runs_use_nothing_up(rg: RiskGuard, authority: TestAuthority) -> None:
    phone = client(rg, authority)
    phone.register(occurred_at=LONG_AGO)
    signed = phone.sign(transfer("dry", occurred_at=T0.isoformat()))
    from riskguard.events.validate import parse_event_obj

    event = parse_event_obj(signed)
    assert rg.devices.evaluate(event, observe=False)["device.signature_ok"]
    assert rg.devices.evaluate(event, observe=False)["device.signature_ok"]
    assert variables(decide(rg, signed))["device.signature_ok"]


def test_registry_on_both_databases(guard: RiskGuard, authority: TestAuthority) -> None:
    guard.devices.configure(trust_config(authority))
    phone = DeviceClient("acc-1", "dev-1", InProcessTransport(guard.devices), authority=authority)
    answer = phone.register(occurred_at=LONG_AGO)
    assert phone.register(occurred_at=LONG_AGO)["already"]
    assert guard.devices.get("dev-1")["keys"][0]["key_id"] == answer["key_id"]
    assert variables(decide(guard, phone.sign(base_transfer("pg", occurred_at=T0.isoformat()))))["device.signature_ok"]
    with guard.engine.connect() as connection:  # the counter was stored with the decision
        stored = connection.execute(select(device_keys.c.counter, device_keys.c.last_event)).one()
    assert tuple(stored) == (1, "pg")
