"""Decision hot-path benchmark on the starter strategy: figures, each next to a simple baseline from the same run.

1. In-process, one core: ``rg.pipeline.run`` on a realistic event mix (5,000 accounts, 3,000 devices, shared
   payees, event time advancing). Baseline: the same pipeline with one CEL call per rule instead of the combined
   ExpressionSet; the two alternate event by event, so both see the same feature state.
2. In-process, durably recorded (temporary SQLite file): ``rg.submit`` for N events, then wait on every ticket
   (group commit). Baseline: ``rg.decide`` one event at a time (a commit per decision). Peak RSS of the process.
3. HTTP: ``riskguard serve`` as a subprocess on 127.0.0.1 (fresh SQLite file, auth off), driven from a second
   process by a small asyncio HTTP/1.1 keep-alive client with C connections: POST /v1/decisions with unique
   event ids, bounded by a count and a time. Baseline: GET /healthz with the same client. Afterwards the number
   of decisions in the database must equal the number of 200 answers.

Run:  .venv/bin/python bench/decision.py [--events N] [--duration S] [--connections C] [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import cProfile
import dataclasses
import os
import pstats
import random
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import msgspec
import uvloop

TYPES = ("transfer", "payment", "login", "signup", "withdrawal", "device_bind", "loan_application", "complaint")
WEIGHTS = (30, 20, 25, 3, 8, 4, 5, 5)
REMARKS = ("房租", "午饭", "还钱", "转到安全账户 safe account", "理财 investment", "退款 refund", "刷单", "解冻 unlock")
CATEGORIES = ("grocery", "restaurant", "travel", "gift_card", "crypto_otc", "game_currency", "utilities")
COMPLAINTS = ("扣款有误", "服务态度差", "征信修复 代理", "全额退保", "credit repair please", "fee disputed")
Json = dict[str, Any]
TARGETS = "targets: in-process >= 5,000 decisions/s with p99 <= 2 ms; HTTP >= 1,500 decisions/s with p99 <= 50 ms"


def make_events(count: int, *, seed: int, prefix: str, accounts: int = 5000, devices: int = 3000) -> list[Json]:
    """A reproducible mix of valid events as JSON-ready dicts, ``occurred_at`` advancing ~0.5 s per event."""
    rng = random.Random(seed)
    payees = [f"acc-{rng.randrange(accounts):05d}" for _ in range(300)]  # shared payees, some popular (mules)
    clock = datetime(2025, 3, 1, 21, tzinfo=UTC) + timedelta(days=seed % 7)  # 05:00 in Shanghai: night, then day
    events = []
    for i in range(count):
        clock += timedelta(seconds=rng.expovariate(2.0))
        account = rng.randrange(accounts)
        kind = rng.choices(TYPES, WEIGHTS)[0]
        device = account % devices if rng.random() < 0.85 else rng.randrange(devices)
        event: dict[str, Any] = {
            "event_id": f"{prefix}-{i}",
            "type": kind,
            "occurred_at": clock.isoformat(),
            "account_id": f"acc-{account:05d}",
            "device_id": f"dev-{device:04d}",
            "ip": f"10.{account % 7}.{(account // 7) % 250}.{rng.randrange(1, 255) if rng.random() < 0.1 else 1}",
            "channel": rng.choice(("app", "web")),
        }
        if rng.random() < 0.6:
            event["phone"] = f"+86138{account:08d}"
        attributes: dict[str, Any] = {"account_age_days": rng.randrange(0, 3000)}
        if kind in ("transfer", "payment", "withdrawal", "loan_application"):
            event["amount"] = f"{min(rng.lognormvariate(6.5, 1.6), 900000):.2f}"
            event["currency"] = "CNY"
        if kind == "transfer":
            event["counterparty_id"] = payees[int(len(payees) * rng.random() ** 3)]
            attributes.update(on_call=rng.random() < 0.05, payee_name_matches=rng.random() < 0.95)
            if rng.random() < 0.3:
                attributes["remark"] = rng.choice(REMARKS)
        elif kind == "payment":
            event["merchant_id"] = f"mer-{rng.randrange(200):03d}"
            attributes.update(merchant_category=rng.choice(CATEGORIES), screen_sharing=rng.random() < 0.02)
            if rng.random() < 0.5:
                event["card_id"] = f"card-{account:05d}"
        elif kind == "withdrawal" and rng.random() < 0.7:
            event["card_id"] = f"card-{account:05d}"
        elif kind == "login":
            attributes.update(success=rng.random() < 0.85, emulator=rng.random() < 0.01)
        elif kind == "signup":
            attributes.update(emulator=rng.random() < 0.05, phone_carrier_type=rng.choice(("mno", "mno", "virtual")))
        elif kind == "device_bind":
            event["device_id"] = f"dev-{rng.randrange(devices):04d}"
        elif kind in ("loan_application", "complaint"):
            own = event.get("phone", "+8613700000000")
            attributes["contact_phone"] = f"+86139{rng.randrange(10**8):08d}" if rng.random() < 0.2 else own
            if kind == "complaint":
                attributes["text"] = rng.choice(COMPLAINTS)
        event["attributes"] = attributes
        events.append(event)
    return events


def parsed(events: list[Json]) -> list[Any]:
    from riskguard.events.validate import parse_event_obj

    return [parse_event_obj(e) for e in events]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


Row = tuple[str, float, float, float, str]  # name, per second, p50 ms, p99 ms, note


def bench_pipeline(rg: Any, warmup: list[Any], events: list[Any], profile: bool) -> tuple[list[Row], str]:
    from riskguard.rules.cel import EvalError

    live, shadow = rg.live, rg.shadow

    class PerRule(type(live.ruleset)):  # type: ignore[misc]
        """Baseline: the live rule set with ``evaluate`` replaced by one CEL call per rule."""

        def evaluate(self, activation: Any) -> list[bool | EvalError]:
            outcomes = [member.evaluate(activation) for member in self.members]
            return [o if isinstance(o, EvalError) else o is True for o in outcomes]

    per_rule = copy.copy(live.ruleset)
    per_rule.__class__ = PerRule
    baseline = dataclasses.replace(live, ruleset=per_rule)
    for event in warmup:  # feature state with history; not timed
        rg.pipeline.run(event, live, shadow)
    from riskguard.runtime import tune_gc

    tune_gc()  # as `riskguard serve` does after start-up
    times: tuple[list[float], list[float]] = ([], [])
    stages: dict[str, float] = {}
    fallbacks = live.ruleset.fallbacks
    profiler = cProfile.Profile()
    half = len(events) // 2
    for i, event in enumerate(events):  # first half combined, second half one call per rule (same history)
        combined = i < half
        strategy = live if combined else baseline
        if profile and combined:  # --profile: the combined path only
            profiler.enable()
        t0 = time.perf_counter()
        _, ctx = rg.pipeline.run(event, strategy, shadow)
        times[0 if combined else 1].append(time.perf_counter() - t0)
        profiler.disable()
        if any(d["reason"].startswith("failed") for d in ctx.degradations):  # never report a broken pipeline
            raise RuntimeError(f"a pipeline stage failed: {ctx.degradations}")
        if combined:
            for name, ms in ctx.timings.items():
                stages[name] = stages.get(name, 0.0) + ms
    if profile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    n = len(times[0])
    fell_back = (live.ruleset.fallbacks - fallbacks) / max(n, 1)
    breakdown = ", ".join(f"{k} {v / n * 1000:.0f}" for k, v in stages.items())
    rows = [
        (label, len(t) / sum(t), pct(t, 0.5), pct(t, 0.99), f"n={len(t)}")
        for label, t in zip(
            ("pipeline.run, combined ExpressionSet", "  baseline: one CEL call per rule"), times, strict=True
        )
    ]
    note = f"combined CEL call errored -> per-rule fallback on {fell_back:.0%} of events; stage µs: {breakdown}"
    return rows, note


def bench_durable(rg: Any, group: list[Any], single: list[Any], duration: float) -> tuple[list[Row], int]:
    nan = float("nan")
    t0 = time.perf_counter()
    tickets = [rg.submit(event).ticket for event in group]
    if not all(ticket.wait(60) and ticket.error is None for ticket in tickets):
        raise RuntimeError("a group-commit ticket failed or timed out")
    group_s = time.perf_counter() - t0
    lat: list[float] = []
    t0 = time.perf_counter()
    for event in single:
        t1 = time.perf_counter()
        rg.decide(event)
        lat.append(time.perf_counter() - t1)
        if t1 - t0 > duration:
            break
    single_s = time.perf_counter() - t0
    rows = [
        ("submit() x N, wait at end (group commit)", len(group) / group_s, nan, nan, f"n={len(group)}"),
        ("  baseline: decide() one at a time", len(lat) / single_s, pct(lat, 0.5), pct(lat, 0.99), f"n={len(lat)}"),
    ]
    return rows, len(group) + len(lat)


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head[9:12])


async def drive(port: int, requests: list[bytes], duration: float, connections: int) -> dict[str, Any]:
    """Sends ``requests`` in order over ``connections`` keep-alive connections until all are sent or time is up."""
    latencies: list[float] = []
    state = {"next": 0, "ok": 0, "errors": 0}
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            state["errors"] += 1
            return
        try:
            while state["next"] < len(requests) and time.perf_counter() < deadline:
                request = requests[state["next"]]
                state["next"] += 1
                t0 = time.perf_counter()
                writer.write(request)
                status = await asyncio.wait_for(read_response(reader), 30)
                latencies.append(time.perf_counter() - t0)
                state["ok" if status == 200 else "errors"] += 1
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            state["errors"] += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return {"elapsed": time.perf_counter() - t0, "latencies": latencies, "ok": state["ok"], "errors": state["errors"]}


def load_client(port: int, count: int, duration: float, connections: int, warmup: int) -> dict[str, Any]:
    """Runs in the second process: the /healthz baseline, then the decisions, each after a short warm-up."""
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)  # uvloop comes with uvicorn[standard]
    health = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    bodies = [msgspec.json.encode(e) for e in make_events(count + warmup, seed=7, prefix=f"h{os.getpid()}")]
    posts = [
        f"POST /v1/decisions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for body in bodies
    ]
    with runner:
        runner.run(drive(port, [health] * warmup, duration, connections))
        healthz = runner.run(drive(port, [health] * count, duration, connections))
        warm = runner.run(drive(port, posts[:warmup], duration, connections))
        decisions = runner.run(drive(port, posts[warmup:], duration, connections))
    decisions["ok_total"] = decisions["ok"] + warm["ok"]
    return {"healthz": healthz, "decisions": decisions}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_http(tmp: Path, count: int, duration: float, connections: int, warmup: int) -> tuple[list[Row], str]:
    port, db, log_path = free_port(), tmp / "http.db", tmp / "server.log"
    env = dict(os.environ, RISKGUARD_DATABASE_URL=f"sqlite:///{db}", RISKGUARD_AUTH="off")
    env["RISKGUARD_LOG_LEVEL"] = "WARNING"
    script = Path(sys.executable).parent / "riskguard"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "riskguard.cli.main"]
    with open(log_path, "wb") as log:
        server = subprocess.Popen([*command, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not come up:\n{log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            result = pool.submit(load_client, port, count, duration, connections, warmup).result(4 * duration + 300)
        status = Path(f"/proc/{server.pid}/status").read_text()
        hwm = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM")), "?")
        with closing(sqlite3.connect(db, timeout=30)) as connection:
            stored = connection.execute("SELECT count(*) FROM decisions").fetchone()[0]
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    labels = {"decisions": f"HTTP POST /v1/decisions, C={connections}", "healthz": "  baseline: GET /healthz"}
    rows: list[Row] = []
    for key, label in labels.items():
        r, lat = result[key], result[key]["latencies"]  # the rate counts 200 answers; latencies are of all answers
        rows.append(
            (label, r["ok"] / r["elapsed"], pct(lat, 0.5), pct(lat, 0.99), f"200={r['ok']} other={r['errors']}")
        )
    ok = result["decisions"]["ok_total"]
    check = "OK" if stored == ok else "MISMATCH"
    return rows, f"durable recording: {stored} decisions stored, {ok} 200 answers -> {check}; server peak RSS {hwm} kB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events per measurement (default 10000)")
    parser.add_argument("--duration", type=float, default=15.0, help="time bound in seconds per timed phase")
    parser.add_argument("--connections", type=int, default=32, help="concurrent HTTP connections (default 32)")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run of a few seconds")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the in-process pipeline")
    args = parser.parse_args()
    if args.quick:
        args.events, args.duration = min(args.events, 400), min(args.duration, 2.0)
    n, warmup = args.events, max(100, args.events // 3)
    from riskguard.app import RiskGuard
    from riskguard.config import Settings

    where = Path(sys.modules[RiskGuard.__module__].__file__ or "?").parent
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; riskguard from {where}")
    load = os.getloadavg()[0]
    print(f"events per measurement {n}; time bound {args.duration:g} s per phase; 1-min load {load:.2f}", flush=True)

    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="riskguard-bench-") as name:
        tmp = Path(name)
        stream = parsed(make_events(warmup + 2 * n + min(n, 2000), seed=1, prefix="b"))
        settings = Settings.from_env(database_url=f"sqlite:///{tmp / 'inprocess.db'}")
        rg = RiskGuard(settings, background=False)
        try:
            print("in-process pipeline ...", flush=True)
            section, note = bench_pipeline(rg, stream[:warmup], stream[warmup : warmup + n], args.profile)
            rows += section
            notes.append(note)
            print("in-process durable recording ...", flush=True)
            group, single = stream[warmup + n : warmup + 2 * n], stream[warmup + 2 * n :]
            section, recorded = bench_durable(rg, group, single, args.duration)
            rows += section
            with rg.engine.connect() as connection:
                stored = connection.exec_driver_sql("SELECT count(*) FROM decisions").scalar()
            notes.append(f"in-process durable recording: {stored} decisions stored of {recorded} recorded")
        finally:
            rg.close()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        notes.append(f"in-process peak RSS {peak:.0f} MiB (benchmark process, after the in-process sections)")
        print("HTTP ...", flush=True)
        section, note = bench_http(tmp, n, args.duration, args.connections, warmup=min(200, n // 4))
        rows += section
        notes.append(note)

    print(f"\n{'measurement':44} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8}  note")
    for label, rate, p50, p99, note in rows:
        p50_text, p99_text = (f"{v:8.3f}" if v == v else f"{'-':>8}" for v in (p50, p99))  # NaN: not measured
        print(f"{label:44} {rate:9,.0f} {p50_text} {p99_text}  {note}")
    print()
    for note in notes:
        print(note)
    print(f"{os.cpu_count()} cores; 1-min load average at the start {load:.2f} (other work skews the figures)")
    print(TARGETS)


if __name__ == "__main__":
    main()
