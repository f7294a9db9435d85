"""Shared set-up of the investigations tests (tests/test_cases_*.py): a strategy that sends large transfers
to review, and events that make review alerts."""

from __future__ import annotations

from typing import Any

from riskguard.app import RiskGuard
from riskguard.cases.service import CaseService

STRATEGY = """name: casework
version: 1
lists:
  - {name: blocked_accounts, entity: account_id}
  - {name: blocked_devices, entity: device_id}
rules:
  - id: blocked_account
    when: 'event.account_id in lists.blocked_accounts'
    action: block
    score: 100
    reason: Account is on the block list
  - id: large_transfer
    when: 'event.type == "transfer" && event.amount > 1000.0'
    action: review
    score: 70
    reason: Large transfer
thresholds: {block: 90, review: 60, challenge: 40}
"""

PHONE = "13812345678"


def transfer(event_id: str, at: str, account: str, amount: str, payee: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "transfer",
        "occurred_at": at,
        "account_id": account,
        "amount": amount,
        "currency": "CNY",
        "counterparty_id": payee,
        **fields,
    }


def casework(guard: RiskGuard, tmp_path: Any) -> CaseService:
    guard.publish(STRATEGY, actor="test")
    return CaseService(guard, graph_dir=tmp_path / "graph")


def victim_and_mules(guard: RiskGuard) -> None:
    """acc-v pays two large transfers to mule-1 (same phone, device); mule-1 passes money on to mule-2; an
    unrelated account pays an unrelated payee."""
    guard.decide(transfer("v1", "2026-11-25T10:00:00Z", "acc-v", "1500.50", "mule-1", device_id="dev-v", phone=PHONE))
    guard.decide(transfer("v2", "2026-11-25T10:05:00Z", "acc-v", "2000.00", "mule-1", device_id="dev-v", phone=PHONE))
    guard.decide(transfer("m1", "2026-11-25T10:20:00Z", "mule-1", "1200.00", "mule-2", device_id="dev-m"))
    guard.decide(transfer("o1", "2026-11-25T12:00:00Z", "acc-o", "5000.00", "shop-9", device_id="dev-o"))
