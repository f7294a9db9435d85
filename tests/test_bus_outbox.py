"""The transactional outbox: every committed decision is published, also when the bus was down at the
time; nothing is written when the bus is off; the relay thread publishes promptly; lag in /metrics."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bus_helpers import bus_names, decide_all, transfers
from riskguard.api.http import create_asgi
from riskguard.app import RiskGuard
from riskguard.bus.base import BusUnavailable
from riskguard.bus.tables import bus_outbox
from riskguard.store.tables import decisions

from conftest import make_settings


def _outbox_rows(guard: RiskGuard) -> int:
    with guard.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(bus_outbox)).scalar_one()


def test_decisions_taken_while_the_bus_is_down_are_published_when_it_is_back(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    names = bus_names(request, "redis")
    down = make_settings(db_url, bus_enabled=True, **{**names, "redis_url": "redis://127.0.0.1:1/0"})
    with RiskGuard(down, background=False) as guard:
        bodies = transfers(60)
        decide_all(guard, bodies)  # accepted and answered although the bus is unreachable
        with pytest.raises(BusUnavailable):
            guard.bus_relay.run_once()
        assert _outbox_rows(guard) == 60
    with RiskGuard(make_settings(db_url, bus_enabled=True, **names), background=False) as guard:
        bus = guard.bus_relay.bus
        try:
            assert guard.bus_relay.drain() == 60
            assert _outbox_rows(guard) == 0
            got = bus.fetch("check", "m", 1000, 200)
            assert sorted(d.id for d in got) == sorted(b["event_id"] for b in bodies)
            with guard.engine.connect() as connection:
                stored = dict(connection.execute(select(decisions.c.event_id, decisions.c.decision)).all())
            for delivery in got:
                body = msgspec.json.decode(delivery.body)
                assert body["decision"]["decision"] == stored[delivery.id]
                assert msgspec.json.decode(body["payload"])["event_id"] == delivery.id
        finally:
            bus.reset()


def test_the_bus_off_writes_no_outbox_rows(tmp_path: Path) -> None:
    with RiskGuard(make_settings(f"sqlite:///{tmp_path}/off.db"), background=False) as guard:
        assert guard.bus_relay is None
        decide_all(guard, transfers(5))
        assert _outbox_rows(guard) == 0


def test_the_relay_thread_publishes_promptly_and_lag_is_in_metrics(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}/relay.db", bus_enabled=True, **bus_names(request, "redis"))
    with RiskGuard(settings, background=True) as guard:
        bus = guard.bus_relay.bus
        try:
            decide_all(guard, transfers(25))
            deadline = time.monotonic() + 10
            while (bus.length() < 25 or _outbox_rows(guard)) and time.monotonic() < deadline:
                time.sleep(0.02)  # published, then the rows deleted in the relay's commit
            assert bus.length() == 25 and _outbox_rows(guard) == 0
            bus.fetch("flows", "m", 10, 100)
            with TestClient(create_asgi(guard)) as client:
                text = client.get("/metrics").text
            assert 'riskguard_bus_consumer_lag{group="flows",state="waiting"} 15.0' in text
            assert 'riskguard_bus_consumer_lag{group="flows",state="in_flight"} 10.0' in text
            assert "riskguard_bus_published_total 25.0" in text
            assert "riskguard_bus_up 1.0" in text
        finally:
            bus.reset()
