"""Helpers of the event-bus tests: a bus of either kind on a unique stream, settings that point at it,
and a batch of decided transfers."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from riskguard.bus.consumers import FlowsConsumer
from riskguard.bus.runner import decode
from riskguard.events.validate import parse_event_obj


def bus_names(request: pytest.FixtureRequest, kind: str) -> dict[str, Any]:
    """Settings overrides naming a fresh stream on the real server of ``kind`` (redis or nats)."""
    tag = "bust" + uuid.uuid4().hex[:10]
    if kind == "redis":
        url = request.getfixturevalue("redis_server")
        return {"bus_backend": "redis", "redis_url": url, "bus_prefix": tag}
    url = request.getfixturevalue("nats_server")
    return {"bus_backend": "nats", "bus_nats_url": url, "bus_prefix": tag, "bus_nats_stream": tag.upper()}


def env_of(overrides: dict[str, Any]) -> dict[str, str]:
    """The same overrides as RISKGUARD_* environment variables (for a child process)."""
    out = {}
    for key, value in overrides.items():
        out["RISKGUARD_" + key.upper()] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return out


def transfers(count: int, *, accounts: int = 37, prefix: str = "t") -> list[dict[str, Any]]:
    """``count`` transfers among ``accounts`` accounts, amounts with cents (exact sums are checked)."""
    return [
        {
            "event_id": f"{prefix}{i}",
            "type": "transfer",
            "occurred_at": f"2026-11-25T{10 + i // 3600 % 10:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "account_id": f"acc-{i % accounts}",
            "counterparty_id": f"acc-{(i * 7 + 3) % accounts}",
            "amount": f"{(i * 37) % 900 + 1}.{i % 100:02d}",
            "currency": "CNY" if i % 5 else "USD",
            "device_id": f"dev-{i % 11}",
        }
        for i in range(count)
    ]


def decide_all(guard: Any, bodies: list[dict[str, Any]]) -> None:
    """Decides every event through the group-commit writer (not one commit each) and waits for all."""
    submissions = [guard.submit(parse_event_obj(body, **guard.settings.event_limits)) for body in bodies]
    for submission in submissions:
        assert submission.ticket.wait(60) and submission.ticket.error is None


def published_flows(bus: Any) -> dict[str, dict[str, tuple[int, Decimal, int, Decimal]]]:
    """The ``flows`` consumer's expected totals, computed straight from every message on the bus (read
    through a probe group of its own): {account: {currency: (received n, sum, sent n, sum)}}."""
    messages = []
    while batch := bus.fetch("probe", "p", 1000, 50):
        messages += [decode(d) for d in batch]
        bus.ack("probe", batch)
    out: dict[str, dict[str, tuple[int, Decimal, int, Decimal]]] = {}
    for (account, currency), (rc, ra, sc, sa) in FlowsConsumer.deltas(messages).items():
        out.setdefault(account, {})[currency] = (rc, ra, sc, sa)
    return out
