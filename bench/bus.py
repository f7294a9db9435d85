"""Event-bus benchmark: publish and consume throughput and end-to-end lag on Redis Streams and NATS
JetStream, next to the baseline without a bus (the same work called directly in process).

    .venv/bin/python bench/bus.py [--events 3000] [--nats nats://127.0.0.1:14222] [--redis redis://...]

First the decision path with and without the outbox rows (the bus's only cost there), then per bus:
- ``relay``: committed decisions published from the outbox (read events and decisions, publish, delete);
- ``fetch+ack``: messages consumed by a group member that does nothing but acknowledge them;
- ``flows``: the ``flows`` consumer from the bus (processed ids and effects in one SQLite transaction);
- ``end-to-end``: events decided one after another while the relay thread and a ``flows`` consumer thread
  run, and the time from each decision's commit to the end of its processing (p50/p99).
The baseline lines run the ``flows`` work called directly on the same messages (no bus), and for lag the
same work called right after each decision returns. CPU time (process_time) is printed beside wall
time, with the load average, because the development machine is shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bus_helpers import decide_all, transfers  # noqa: E402
from riskguard.app import RiskGuard  # noqa: E402
from riskguard.bus.consumers import FlowsConsumer  # noqa: E402
from riskguard.bus.runner import ConsumerRunner, decode  # noqa: E402
from riskguard.config import Settings  # noqa: E402
from riskguard.events.validate import parse_event_obj  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Clock:
    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rate(self, n: int) -> str:
        return f"{n / self.wall:,.0f}/s ({n / max(self.cpu, 1e-9):,.0f} per CPU-s)"


def settings_for(directory: str, name: str, kind: str, args: argparse.Namespace) -> Settings:
    tag = f"benchbus{os.getpid()}{kind}{name}"
    return Settings.from_env(
        environ={},
        database_url=f"sqlite:///{directory}/{name}-{kind}.db",
        bus_enabled=True,
        bus_backend=kind,
        redis_url=args.redis,
        bus_nats_url=args.nats,
        bus_prefix=tag,
        bus_nats_stream=tag.upper(),
        sqlite_synchronous="NORMAL",
        log_level="WARNING",
    )


def throughput(kind: str, directory: str, args: argparse.Namespace) -> None:
    n = args.events
    with RiskGuard(settings_for(directory, "tp", kind, args), background=False) as guard:
        bus = guard.bus_relay.bus
        bus.reset()
        try:
            decide_all(guard, transfers(n, accounts=997))
            with Clock() as relay:
                published = guard.bus_relay.drain(timeout=600)
            assert published == n
            print(f"  {kind:5s} relay (outbox -> bus)   {relay.rate(n)}")
            with Clock() as noop:
                got = 0
                while batch := bus.fetch("noop", "m", 500, 50):
                    bus.ack("noop", batch)
                    got += len(batch)
            print(f"  {kind:5s} fetch+ack              {noop.rate(got)}")
            runner = ConsumerRunner(guard.engine, bus, FlowsConsumer(guard), max_deliveries=5, batch=500, block_ms=50)
            with Clock() as flows:
                runner.run(threading.Event(), until_idle=True)
            print(f"  {kind:5s} flows consumer         {flows.rate(runner.processed)}")
            messages = []
            while batch := bus.fetch("probe", "p", 1000, 50):
                messages += [decode(d) for d in batch]
                bus.ack("probe", batch)
            direct = FlowsConsumer(guard)
            with Clock() as base:
                for start in range(0, len(messages), 500):
                    with guard.engine.begin() as connection:
                        direct.apply(connection, messages[start : start + 500])
                    direct.after(messages[start : start + 500])
            print(f"  {kind:5s} baseline: flows called directly on the same messages  {base.rate(len(messages))}")
        finally:
            bus.reset()


def write_path(directory: str, args: argparse.Namespace) -> None:
    """Decisions through the group-commit writer with the outbox rows and without the bus."""
    n = args.events
    for label, enabled in (("bus off (baseline)", False), ("bus on: outbox rows", True)):
        settings = settings_for(directory, f"write{int(enabled)}", "redis", args).with_(
            bus_enabled=enabled, bus_relay=False
        )
        with RiskGuard(settings, background=False) as guard:
            bodies = transfers(n, accounts=997, prefix="w")
            with Clock() as clock:
                decide_all(guard, bodies)
            print(f"  decisions, {label:22s} {clock.rate(n)}")


def end_to_end(kind: str, directory: str, args: argparse.Namespace) -> None:
    n = args.lag_events
    settings = settings_for(directory, "lag", kind, args).with_(bus_relay_poll_ms=50.0)
    with RiskGuard(settings, background=True) as guard:
        bus = guard.bus_relay.bus
        bus.reset()
        try:
            stop = threading.Event()
            runner = ConsumerRunner(guard.engine, bus, FlowsConsumer(guard), max_deliveries=5, batch=200, block_ms=20)
            thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
            thread.start()
            bodies = transfers(n, accounts=997, prefix="lag")
            with Clock() as clock:
                for body in bodies:
                    guard.decide(body)
                deadline = time.monotonic() + 120
                while runner.processed < n and time.monotonic() < deadline:
                    time.sleep(0.005)
            stop.set()
            thread.join(10)
            lags = runner.lags[-n:]
            print(
                f"  {kind:5s} end-to-end lag, decision committed -> processed: p50 {pct(lags, 0.5) * 1000:.1f} ms, "
                f"p99 {pct(lags, 0.99) * 1000:.1f} ms ({n} events at {clock.rate(n)})"
            )
        finally:
            bus.reset()


def baseline_lag(directory: str, args: argparse.Namespace) -> None:
    n = args.lag_events
    settings = Settings.from_env(
        environ={}, database_url=f"sqlite:///{directory}/base.db", sqlite_synchronous="NORMAL", log_level="WARNING"
    )
    with RiskGuard(settings, background=False) as guard:
        direct = FlowsConsumer(guard)
        lags = []
        from riskguard.bus.runner import Message

        for body in transfers(n, accounts=997, prefix="base"):
            decision = guard.decide(body)
            event = parse_event_obj(body, **guard.settings.event_limits)
            message = Message(event.event_id, event, {**decision, "decided_at": decision["decided_at"]}, time.time())
            with guard.engine.begin() as connection:
                direct.apply(connection, [message])
            direct.after([message])
            lags.append(time.time() - message.decided_at.timestamp())
        print(
            f"  baseline: flows called right after each decision (no bus): p50 {pct(lags, 0.5) * 1000:.1f} ms, "
            f"p99 {pct(lags, 0.99) * 1000:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--lag-events", type=int, default=500)
    parser.add_argument("--redis", default=os.environ.get("RISKGUARD_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--nats", default=os.environ.get("RISKGUARD_BUS_NATS_URL", "nats://127.0.0.1:14222"))
    args = parser.parse_args()
    print(f"event bus: {args.events} transfers, SQLite (synchronous=NORMAL); load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench_bus_") as directory:
        write_path(directory, args)
        for kind in ("redis", "nats"):
            throughput(kind, directory, args)
        for kind in ("redis", "nats"):
            end_to_end(kind, directory, args)
        baseline_lag(directory, args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory {peak:,.0f} MiB; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
