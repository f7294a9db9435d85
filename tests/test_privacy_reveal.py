"""Audited reveal: who may, what is counted, when an analyst's access is anomalous (bulk, volume above
their own baseline, off-hours bursts), canaries, throttles and their lifting, and the API's masked views."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from riskguard.api.http import create_asgi
from riskguard.app import RiskGuard
from riskguard.errors import Forbidden, ValidationFailed
from riskguard.privacy import Throttled
from riskguard.privacy.canary import create_canaries, fake_card, fake_id_number
from riskguard.privacy.revealer import Revealer, RevealPolicy
from riskguard.privacy.tables import privacy_reveal_counts

from conftest import make_settings

PHONE = "13812345678"
NOON = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai
NIGHT = datetime(2026, 12, 7, 18, 30, tzinfo=UTC)  # 02:30 in Asia/Shanghai


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[RiskGuard]:
    with RiskGuard(make_settings(f"sqlite:///{tmp_path}/r.db"), background=False) as rg:
        yield rg


def revealer(guard: RiskGuard, clock: Clock, **policy: object) -> Revealer:
    base = {"timezone": "Asia/Shanghai", "working_hours": "08:00-20:00", **policy}
    return Revealer(guard.engine, guard.privacy.cipher, RevealPolicy(**base), clock=clock)  # type: ignore[arg-type]


def audit_text(guard: RiskGuard) -> str:
    return json.dumps(guard.audit.recent(limit=10_000), default=str)


def test_reveal_is_audited_without_the_value_and_needs_a_role_and_purpose(guard: RiskGuard) -> None:
    r = revealer(guard, Clock(NOON))
    sealed = guard.privacy.cipher.seal("phone", PHONE)
    assert r.reveal("ann", "analyst", "phone", sealed, purpose="case 12", target="account:a1") == PHONE
    assert r.reveal("ann", "lead", "phone", PHONE, purpose="case 12", target="account:a1") == PHONE
    with pytest.raises(Forbidden):
        r.reveal("aud", "auditor", "phone", sealed, purpose="curious", target="account:a1")
    with pytest.raises(ValidationFailed):
        r.reveal("ann", "analyst", "phone", sealed, purpose=" ", target="account:a1")
    entries = guard.audit.recent(action="pii.reveal")
    assert [e["details"]["result"] for e in entries] == ["forbidden", "revealed", "revealed"]
    assert entries[-1]["actor"] == "ann" and entries[-1]["target"] == "account:a1"
    assert entries[-1]["details"]["purpose"] == "case 12" and entries[-1]["details"]["kinds"] == ["phone"]
    assert entries[-1]["details"]["tokens"] == [guard.privacy.cipher.token("phone", PHONE)]
    assert PHONE not in audit_text(guard) and PHONE[-8:] not in audit_text(guard)


def test_a_bulk_reveal_raises_an_alert_and_throttles_until_lifted(guard: RiskGuard) -> None:
    clock = Clock(NOON)
    r = revealer(guard, clock, bulk_threshold=50, cooldown_minutes=30, hourly_floor=200)
    phones = [f"1390000{i:04d}" for i in range(60)]
    assert (
        len(r.reveal_many("bob", "analyst", [("phone", p) for p in phones[:49]], purpose="case 3", target="case:3"))
        == 49
    )
    with pytest.raises(Throttled, match="bulk"):
        r.reveal_many("bob", "analyst", [("phone", p) for p in phones[:50]], purpose="export", target="export:list")
    (alert,) = r.alerts.list()
    assert alert["kind"] == "bulk" and alert["evidence"]["actor"] == "bob" and alert["evidence"]["requested"] == 50
    assert not any(p in json.dumps(alert, default=str) for p in phones)
    with pytest.raises(Throttled, match="suspended"):  # every later reveal is refused during the cool-down
        r.reveal("bob", "analyst", "phone", phones[0], purpose="case 3", target="case:3")
    assert r.reveal("ann", "analyst", "phone", phones[0], purpose="case 4", target="case:4") == phones[0]  # others not
    with pytest.raises(Forbidden):
        r.lift("bob", by="ann", role="analyst")
    assert r.lift("bob", by="lee", role="lead") == 1
    assert r.reveal("bob", "analyst", "phone", phones[0], purpose="case 3", target="case:3") == phones[0]
    clock.at = NOON + timedelta(minutes=31)  # and a throttle ends by itself after the cool-down
    assert r.throttled("bob") is None
    results = [e["details"]["result"] for e in guard.audit.recent(action="pii.reveal", limit=100)]
    assert results.count("refused") == 1 and results.count("throttled") == 1
    assert guard.audit.recent(action="pii.throttle_lift")[0]["actor"] == "lee"
    assert not any(p in audit_text(guard) for p in phones)


def test_volume_is_judged_against_the_analysts_own_baseline(guard: RiskGuard) -> None:
    clock = Clock(NOON)
    r = revealer(guard, clock, hourly_floor=10, baseline_factor=3.0)
    with guard.engine.begin() as connection:  # a heavy user's habit: 20 an hour on five earlier days
        for day in range(1, 6):
            hour = NOON - timedelta(days=day)
            connection.execute(insert(privacy_reveal_counts).values(actor="heavy", hour=hour, count=20))
    for i in range(10):  # a new analyst: the floor (10 an hour)
        r.reveal("new", "analyst", "phone", f"1370000{i:04d}", purpose="queue", target=f"case:{i}")
    with pytest.raises(Throttled, match="volume"):
        r.reveal("new", "analyst", "phone", "13700009999", purpose="queue", target="case:99")
    for i in range(60):  # the heavy user may do three times their mean (60) before it is anomalous
        r.reveal("heavy", "analyst", "phone", f"1360000{i:04d}", purpose="queue", target=f"case:{i}")
    with pytest.raises(Throttled, match="volume"):
        r.reveal("heavy", "analyst", "phone", "13600009999", purpose="queue", target="case:99")
    alerts = {a["evidence"]["actor"]: a for a in r.alerts.list()}
    assert alerts["heavy"]["kind"] == "volume" and alerts["heavy"]["evidence"]["baseline"] == 20.0
    assert alerts["heavy"]["evidence"]["limit"] == 60 and alerts["new"]["evidence"]["limit"] == 10


def test_off_hours_bursts_are_anomalous_in_the_configured_time_zone(guard: RiskGuard) -> None:
    clock = Clock(NIGHT)
    r = revealer(guard, clock, offhours_limit=5)
    for i in range(5):
        r.reveal("owl", "analyst", "phone", f"1350000{i:04d}", purpose="night shift", target=f"case:{i}")
    with pytest.raises(Throttled, match="off-hours"):
        r.reveal("owl", "analyst", "phone", "13500009999", purpose="night shift", target="case:9")
    (alert,) = r.alerts.list()
    assert alert["kind"] == "off_hours" and alert["evidence"]["local_time"] == "02:30 Asia/Shanghai"
    clock.at = NOON  # the same pace in working hours is fine for someone else
    for i in range(8):
        r.reveal("day", "analyst", "phone", f"1340000{i:04d}", purpose="queue", target=f"case:{i}")


def test_opening_a_canary_alerts_at_once(guard: RiskGuard) -> None:
    (account,) = create_canaries(guard, 1, actor="security")
    r = guard.privacy.revealer
    payloads = guard.events.payloads([e for e in _event_ids(guard) if e.startswith("signup-")])
    (payload,) = [json.loads(p) for p in payloads.values() if json.loads(p)["account_id"] == account]
    assert r.alerts.list() == []
    phone = r.reveal("mallory", "analyst", "phone", payload["phone"], purpose="checking", target="event:x")
    assert phone == payload["phone"]  # not refused: the tripwire stays silent to whoever tripped it
    (alert,) = r.alerts.list()
    assert (
        alert["kind"] == "canary"
        and alert["evidence"]["actor"] == "mallory"
        and alert["evidence"]["canaries"] == [account]
    )
    r.reveal("eve", "analyst", "email", "someone@example.org", purpose="x", target=f"account:{account}")
    assert {a["evidence"]["actor"] for a in r.alerts.list()} == {"mallory", "eve"}
    assert account not in json.dumps(guard.audit.recent(action="privacy.canary"), default=str)


def test_fake_identifiers_are_well_formed() -> None:
    number = fake_id_number()
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = sum(int(d) * w for d, w in zip(number[:17], weights, strict=True)) % 11
    assert len(number) == 18 and "10X98765432"[check] == number[-1]
    card = fake_card()
    digits = [int(d) for d in reversed(card)]
    luhn = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
    assert len(card) == 16 and luhn % 10 == 0


def _event_ids(guard: RiskGuard) -> list[str]:
    from sqlalchemy import select

    from riskguard.store.tables import events

    with guard.engine.connect() as connection:
        return list(connection.execute(select(events.c.event_id)).scalars())


def test_the_api_masks_unless_a_reveal_key_asks_with_a_purpose(guard: RiskGuard) -> None:
    card = "6259990011223344"
    guard.lists.add("blocked_cards", [card], reason="reported by li.wei@example.org", expires_at=None, actor="t")
    admin = guard.ensure_admin_key()
    _, revealing = guard.api_keys.create(["admin", "reveal"], "analyst tool", actor="t")
    with TestClient(create_asgi(guard)) as client:
        as_admin = {"Authorization": f"Bearer {admin}"}
        as_reveal = {"Authorization": f"Bearer {revealing}"}
        masked = client.get("/v1/lists/blocked_cards/entries", headers=as_admin).json()["entries"]
        assert masked[0]["value"] == "625**********344" and "li.wei@example.org" not in json.dumps(masked)
        refused = client.get("/v1/lists/blocked_cards/entries?reveal=true&purpose=x", headers=as_admin)
        assert refused.status_code == 403  # admin alone does not imply reveal
        no_purpose = client.get("/v1/lists/blocked_cards/entries?reveal=true", headers=as_reveal)
        assert no_purpose.status_code == 422 and no_purpose.json()["detail"][0]["loc"] == ["query", "purpose"]
        shown = client.get("/v1/lists/blocked_cards/entries?reveal=true&purpose=audit", headers=as_reveal).json()
        assert shown["entries"][0]["value"] == card
        event = {
            "event_id": "e1",
            "type": "payment",
            "occurred_at": "2026-11-25T10:00:00Z",
            "account_id": "a1",
            "amount": "10.00",
            "currency": "CNY",
            "merchant_id": "m1",
            "card_id": card,
        }
        guard.refresh()
        assert client.post("/v1/decisions", json=event, headers=as_admin).status_code == 200
        body = client.get("/v1/decisions/e1?explain=true", headers=as_admin).json()
        assert body["explain"]["lists"] == {"blocked_cards": ["625**********344"]}
        body = client.get("/v1/decisions/e1?explain=true&reveal=true&purpose=dispute", headers=as_reveal).json()
        assert body["explain"]["lists"] == {"blocked_cards": [card]}
        alerts = client.get("/v1/privacy/alerts", headers=as_admin)
        assert alerts.status_code == 200 and alerts.json() == {"alerts": []}
    reveals = guard.audit.recent(action="pii.reveal")
    assert [e["target"] for e in reveals] == ["event:e1", "list:blocked_cards"]
    assert all(e["actor"].startswith("key:") for e in reveals) and card not in audit_text(guard)
