"""The starter strategy on the scenarios it is written for (typologies from ../shared/DOMAIN.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from riskguard.app import RiskGuard

from conftest import transfer

T0 = datetime(2026, 11, 20, 2, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def rules_of(result: dict[str, Any]) -> set[str]:
    return {reason["rule"] for reason in result["reasons"]}


def test_credential_stuffing_from_one_ip_is_blocked(guard: RiskGuard) -> None:
    for i in range(20):
        guard.decide(
            {
                "event_id": f"fail{i}",
                "type": "login",
                "occurred_at": at(i / 4),
                "account_id": f"victim{i}",
                "ip": "203.0.113.9",
                "attributes": {"success": False},
            }
        )
    result = guard.decide(
        {
            "event_id": "hit",
            "type": "login",
            "occurred_at": at(6),
            "account_id": "victim99",
            "ip": "203.0.113.9",
            "attributes": {"success": True},
        }
    )
    assert result["decision"] == "block"
    assert {"credential_stuffing_ip", "ip_many_accounts"} <= rules_of(result)


def test_takeover_sequence_is_stopped_before_the_money_leaves(guard: RiskGuard) -> None:
    guard.decide(
        {
            "event_id": "bind",
            "type": "device_bind",
            "occurred_at": at(0),
            "account_id": "acc-t",
            "device_id": "new-phone",
        }
    )
    change = guard.decide(
        {
            "event_id": "pw",
            "type": "password_change",
            "occurred_at": at(3),
            "account_id": "acc-t",
            "device_id": "new-phone",
        }
    )
    assert change["decision"] == "review"
    drain = guard.decide(
        transfer(
            "drain",
            account_id="acc-t",
            occurred_at=at(6),
            amount="8000.00",
            device_id="new-phone",
            counterparty_id="mule-1",
        )
    )
    assert drain["decision"] in ("review", "block")
    assert {"transfer_after_password_change", "transfer_from_new_device"} <= rules_of(drain)
    assert drain["warning"]["key"] in ("account_takeover", "safe_account")


def test_first_layer_mule_receiving_from_many_victims(guard: RiskGuard) -> None:
    for i in range(5):
        guard.decide(
            transfer(
                f"v{i}",
                account_id=f"victim-{i}",
                counterparty_id="mule-x",
                occurred_at=at(i * 30),
                amount="3000.00",
                device_id=f"victim-phone-{i}",
            )
        )
    sixth = guard.decide(
        transfer(
            "v5",
            account_id="victim-5",
            counterparty_id="mule-x",
            occurred_at=at(200),
            amount="3000.00",
            device_id="victim-phone-5",
            locale="zh-CN",
        )
    )
    assert sixth["decision"] == "review"
    assert "payee_fan_in" in rules_of(sixth)
    assert sixth["warning"]["title"] == "收款方可能涉嫌诈骗"


def test_device_farm_signups(guard: RiskGuard) -> None:
    decisions = [
        guard.decide(
            {
                "event_id": f"su{i}",
                "type": "signup",
                "occurred_at": at(i),
                "account_id": f"farm-{i}",
                "device_id": "emulator-1",
                "ip": "198.51.100.7",
                "phone": f"1700000000{i}",
                "attributes": {"emulator": True},
            }
        )["decision"]
        for i in range(4)
    ]
    assert decisions[0] == "review"  # an emulator sign-up is looked at
    assert decisions[2:] == ["block", "block"]  # the device keeps signing up accounts


def test_a_large_first_transfer_is_reviewed_not_blocked(guard: RiskGuard) -> None:
    result = guard.decide(transfer("big", amount="60000.00", counterparty_id="new-payee", occurred_at=at(0)))
    assert result["decision"] == "review"
    assert result["warning"]["key"] == "safe_account"


def test_complaints_with_agent_signals_are_routed_not_blocked(guard: RiskGuard) -> None:
    results = []
    for i in range(4):
        results.append(
            guard.decide(
                {
                    "event_id": f"cp{i}",
                    "type": "complaint",
                    "occurred_at": at(i * 60),
                    "account_id": "customer-1",
                    "device_id": "agent-laptop",
                    "phone": "13900000000",
                    "attributes": {"text": "要求全额退保，征信修复，停息挂账", "contact_phone": "13511112222"},
                }
            )
        )
    assert all(r["decision"] in ("review", "challenge") for r in results)
    assert results[-1]["decision"] == "review"
    assert "complaint_agent_lures" in rules_of(results[-1])
    assert results[-1]["warning"]["key"] == "proxy_rights_agent"
