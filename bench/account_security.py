"""Account-security benchmarks: the decision latency the takeover features and the takeover-sequence stage
add, and the breached-password range API's requests per second — each next to a baseline from the same run.

    python bench/account_security.py [--events N] [--hashes N] [--requests N] [--connections C] [--quick]

1. Decision latency: ``RiskGuard.pipeline.run`` (features, lists, device, accountsec, model, rules, shadow;
   no database write) on a mixed login / change / transfer stream over 3,000 accounts with stuffing bursts
   and takeovers in it, with the starter strategy as shipped; baseline: the same strategy without the four
   takeover features and the nine account-security rules, and the ``accountsec`` stage taken out of the
   pipeline. The two pipelines alternate event by event. Added latency = with minus without, wall and
   thread CPU time, and the stage's own time.
2. Range API: a corpus of N SHA-1 hashes spread ~800 to a prefix (the real corpus's density) imported with
   ``riskguard breach import`` code (rows/s); then ``corpus.range`` + ``render_range`` in process (plain
   and padded) against a full-scan lookup (the same table with the prefix not used as an index key:
   ``WHERE prefix || suffix LIKE 'ABCDE%'``), and ``GET /v1/breach/range/{prefix}`` over HTTP against
   ``riskguard serve`` (a subprocess, auth off) from a second process with C keep-alive connections, next to
   ``GET /healthz`` from the same client.
3. Detection on a simulated world with stuffing bursts and takeovers (the simulator's takeover success rate
   raised to 15 % so that there are enough takeovers to count): stuffing logins recognised, drains stopped,
   and the friction on legitimate logins.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

from riskguard.scale.loadgen import Service

sys.path.insert(0, str(Path(__file__).parent))
from decision import drive  # the HTTP load client of bench/decision.py

T0 = datetime(2026, 11, 1, tzinfo=UTC)
TAKEOVER_FEATURES = {
    "device_failed_logins_10m",
    "ip_failed_accounts_10m",
    "account_idle_s",
    "account_device_events_90d",
}
ACCOUNTSEC_RULES = {
    "stuffing_ip_accounts",
    "stuffing_device",
    "dormant_account_new_device",
    "takeover_sequence_drain",
    "takeover_sequence_phone_changed",
    "takeover_credential_change_new_device",
    "leaked_account_money_out",
    "leaked_account_change",
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def event_stream(n: int, seed: int = 5) -> list[dict[str, Any]]:
    """Logins (3 % failing), transfers, password and phone changes, device binds of 3,000 accounts on their
    own phones; every 500 events a stuffing burst (40 failed logins over 40 accounts from one IP) and a
    takeover (login on a new device, bind, password change, drain)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    t = T0
    i = 0

    def add(kind: str, account: str, device: str, ip: str, **extra: Any) -> None:
        nonlocal i
        i += 1
        body = {
            "event_id": f"b{i}",
            "type": kind,
            "occurred_at": t.isoformat(),
            "account_id": account,
            "device_id": device,
            "ip": ip,
        } | extra
        if kind == "transfer":
            body |= {"currency": "CNY", "counterparty_id": f"payee-{rng.randrange(2000)}"}
        out.append(body)

    while len(out) < n:
        t += timedelta(seconds=rng.randint(1, 20))
        a = rng.randrange(3000)
        account, device, ip = f"acc-{a}", f"dev-{a}", f"10.{a // 250}.{a % 250}.1"
        roll = rng.random()
        if roll < 0.5:
            add("login", account, device, ip, attributes={"success": rng.random() > 0.03})
        elif roll < 0.9:
            add("transfer", account, device, ip, amount=f"{rng.randint(10, 3000)}.00")
        elif roll < 0.95:
            add("password_change", account, device, ip)
        elif roll < 0.98:
            add("profile_change", account, device, ip, attributes={"field": rng.choice(["phone", "nickname"])})
        else:
            add("device_bind", account, device, ip)
        if len(out) % 500 == 0:
            burst_ip = f"203.0.113.{rng.randrange(250)}"
            for k in range(40):
                add("login", f"acc-{rng.randrange(3000)}", f"gang-{k % 3}", burst_ip, attributes={"success": False})
            victim = f"acc-{rng.randrange(3000)}"
            add("login", victim, "gang-0", burst_ip, attributes={"success": True})
            add("device_bind", victim, "gang-0", burst_ip)
            add("password_change", victim, "gang-0", burst_ip)
            add("transfer", victim, "gang-0", burst_ip, amount="9000.00")
    return out


def baseline_strategy(source: str) -> str:
    document = yaml.safe_load(source)
    document["name"] = "starter_without_accountsec"
    document["features"] = [f for f in document["features"] if f["name"] not in TAKEOVER_FEATURES]
    document["rules"] = [r for r in document["rules"] if r["id"] not in ACCOUNTSEC_RULES]
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def bench_latency(tmp: Path, n: int, warmup: int) -> None:
    from riskguard.app import RiskGuard
    from riskguard.config import Settings
    from riskguard.events.validate import parse_event_obj

    events = [parse_event_obj(b, max_future_skew_s=10**10) for b in event_stream(n + warmup)]
    with_guard = RiskGuard(Settings.from_env(environ={}, database_url=f"sqlite:///{tmp}/with.db"), background=False)
    without = RiskGuard(Settings.from_env(environ={}, database_url=f"sqlite:///{tmp}/without.db"), background=False)
    source = Path(with_guard.settings.starter_strategy).read_text(encoding="utf-8")
    without.publish(baseline_strategy(source), actor="bench")
    without.pipeline.stages = [s for s in without.pipeline.stages if s.name != "accountsec"]
    guards = {"with": with_guard, "without": without}
    wall: dict[str, list[float]] = {"with": [], "without": []}
    cpu: dict[str, list[float]] = {"with": [], "without": []}
    stage: list[float] = []
    fired = 0
    for k, event in enumerate(events):
        for name, guard in guards.items():
            live, shadow = guard.live, guard.shadow
            assert live is not None
            c0, w0 = time.thread_time(), time.perf_counter()
            body, ctx = guard.pipeline.run(event, live, shadow)
            w1, c1 = time.perf_counter(), time.thread_time()
            if k >= warmup:
                wall[name].append((w1 - w0) * 1000)
                cpu[name].append((c1 - c0) * 1000)
                if name == "with":
                    stage.append(ctx.timings.get("accountsec", 0.0))
                    fired += any(r["rule"] in ACCOUNTSEC_RULES for r in body["reasons"])
    print(f"\n1. decision latency, {n} events after {warmup} warm-up (pipeline.run, no database write), one thread")
    print(f"   {'':44} {'p50 ms':>8} {'p99 ms':>8} {'CPU p50':>8} {'CPU p99':>8}")
    for name, label in (("with", "starter + takeover features + accountsec"), ("without", "  baseline: without them")):
        print(
            f"   {label:44} {pct(wall[name], 0.5):8.3f} {pct(wall[name], 0.99):8.3f} "
            f"{pct(cpu[name], 0.5):8.3f} {pct(cpu[name], 0.99):8.3f}"
        )
    print(
        f"   added: p50 {pct(wall['with'], 0.5) - pct(wall['without'], 0.5):+.3f} ms wall, "
        f"{pct(cpu['with'], 0.5) - pct(cpu['without'], 0.5):+.3f} ms CPU; p99 "
        f"{pct(wall['with'], 0.99) - pct(wall['without'], 0.99):+.3f} ms wall; "
        f"accountsec stage alone p50 {pct(stage, 0.5) * 1000:.1f} us, p99 {pct(stage, 0.99) * 1000:.1f} us"
    )
    print(
        f"   events where an account-security rule fired: {fired} of {n}; "
        f"takeover states held: {with_guard.accountsec.sequences.accounts():,}"
    )
    with_guard.close()
    without.close()


def corpus_rows(hashes: int, per_prefix: int, seed: int = 9) -> tuple[list[str], Any]:
    rng = random.Random(seed)
    prefixes = sorted({f"{rng.getrandbits(20):05X}" for _ in range(max(1, hashes // per_prefix) * 2)})
    prefixes = prefixes[: max(1, hashes // per_prefix)]

    def rows() -> Any:
        for k in range(hashes):
            yield prefixes[k % len(prefixes)], f"{rng.getrandbits(140):035X}", rng.randint(1, 50_000)

    return prefixes, rows()


def range_client(port: int, prefixes: list[str], count: int, connections: int) -> dict[str, Any]:
    import uvloop

    rng = random.Random(3)
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    host = f"Host: 127.0.0.1:{port}\r\n"
    health = f"GET /healthz HTTP/1.1\r\n{host}\r\n".encode()
    ranges = [f"GET /v1/breach/range/{rng.choice(prefixes)} HTTP/1.1\r\n{host}\r\n".encode() for _ in range(count)]
    padded = [
        f"GET /v1/breach/range/{rng.choice(prefixes)} HTTP/1.1\r\n{host}Add-Padding: true\r\n\r\n".encode()
        for _ in range(count)
    ]
    with runner:
        runner.run(drive(port, [health] * 200 + ranges[:200], 30, connections))
        out = {
            "healthz": runner.run(drive(port, [health] * count, 60, connections)),
            "range": runner.run(drive(port, ranges, 60, connections)),
            "padded": runner.run(drive(port, padded, 60, connections)),
        }
    return out


def bench_range(tmp: Path, hashes: int, requests: int, connections: int) -> None:
    from sqlalchemy import text

    from riskguard.accountsec.breach import render_range
    from riskguard.app import RiskGuard
    from riskguard.config import Settings

    db = tmp / "breach.db"
    guard = RiskGuard(Settings.from_env(environ={}, database_url=f"sqlite:///{db}"), background=False)
    prefixes, rows = corpus_rows(hashes, 800)
    c0, w0 = time.process_time(), time.perf_counter()
    imported = guard.accountsec.corpus.import_rows(rows)
    w1, c1 = time.perf_counter(), time.process_time()
    print(f"\n2. breached-password range API, corpus of {imported.hashes:,} hashes over {len(prefixes):,} prefixes")
    print(
        f"   import: {imported.hashes / (w1 - w0):,.0f} hashes/s wall ({w1 - w0:.1f} s, {c1 - c0:.1f} s CPU); "
        f"re-import is the same upsert"
    )
    rng = random.Random(4)
    corpus = guard.accountsec.corpus
    pad_to = guard.settings.breach_padding_lines
    for label, pad in (("in process: range_text", False), ("in process: padded to 1000 lines", True)):
        lat: list[float] = []
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(requests):
            t = time.perf_counter()
            prefix = rng.choice(prefixes)
            body = render_range(corpus.range(prefix), pad=True, pad_to=pad_to) if pad else corpus.range_text(prefix)
            lat.append((time.perf_counter() - t) * 1000)
        w1, c1 = time.perf_counter(), time.process_time()
        print(
            f"   {label:38} {requests / (w1 - w0):>9,.0f} req/s  p50 {pct(lat, 0.5):.3f} ms"
            f"  p99 {pct(lat, 0.99):.3f} ms"
            f"  ({requests / (c1 - c0):,.0f} per CPU-s; {len(body):,} bytes)"
        )
    scans = max(3, requests // 500)
    with guard.engine.connect() as connection:
        w0 = time.perf_counter()
        for _ in range(scans):
            p = rng.choice(prefixes)
            connection.execute(
                text("SELECT suffix, count FROM breach_hashes WHERE prefix || suffix LIKE :p"), {"p": p + "%"}
            ).fetchall()
        w1 = time.perf_counter()
    print(
        f"   {'  baseline: full-scan lookup':38} {scans / (w1 - w0):>9,.1f} req/s"
        f"  ({(w1 - w0) / scans * 1000:.0f} ms each)"
    )
    guard.close()

    service = Service(
        {"RISKGUARD_DATABASE_URL": f"sqlite:///{db}", "RISKGUARD_AUTH": "off", "RISKGUARD_LOG_LEVEL": "WARNING"},
        log_path=tmp / "server.log",
    )
    with service:
        assert service.process is not None
        port = service.port
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            result = pool.submit(range_client, port, prefixes, requests, connections).result(600)
        status = Path(f"/proc/{service.process.pid}/status").read_text()
        hwm = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM")), "?")
    labels = {
        "range": f"HTTP GET /v1/breach/range, C={connections}",
        "padded": "HTTP, Add-Padding: true",
        "healthz": "  baseline: GET /healthz",
    }
    for key, label in labels.items():
        r = result[key]
        lat = [x * 1000 for x in r["latencies"]]
        print(
            f"   {label:38} {r['ok'] / r['elapsed']:>9,.0f} req/s  p50 {pct(lat, 0.5):.2f} ms"
            f"  p99 {pct(lat, 0.99):.2f} ms"
            f"  (200: {r['ok']}, other: {r['errors']})"
        )
    print(f"   server peak RSS {int(hwm) // 1024 if hwm.isdigit() else hwm} MiB")


def bench_world(tmp: Path, accounts: int, days: int, seed: int) -> None:
    """Detection on a simulated world (riskguard.sim) with stuffing bursts and takeovers only."""
    import polars as pl

    from riskguard.app import RiskGuard
    from riskguard.config import Settings
    from riskguard.sim import takeover
    from riskguard.sim.config import TYPOLOGIES, WorldConfig
    from riskguard.sim.stream import InProcessTarget
    from riskguard.sim.world import simulate
    from riskguard.sim.writer import envelope, read_events, write_world

    takeover.SUCCESS_RATE = 0.15  # more takeovers per burst than the default 2 %, to count them
    config = WorldConfig(
        accounts=accounts, days=days, seed=seed, intensity={**dict.fromkeys(TYPOLOGIES, 0.0), "account_takeover": 1.0}
    )
    write_world(simulate(config), tmp / "world")
    events = read_events(tmp / "world")
    labels = pl.read_parquet(tmp / "world" / "labels.parquet").filter(pl.col("label_kind") == "event")
    roles = dict(zip(labels["event_id"], labels["role"], strict=True))
    types = dict(zip(events["event_id"], events["type"], strict=True))
    decided: dict[str, Any] = {}
    with RiskGuard(Settings.from_env(environ={}, database_url=f"sqlite:///{tmp}/world.db"), background=False) as guard:
        InProcessTarget(guard).stream(
            (envelope(row) for row in events.iter_rows(named=True)), lambda d: decided.__setitem__(d.event_id, d)
        )
    stuffing = [d for e, d in decided.items() if roles.get(e) == "stuffing_login"]
    drains = [d for e, d in decided.items() if roles.get(e) == "drain"]
    legit = [d for e, d in decided.items() if e not in roles]
    logins = [d for d in legit if types[d.event_id] == "login"]
    stuffing_rules = {"stuffing_ip_accounts", "stuffing_device", "credential_stuffing_ip"}
    print(f"\n3. simulated world: {accounts:,} accounts x {days} days, seed {seed}, {len(decided):,} events")
    print(
        f"   stuffing logins recognised (a stuffing rule fired): "
        f"{sum(bool(stuffing_rules & set(d.rules)) for d in stuffing)} of {len(stuffing)}"
    )
    print(
        f"   drain transfers/withdrawals stopped (not allowed): {sum(d.decision != 'allow' for d in drains)} of "
        f"{len(drains)}; with the ordered sequence rule: {sum('takeover_sequence_drain' in d.rules for d in drains)}"
    )
    print(
        f"   legitimate logins not allowed: {sum(d.decision != 'allow' for d in logins)} of {len(logins)} "
        f"({sum(d.decision != 'allow' for d in logins) / max(1, len(logins)):.2%}); legitimate events where an "
        f"account-security rule fired: {sum(bool(ACCOUNTSEC_RULES & set(d.rules)) for d in legit)} of {len(legit)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.events, args.hashes, args.requests = 600, 40_000, 300
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; 1-min load {os.getloadavg()[0]:.2f}")
    c0, w0 = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="acctsec_bench_") as scratch:
        bench_latency(Path(scratch), args.events, max(300, args.events // 5))
        bench_range(Path(scratch), args.hashes, args.requests, args.connections)
        bench_world(Path(scratch), 1000 if args.quick else 3000, 2, 21)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nwhole run: {time.perf_counter() - w0:.1f} s wall, {time.process_time() - c0:.1f} s CPU;"
        f" peak RSS {peak:.0f} MiB;"
        f" 1-min load at the end {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
