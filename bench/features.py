"""Feature-engine benchmark: events/s, per-event latency and memory per million keys.

Runs the starter strategy's features (stateful and published) plus min, max, avg and last_seen over a mixed
stream whose account, device, IP and payee keys are drawn from a space of about a million distinct keys,
through the embedded memory back end (``prepare`` + ``compute`` + ``observe`` per event, as the decision
pipeline calls it). The baseline in the same run is the naive definition: every feature recomputed by
scanning its key's whole history list.

    .venv/bin/python bench/features.py [--events 200000] [--quick]

Prints one line per back end, e.g. ``memory: 61,200 events/s ...``. The Redis line (``run_redis``) needs
the Redis server at RISKGUARD_REDIS_URL (default redis://127.0.0.1:6379/0) and runs at most 50,000 events.
The ``offline:`` line runs the bulk point-in-time path (features/offline.py) over the same stream.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decision import make_events, parsed, pct
from riskguard.config import STARTER_STRATEGY
from riskguard.features.memory import MemoryFeatureEngine
from riskguard.features.offline import offline_features
from riskguard.features.spec import FeatureSpec
from riskguard.rules.activation import EVENT_DECLARATIONS, event_variables
from riskguard.rules.cel import Environment
from riskguard.rules.strategy import load_strategy
from riskguard.runtime import tune_gc

EXTRA = [
    FeatureSpec(name="min_amount_24h", entity="account_id", aggregate="min", field="amount", window="24h"),
    FeatureSpec(name="max_amount_24h", entity="account_id", aggregate="max", field="amount", window="24h"),
    FeatureSpec(name="avg_amount_7d", entity="account_id", aggregate="avg", field="amount", window="7d"),
    FeatureSpec(name="since_last_30d", entity="account_id", aggregate="last_seen", window="30d", include_current=False),
]


def specs() -> list[FeatureSpec]:
    document = load_strategy(Path(STARTER_STRATEGY).read_text(encoding="utf-8"))
    return [*document.features, *EXTRA]


def run_memory(
    features: list[FeatureSpec], events: list[Any], *, trace: bool
) -> tuple[float, list[float], int, int, float]:
    """One pass through a fresh engine: (events/s, per-event seconds, keys held, traced peak bytes, events
    per CPU-second — the steadier figure on a machine other work shares).

    ``trace`` measures memory with tracemalloc, which slows allocation: timings of a traced pass are not
    reported.
    """
    engine = MemoryFeatureEngine()
    engine.declare(features, Environment(EVENT_DECLARATIONS))
    prepared_vars = [(event, event_variables(event)) for event in events]
    tune_gc()  # as `riskguard serve` does
    if trace:
        tracemalloc.start()
    latencies: list[float] = []
    started, cpu = time.perf_counter(), time.process_time()
    for event, variables in prepared_vars:
        t0 = time.perf_counter()
        prepared = engine.prepare(event, variables)
        engine.process(prepared, [features])
        latencies.append(time.perf_counter() - t0)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = 0
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return len(events) / elapsed, latencies, engine.size(), peak, len(events) / cpu


def run_redis(
    features: list[FeatureSpec], events: list[Any]
) -> tuple[float, list[float], list[float], float, int, int]:
    """One pass through a fresh namespace on the Redis at RISKGUARD_REDIS_URL (default the local one), one
    EVALSHA round trip per event: (events/s, per-event seconds, PING seconds as the loopback floor, Redis's
    own µs per script from INFO commandstats, Redis keys held, INFO used_memory delta in bytes). The
    namespace is deleted afterwards."""
    import uuid

    import redis

    from riskguard.features.redis_backend import RedisFeatureEngine

    client = redis.Redis.from_url(os.environ.get("RISKGUARD_REDIS_URL", "redis://127.0.0.1:6379/0"))
    engine = RedisFeatureEngine(client, namespace="bench-" + uuid.uuid4().hex[:8])
    engine.declare(features, Environment(EVENT_DECLARATIONS))
    prepared_vars = [(event, event_variables(event)) for event in events]
    tune_gc()  # as `riskguard serve` does
    pings = []
    for _ in range(1000):
        t0 = time.perf_counter()
        client.ping()
        pings.append(time.perf_counter() - t0)
    before = client.info("memory")["used_memory"]
    scripts = client.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    latencies: list[float] = []
    started = time.perf_counter()
    for event, variables in prepared_vars:
        t0 = time.perf_counter()
        engine.process(engine.prepare(event, variables), [features])
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    grown = client.info("memory")["used_memory"] - before
    after = client.info("commandstats")["cmdstat_evalsha"]
    server_us = (after["usec"] - scripts["usec"]) / max(after["calls"] - scripts["calls"], 1)
    keys = engine.size()
    engine.clear()
    client.close()
    return len(events) / elapsed, latencies, pings, server_us, keys, grown


def run_naive(features: list[FeatureSpec], events: list[Any]) -> tuple[float, list[float]]:
    """Every feature from scratch per event: scan the key's whole history (the definition, no index)."""
    env = Environment(EVENT_DECLARATIONS)
    filters = {f.when: env.compile(f.when, where=f.name) for f in features if f.when}
    history: dict[tuple[str, Any], list[tuple[float, Any]]] = defaultdict(list)
    stateful = [f for f in features if f.stateful]
    latencies: list[float] = []
    started = time.perf_counter()
    for event in events:
        t0 = time.perf_counter()
        variables = event_variables(event)
        ts = event.occurred_at.timestamp()
        passes = {w: c.evaluate(variables) is True for w, c in filters.items()}
        for f in stateful:
            key = tuple(getattr(event, name) for name in f.entity_fields)
            if any(k is None for k in key):
                continue
            if f.when is None or passes[f.when]:
                value = event.amount if f.field == "amount" else (getattr(event, f.field) if f.field else 1)
                history[(f.name, key)].append((ts, value))
            start = ts - f.window_seconds
            window = [v for t, v in history[(f.name, key)] if start < t <= ts]
            if f.aggregate in ("sum", "avg", "min", "max"):
                sum((v for v in window if v is not None), Decimal(0))
            elif f.aggregate == "distinct":
                len(set(window))
            else:
                len(window)
        latencies.append(time.perf_counter() - t0)
    return len(events) / (time.perf_counter() - started), latencies


def run_offline(features: list[FeatureSpec], events: list[Any]) -> tuple[float, float]:
    """The bulk point-in-time path over the same events: (events per wall second, per CPU second)."""
    wall, cpu = time.perf_counter(), time.process_time()
    offline_features(events, features)
    return len(events) / (time.perf_counter() - wall), len(events) / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events in the stream (default 200000)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    args = parser.parse_args()
    n = 5_000 if args.quick else args.events
    features = specs()
    print(
        f"machine: {os.cpu_count()} cores; {len(features)} features; {n:,} events; 1-min load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    # a key space of about a million: 600k accounts, 300k devices, payees among the accounts, IPs
    events = parsed(make_events(n, seed=7, prefix="f", accounts=600_000, devices=300_000))
    rate, latencies, keys, _, cpu_rate = run_memory(features, events, trace=False)
    _, _, _, peak, _ = run_memory(features, events, trace=True)
    per_million = peak / max(keys, 1) * 1_000_000 / 2**20
    print(
        f"memory: {rate:,.0f} events/s ({cpu_rate:,.0f} per CPU-second), p50 {pct(latencies, 0.5) * 1000:.1f} µs, "
        f"p99 {pct(latencies, 0.99) * 1000:.1f} µs per event; {keys:,} keys held, "
        f"{peak / 2**20:,.0f} MiB traced peak ({per_million:,.0f} MiB per million keys)"
    )
    naive_n = min(n, 20_000)
    naive_rate, naive_latencies = run_naive(features, events[:naive_n])
    print(
        f"  baseline, naive rescan of each key's history ({naive_n:,} events): {naive_rate:,.0f} events/s, "
        f"p50 {pct(naive_latencies, 0.5) * 1000:.1f} µs, p99 {pct(naive_latencies, 0.99) * 1000:.1f} µs"
    )
    redis_n = min(n, 50_000)
    r_rate, r_latencies, pings, server_us, r_keys, r_bytes = run_redis(features, events[:redis_n])
    print(
        f"redis: {r_rate:,.0f} events/s, p50 {pct(r_latencies, 0.5) * 1000:.0f} µs, p99 "
        f"{pct(r_latencies, 0.99) * 1000:.0f} µs per event over loopback ({redis_n:,} events, one EVALSHA each, "
        f"{server_us:.0f} µs of it in Redis; PING p50 {pct(pings, 0.5) * 1000:.0f} µs); {r_keys:,} Redis keys, "
        f"used_memory +{r_bytes / 2**20:,.0f} MiB "
        f"({r_bytes / max(r_keys, 1) * 1_000_000 / 2**20:,.0f} MiB per million keys)"
    )
    offline_rate, offline_cpu = run_offline(features, events)
    print(
        f"offline: {offline_rate:,.0f} events/s ({len(features)} features, {n:,} events in bulk, the same stream; "
        f"{offline_cpu:,.0f} events per CPU-second over all threads); bench/features_offline.py measures 1 M events"
    )
    print(f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    print(
        "targets (issue 3): memory >= 50,000 events/s/core with 30 features; Redis p99 <= 2 ms per event; "
        "offline >= 200,000 events/s"
    )


if __name__ == "__main__":
    main()
