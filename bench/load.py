"""Load test of the decision tier: ``riskguard serve`` in a child process, driven from this one over
loopback, for the embedded default (SQLite + memory features, one worker; the baseline) and for 1, 2
and 4 workers on PostgreSQL + Redis, with the same event mix. Prints decisions/s, p50/p99 latency as
the client sees it, the CPU both sides used and the load average.

    .venv/bin/python bench/load.py                      # 3,000 decisions per configuration
    .venv/bin/python bench/load.py --events 1000 --configs embedded,pg1,pg2

Bounded: each configuration sends at most --events decisions and starts none after --seconds.
Needs PostgreSQL (RISKGUARD_TEST_POSTGRES_URL, default the local ``test`` database) and Redis
(RISKGUARD_TEST_REDIS_URL) for the pg* configurations; it uses a fresh schema and namespace and
drops them afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis
import sqlalchemy

from riskguard.features.redis_backend import clear_namespace
from riskguard.scale.loadgen import Service, drive, event_mix, installation, percentile

POSTGRES_URL = os.environ.get("RISKGUARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RISKGUARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CONFIGS = {"embedded": 1, "pg1": 1, "pg2": 2, "pg4": 4}


def _rss_mib(service: Service) -> float:
    from riskguard.scale.loadgen import _process_tree

    total = 0
    assert service.process is not None
    for pid in _process_tree(service.process.pid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def run(name: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    workers = CONFIGS[name]
    schema = namespace = None
    admin = None
    if name == "embedded":
        env, token = installation(f"sqlite:///{folder}/{name}.db", keyring_file=str(folder / f"{name}.keyring"))
    else:
        schema = "rg_load_" + uuid.uuid4().hex[:10]
        namespace = "load_" + uuid.uuid4().hex[:10]
        admin = sqlalchemy.create_engine(POSTGRES_URL)
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
        env, token = installation(
            f"{POSTGRES_URL}?options=-csearch_path%3D{schema}",
            keyring_file=str(folder / f"{name}.keyring"),
            feature_backend="redis",
            redis_url=REDIS_URL,
            feature_namespace=namespace,
        )
    try:
        service = Service(env, workers=workers, log_path=folder / f"{name}.log")
        started = time.perf_counter()
        service.start(timeout=300)
        startup = time.perf_counter() - started
        # warm-up: every worker has answered and compiled its hot paths before the clock starts
        drive(service.url, token, event_mix(args.warmup, prefix=f"warm-{name}", seed=1), concurrency=args.concurrency)
        events = event_mix(args.events, prefix=f"load-{name}", seed=7)
        load_before = os.getloadavg()[0]
        server_cpu = service.cpu_seconds()
        client_cpu = time.process_time()
        wall = time.perf_counter()
        results = drive(service.url, token, events, concurrency=args.concurrency, max_seconds=args.seconds)
        wall = time.perf_counter() - wall
        client_cpu = time.process_time() - client_cpu
        server_cpu = service.cpu_seconds() - server_cpu
        rss = _rss_mib(service)
        service.stop()
    finally:
        if admin is not None:
            with admin.begin() as connection:
                connection.execute(sqlalchemy.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()
        if namespace is not None:
            client = redis.Redis.from_url(REDIS_URL)
            clear_namespace(client, namespace)
            client.close()
    ok = [r.latency_s for r in results if r.status == 200]
    refused: dict[int, int] = {}
    for result in results:
        if result.status != 200:
            refused[result.status] = refused.get(result.status, 0) + 1
    return {
        "config": name,
        "workers": workers,
        "sent": len(results),
        "ok": len(ok),
        "per_s": len(ok) / wall if wall else 0.0,
        "p50_ms": percentile(ok, 0.50) * 1000,
        "p99_ms": percentile(ok, 0.99) * 1000,
        "server_cpu_s": server_cpu,
        "client_cpu_s": client_cpu,
        "per_server_cpu_s": len(ok) / server_cpu if server_cpu else 0.0,
        "rss_mib": rss,
        "startup_s": startup,
        "load": (load_before, os.getloadavg()[0]),
        "refused": refused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="decisions per configuration (at most)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit per configuration")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=300, help="decisions sent before measuring")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="embedded,pg1,pg2,pg4")
    args = parser.parse_args()
    names = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        sys.exit(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    cores = os.cpu_count()
    print(f"machine: {cores} cores; load average at start {os.getloadavg()[0]:.2f}")
    print(f"{args.events} decisions per configuration, {args.concurrency} in flight, same event mix\n")
    header = (
        f"{'configuration':<28}{'ok/sent':>11}{'decisions/s':>13}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'per srv CPU-s':>15}{'client CPU-s':>14}{'RSS MiB':>9}{'start s':>9}{'load':>12}"
    )
    print(header)
    labels = {
        "embedded": "embedded (SQLite + memory)",
        "pg1": "PostgreSQL + Redis, 1",
        "pg2": "PostgreSQL + Redis, 2",
        "pg4": "PostgreSQL + Redis, 4",
    }
    with tempfile.TemporaryDirectory(prefix="riskguard_load_") as tmp:
        for name in names:
            row = run(name, args, Path(tmp))
            print(
                f"{labels[name]:<28}{row['ok']:>5}/{row['sent']:<5}{row['per_s']:>13,.0f}{row['p50_ms']:>9.1f}"
                f"{row['p99_ms']:>9.1f}{row['per_server_cpu_s']:>15,.0f}{row['client_cpu_s']:>14.1f}"
                f"{row['rss_mib']:>9.0f}{row['startup_s']:>9.1f}{row['load'][0]:>6.1f}>{row['load'][1]:<5.1f}",
                flush=True,
            )
            if row["refused"]:  # 503: not recorded within the commit timeout (retry); 0: connection failed
                print(f"{'':<28}not answered 200: {row['refused']} (status: count)", flush=True)
    print(
        "\nper srv CPU-s: decisions per CPU-second the service used (all its processes); the client shares the"
        " same cores, so on a small machine more workers compete with the load generator and each other."
    )


if __name__ == "__main__":
    main()
