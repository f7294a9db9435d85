"""Investigations benchmark: alert sync throughput, case-view and evidence-export latency.

A synthetic stream decided by the real pipeline (in process, SQLite): ``--accounts`` accounts make
``--events`` transfers; a rule sends transfers above 1,000 to review (about half), and accounts share
devices in small groups, so review alerts merge. Then:

1. **sync**: every review decision into the inbox (entities, exact priorities, merging by shared
   entities) — alerts per second. Baseline in the same run: the floor of storing the same alert rows with
   one bulk INSERT and no deduplication or merging. A second sync with nothing new shows the cost of
   calling it on every page load.
2. **case view**: ``CaseService.case`` for ``--cases`` cases (each opened from one alert group) — p50/p99.
   Baseline: the one indexed query a view starts from (the case accounts' events and decisions).
3. **evidence export**: ``CaseService.evidence_bytes`` (unmasked, through the Revealer) — p50/p99.
   Baseline: ``json.dumps`` of the same view and its SHA-256 (no report, no zip, no reveal).

Prints wall and CPU time, peak RSS and the load average.

    .venv/bin/python bench/cases.py [--accounts 3000] [--events 20000] [--cases 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert

from riskguard.app import RiskGuard
from riskguard.cases import records
from riskguard.cases.service import CaseService
from riskguard.cases.sources import review_alert
from riskguard.config import Settings
from riskguard.events.validate import parse_event_obj

STRATEGY = """name: bench_cases
version: 1
rules:
  - id: large_transfer
    when: 'event.type == "transfer" && event.amount > 1000.0'
    action: review
    score: 70
    reason: Large transfer
thresholds: {block: 90, review: 60, challenge: 40}
"""


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clocks()
    return wall - start[0], cpu - start[1]


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


def stream(guard: RiskGuard, accounts: int, events: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    batch = []
    for number in range(events):
        account = rng.randrange(accounts)
        body = {
            "event_id": f"b{number}",
            "type": "transfer",
            "occurred_at": (start + timedelta(seconds=number * 20)).isoformat(),
            "account_id": f"acc-{account}",
            "amount": f"{rng.choice([200, 600, 1500, 4000, 12000]) + rng.randrange(100)}.00",
            "currency": "CNY",
            "counterparty_id": f"acc-{rng.randrange(accounts)}",
            "device_id": f"dev-{account // 4}",
            "phone": f"138{account:08d}",
        }
        batch.append(parse_event_obj(body, **guard.settings.event_limits))
        if len(batch) == 1000:
            guard.ingest(batch)
            guard.drain(600)
            batch = []
    if batch:
        guard.ingest(batch)
        guard.drain(600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--cases", type=int, default=100)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cases_bench_"))  # /tmp/cases_bench_*: removed at the end
    settings = Settings.from_env(
        environ={}, database_url=f"sqlite:///{scratch}/bench.db", reveal_working_hours="00:00-24:00",
        reveal_hourly_floor=1_000_000, reveal_bulk_threshold=1_000_000,
    )  # fmt: skip
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load}; {os.cpu_count()} cores")
    with RiskGuard(settings, background=False) as guard:
        guard.publish(STRATEGY, actor="bench")
        started = clocks()
        stream(guard, args.accounts, args.events)
        wall, cpu = since(started)
        print(f"decided {args.events:,} events in {wall:.1f} s ({cpu:.1f} s CPU)")
        service = CaseService(guard, graph_dir=scratch / "graph")

        reviews = records.by_ids(guard.engine, [k for k, _ in records.reviews_since(guard.engine, None, 10**9)])
        alerts = [review_alert(r) for r in reviews]
        floor = Table(
            "bench_floor", MetaData(), Column("id", Integer, primary_key=True), Column("key", String(160)),
            Column("evidence", Text),
        )  # fmt: skip
        floor.create(guard.engine)
        started = clocks()
        with guard.engine.begin() as connection:
            connection.execute(
                insert(floor), [{"key": a.source_key, "evidence": json.dumps(a.evidence, default=str)} for a in alerts]
            )
        base_wall, base_cpu = since(started)

        started = clocks()
        result = service.sync("bench")
        wall, cpu = since(started)
        counts = result["sources"]["review"]
        print(
            f"sync: {counts['new']:,} review alerts ({counts['merged']:,} merged) in {wall:.2f} s, "
            f"{counts['new'] / wall:,.0f} alerts/s ({counts['new'] / cpu:,.0f} per CPU-second); "
            f"baseline bulk INSERT without merging: {len(alerts) / base_wall:,.0f} rows/s ({base_cpu:.2f} s CPU)"
        )
        started = clocks()
        again = [service.sync("bench") for _ in range(20)]
        wall, cpu = since(started)
        assert all(a["sources"]["review"]["new"] == 0 for a in again)
        print(f"sync with nothing new: {wall / 20 * 1000:.1f} ms a call ({cpu / 20 * 1000:.1f} ms CPU)")

        groups = service.alerts(limit=args.cases)["alerts"]
        case_ids = [service.open_case([g["id"]], actor="bench")["id"] for g in groups]
        inbox = service.inbox
        views, base_views, exports, base_exports = [], [], [], []
        view_cpu = export_cpu = 0.0
        started = clocks()
        for case_id in case_ids:
            t, c = clocks()
            view = service.case(case_id)
            views.append(time.perf_counter() - t)
            view_cpu += time.process_time() - c
            with guard.engine.connect() as connection:
                accounts = [v for k, v in inbox.entities_of_case(connection, case_id) if k == "account"]
            t = time.perf_counter()
            records.of_accounts(guard.engine, accounts, limit=1000)
            base_views.append(time.perf_counter() - t)
            t, c = clocks()
            service.evidence_bytes(case_id, actor="bench", role="analyst")
            exports.append(time.perf_counter() - t)
            export_cpu += time.process_time() - c
            t = time.perf_counter()
            hashlib.sha256(json.dumps(view, default=str).encode()).hexdigest()
            base_exports.append(time.perf_counter() - t)
        wall, cpu = since(started)
        sizes = [len(service.case(c)["timeline"]) for c in case_ids[:20]]
        print(
            f"case view, {len(case_ids)} cases (timelines of ~{statistics.median(sizes):.0f} items): "
            f"{percentiles(views)}, {view_cpu / len(case_ids) * 1000:.0f} ms CPU each; "
            f"baseline (the accounts' events query): {percentiles(base_views)}"
        )
        print(
            f"evidence export (zip, unmasked via the Revealer): {percentiles(exports)}, "
            f"{export_cpu / len(case_ids) * 1000:.0f} ms CPU each; "
            f"baseline (json.dumps + SHA-256 of the view): {percentiles(base_exports)}"
        )
        print(f"views and exports together: {wall:.1f} s wall, {cpu:.1f} s CPU")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB; load average {os.getloadavg()[0]:.1f}")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
