"""Console benchmark: how fast the analyst console answers on a simulated world, in process.

A world (``--accounts`` 300 × ``--days`` 2, every typology) is decided into a fresh SQLite database and
synced into the alert inbox; then, through the ASGI application (no network), for ``--requests`` each:

- sign-in (``POST /console/login``: one scrypt check, a session row);
- the dashboard uncomputed (figures from the decisions, events and labels tables) and cached;
- the alert queue (first page, priority order), an alert, a case view (graph, timeline, decisions);
- baseline in the same run: ``GET /healthz`` through the same client (the framework's floor).

Prints requests/s, p50/p99 wall milliseconds, CPU milliseconds per request, peak RSS and the load average.

    .venv/bin/python bench/console.py [--accounts 300] [--days 2] [--requests 50]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fastapi.testclient import TestClient
from rich.console import Console

from riskguard.api.http import create_app
from riskguard.app import RiskGuard
from riskguard.config import Settings
from riskguard.console.users import UserRepository
from riskguard.sim.config import WorldConfig
from riskguard.sim.demo import generate
from riskguard.sim.stream import InProcessTarget
from riskguard.sim.writer import envelope, read_events

PASSWORD = "bench password 1"


def measure(name: str, count: int, call: Callable[[], Any]) -> dict[str, Any]:
    walls: list[float] = []
    cpu0 = time.process_time()
    began = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        walls.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - began
    cpu = (time.process_time() - cpu0) * 1000 / count
    walls.sort()
    row = {
        "name": name,
        "rate": count / wall,
        "p50": statistics.median(walls),
        "p99": walls[min(len(walls) - 1, int(0.99 * len(walls)))],
        "cpu": cpu,
    }
    print(f"{name:<34} {row['rate']:>8.1f}/s  p50 {row['p50']:>7.2f} ms  p99 {row['p99']:>7.2f} ms  CPU {cpu:>6.2f} ms")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench_console_"))
    t0 = time.perf_counter()
    generate(
        WorldConfig(accounts=args.accounts, days=args.days, seed=5, start=date(2026, 11, 1)),
        scratch / "w",
        Console(quiet=True),
    )
    events = read_events(scratch / "w")
    settings = Settings.from_env(
        environ={}, database_url=f"sqlite:///{scratch}/rg.db", feature_snapshot_path="off", log_level="WARNING"
    )
    guard = RiskGuard(settings, background=False)
    InProcessTarget(guard).stream((envelope(r) for r in events.iter_rows(named=True)), lambda _d: None)
    app = create_app(guard)
    synced = app.state.console.cases.sync("bench")
    print(
        f"world: {events.height:,} events decided, inbox synced in {synced['seconds']} s "
        f"({time.perf_counter() - t0:.1f} s set-up)"
    )
    UserRepository(guard.engine).add("lead", "lead", PASSWORD, actor="bench")
    client = TestClient(app, base_url="http://127.0.0.1")

    def sign_in() -> None:
        page = client.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        answer = client.post(
            "/console/login", data={"csrf": token, "username": "lead", "password": PASSWORD}, follow_redirects=False
        )
        assert answer.status_code == 303

    n = args.requests
    rows = [measure("baseline: GET /healthz", n * 4, lambda: client.get("/healthz"))]
    rows.append(measure("sign-in (page + scrypt + session)", max(5, n // 5), sign_in))
    queue = client.get("/console/alerts")
    alert_id = int(re.search(r'/console/alerts/(\d+)"', queue.text).group(1))
    token = re.search(r'data-csrf="([^"]+)"', queue.text).group(1)
    opened = client.post(
        "/console/alerts/bulk", data={"csrf": token, "alert_ids": str(alert_id), "do": "case"}, follow_redirects=False
    )
    case_path = opened.headers["location"]
    console = app.state.console

    def dashboard_fresh() -> None:
        from riskguard.console.dashboard import compute

        compute(console.guard.engine, days=7)

    rows.append(measure("dashboard figures, uncached", max(3, n // 10), dashboard_fresh))
    rows.append(measure("GET /console/ (dashboard, cached)", n, lambda: client.get("/console/")))
    rows.append(measure("GET /console/alerts (queue)", n, lambda: client.get("/console/alerts")))
    rows.append(measure(f"GET /console/alerts/{alert_id}", n, lambda: client.get(f"/console/alerts/{alert_id}")))
    rows.append(measure(f"GET {case_path} (case view)", n, lambda: client.get(case_path)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak RSS {peak:.0f} MiB; machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
        f"1-min load {os.getloadavg()[0]:.2f}"
    )
    guard.close()


if __name__ == "__main__":
    main()
