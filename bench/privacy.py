"""Field encryption benchmark: what sealing personal data at rest costs, next to the same work without it.

1. Primitives, one core: ``seal`` / ``open`` / ``token`` of a phone number (AES-256-GCM, HMAC-SHA256), and the
   store's per-event work — ``seal_payload`` (decode, seal the personal fields, encode) and ``from_stored`` of
   the sealed payload — on bench/decision.py's event mix. Baseline: ``to_json`` / ``from_stored`` of the
   same events unsealed.
2. The durable decision path (temporary SQLite files, FULL sync): ``decide()`` one event at a time (a commit
   per decision) and ``submit()`` x N with one wait (group commit), with field encryption on and off, the
   two instances alternating event by event so both see the same machine load.

Prints throughput, p50/p99, CPU seconds, peak RSS and the load average.
Run:  .venv/bin/python bench/privacy.py [--events N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from decision import make_events, parsed, pct  # the event mix of bench/decision.py

Row = tuple[str, float, float, float]


def timed(fn: Any, items: list[Any]) -> tuple[float, list[float], float]:
    """(per second, latencies, CPU seconds) of ``fn`` over ``items``."""
    lat = []
    cpu = time.process_time()
    started = time.perf_counter()
    for item in items:
        t = time.perf_counter()
        fn(item)
        lat.append(time.perf_counter() - t)
    wall = time.perf_counter() - started
    return len(items) / wall, lat, time.process_time() - cpu


def primitives(n: int) -> list[Row]:
    from riskguard.events.schema import from_stored, to_json
    from riskguard.privacy import fields
    from riskguard.privacy.cipher import FieldCipher
    from riskguard.privacy.keyring import generate
    from riskguard.privacy.service import PrivacyService

    cipher = FieldCipher(generate())
    fields.register(cipher)
    service = PrivacyService.__new__(PrivacyService)  # the write path's helper without a database
    service.cipher, service.enabled = cipher, True
    phones = [f"+86138{i:08d}" for i in range(n)]
    sealed = [cipher.seal("phone", p) for p in phones]
    events = parsed(make_events(n, seed=7, prefix="p"))
    plain_payloads = [to_json(e).decode() for e in events]
    sealed_payloads = [service.seal_payload(p) for p in plain_payloads]
    rows: list[Row] = []
    for name, fn, items in (
        ("seal(phone)", lambda v: cipher.seal("phone", v), phones),
        ("open(phone)", cipher.open, sealed),
        ("token(phone)", lambda v: cipher.token("phone", v), phones),
        ("event: sealed_event_json", service.sealed_event_json, events),
        ("  baseline: to_json", lambda e: to_json(e).decode(), events),
        ("event: from_stored(sealed)", from_stored, sealed_payloads),
        ("  baseline: from_stored(plain)", from_stored, plain_payloads),
    ):
        rate, lat, _cpu = timed(fn, items)
        rows.append((name, rate, pct(lat, 0.5), pct(lat, 0.99)))
    share = sum(p.count('"enc1:') for p in sealed_payloads) / len(sealed_payloads)
    print(f"  sealed fields per event in this mix: {share:.2f}")
    return rows


def durable(n: int) -> list[Row]:
    from riskguard.app import RiskGuard
    from riskguard.config import Settings

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="privacy_bench_") as folder:
        guards = {
            "on": RiskGuard(
                Settings.from_env({}, database_url=f"sqlite:///{folder}/on.db", log_level="WARNING"), background=False
            ),
            "off": RiskGuard(
                Settings.from_env(
                    {}, database_url=f"sqlite:///{folder}/off.db", log_level="WARNING", field_encryption=False
                ),
                background=False,
            ),
        }
        try:
            events = parsed(make_events(n, seed=11, prefix="d"))
            lat: dict[str, list[float]] = {"on": [], "off": []}
            cpu = {"on": 0.0, "off": 0.0}
            for event in events:  # alternate: both see the same load
                for mode, guard in guards.items():
                    c, t = time.process_time(), time.perf_counter()
                    guard.decide(event)
                    lat[mode].append(time.perf_counter() - t)
                    cpu[mode] += time.process_time() - c
            for mode in ("on", "off"):
                label = "decide(), encryption on" if mode == "on" else "  baseline: decide(), encryption off"
                rows.append((label, len(lat[mode]) / sum(lat[mode]), pct(lat[mode], 0.5), pct(lat[mode], 0.99)))
                print(f"  {label.strip()}: CPU {cpu[mode] * 1e6 / n:.0f} us per decision")
            rates: dict[str, list[float]] = {"on": [], "off": []}
            for rep in range(3):  # alternating rounds; the best of each (the machine is shared)
                group = parsed(make_events(n, seed=12 + rep, prefix=f"g{rep}"))
                for mode in ("off", "on") if rep % 2 else ("on", "off"):
                    started = time.perf_counter()
                    tickets = [guards[mode].submit(event).ticket for event in group]
                    if not all(t.wait(60) and t.error is None for t in tickets):
                        raise RuntimeError("a group-commit ticket failed")
                    rates[mode].append(n / (time.perf_counter() - started))
            nan = float("nan")
            rows.append(("submit() x N, group commit, encryption on", max(rates["on"]), nan, nan))
            rows.append(("  baseline: the same, off", max(rates["off"]), nan, nan))
        finally:
            for guard in guards.values():
                guard.close()
    return rows


def show(title: str, rows: list[Row]) -> None:
    print(title)
    for name, rate, p50, p99 in rows:
        print(f"  {name:<45} {rate:>11,.0f}/s   p50 {p50:8.3f} ms   p99 {p99:8.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="events for the durable runs")
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    args = parser.parse_args()
    n_prim, n_durable = (2000, 300) if args.quick else (20000, args.events)
    started_cpu = time.process_time()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    show("1. primitives and per-event store work (one core)", primitives(n_prim))
    show(f"2. durable decision path, temporary SQLite, n={n_durable} each", durable(n_durable))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"CPU {time.process_time() - started_cpu:.1f} s, peak RSS {peak:.0f} MiB")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
