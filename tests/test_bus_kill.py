"""A consumer process killed (SIGKILL) in the middle of a batch loses nothing and counts nothing twice
when it is started again: on Redis Streams and on NATS JetStream, the ``flows`` totals — counts and
exact decimal sums per account and currency — equal those computed from the published events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bus_helpers import bus_names, decide_all, env_of, published_flows, transfers
from riskguard.app import RiskGuard
from riskguard.bus.consumers import FlowsConsumer
from riskguard.bus.tables import bus_processed

from conftest import make_settings

EVENTS = 600
CONSUME = [sys.executable, "-c", "from riskguard.cli.main import main; main()", "consume", "flows"]


def _processed(guard: RiskGuard) -> int:
    with guard.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(bus_processed)).scalar_one()


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CONSUME, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("kind", ["redis", "nats"])
def test_a_consumer_killed_mid_batch_loses_nothing_and_counts_nothing_twice(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    overrides: dict[str, Any] = {
        "bus_enabled": True,
        "bus_redeliver_s": 1.0,
        **bus_names(request, kind),
    }
    db_url = f"sqlite:///{tmp_path}/kill.db"
    env = {**os.environ, **env_of(overrides), "RISKGUARD_DATABASE_URL": db_url, "RISKGUARD_LOG_LEVEL": "ERROR"}
    with RiskGuard(make_settings(db_url, **overrides), background=False) as guard:
        bus = guard.bus_relay.bus
        bus.reset()
        try:
            decide_all(guard, transfers(EVENTS))
            assert guard.bus_relay.drain() == EVENTS
            killed_mid_batch = False
            tries = 0
            while tries < 4 and not killed_mid_batch:  # until a kill lands while a batch is handed out
                tries += 1
                process = _start(env, "--batch", "20", "--block-ms", "200")
                deadline = time.monotonic() + 60
                while process.poll() is None and time.monotonic() < deadline:
                    if bus.lag("flows").in_flight and _processed(guard):
                        break  # some batches committed, one handed out and not acknowledged yet
                    time.sleep(0.002)
                assert process.poll() is None, process.communicate()[1][-2000:]
                process.send_signal(signal.SIGKILL)
                process.communicate()
                killed_mid_batch = bus.lag("flows").in_flight > 0 and _processed(guard) < EVENTS
            assert killed_mid_batch, f"no kill landed mid-batch in {tries} tries"
            assert 0 < _processed(guard) < EVENTS
            restarted = _start(env, "--batch", "40", "--block-ms", "200", "--until-idle")
            out, err = restarted.communicate(timeout=180)
            assert restarted.returncode == 0, err[-2000:]
            summary = json.loads(out)
            assert summary["processed"] + summary["redeliveries_skipped"] >= 1  # it took over the dead batch
            assert _processed(guard) == EVENTS
            lag = bus.lag("flows")
            assert (lag.waiting, lag.in_flight, lag.dead) == (0, 0, 0)
            assert FlowsConsumer(guard).totals() == published_flows(bus)
        finally:
            bus.reset()
