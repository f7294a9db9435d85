"""World simulator benchmark: events generated per second and peak memory, at 100k and 1M accounts.

Each size runs in a fresh child process (so each peak RSS is that run's alone): ``simulate`` (population,
legitimate traffic, every typology's gangs, settled balances) and ``write_world`` (the Parquet files),
timed apart. Baseline, measured in the same child on the same row count: polars writing a plain table of
15 random int64 columns (the floor under the event writer, which formats the same rows into API strings
and a JSON attributes object).

Run:  .venv/bin/python bench/simulate.py [--sizes 100000,1000000] [--days 30] [--days-large D] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(accounts: int, days: int, seed: int) -> dict[str, float]:
    """Runs in the child: one world, timed, and the baseline."""
    import numpy as np
    import polars as pl

    from riskguard.sim.config import WorldConfig
    from riskguard.sim.world import simulate
    from riskguard.sim.writer import write_world

    config = WorldConfig(accounts=accounts, days=days, seed=seed)
    with tempfile.TemporaryDirectory(prefix="riskguard-bench-sim-") as name:
        out = Path(name)
        t0 = time.perf_counter()
        world = simulate(config)
        t1 = time.perf_counter()
        summary = write_world(world, out / "world")
        t2 = time.perf_counter()
        events = len(world.events)
        del world
        size = sum(p.stat().st_size for p in (out / "world").rglob("*") if p.is_file())
        rss_world = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rng = np.random.default_rng(0)
        step = config.part_rows
        t3 = time.perf_counter()
        for part, start in enumerate(range(0, events, step)):
            rows = min(step, events - start)
            frame = pl.DataFrame({f"c{i}": rng.integers(0, 1 << 40, rows) for i in range(15)})
            frame.write_parquet(out / f"floor-{part}.parquet", compression="zstd", compression_level=3)
        t4 = time.perf_counter()
    return {
        "accounts": accounts,
        "days": days,
        "events": events,
        "fraud_events": summary["fraud_events"],
        "simulate_s": t1 - t0,
        "write_s": t2 - t1,
        "floor_write_s": t4 - t3,
        "bytes": size,
        "peak_rss_mib": rss_world,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="accounts per run, comma-separated")
    parser.add_argument("--days", type=int, default=30, help="days simulated (default 30)")
    parser.add_argument(
        "--days-large",
        type=int,
        default=None,
        help="days for runs of 1M accounts or more (default: --days); shorten if a run is too long",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20k accounts, 7 days")
    parser.add_argument("--child", nargs=3, type=int, metavar=("ACCOUNTS", "DAYS", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(*args.child)))
        return
    sizes = [20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    days = 7 if args.quick else args.days
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; 1-min load {os.getloadavg()[0]:.2f}")
    rows = []
    for accounts in sizes:
        run_days = args.days_large if (args.days_large and accounts >= 1_000_000) else days
        print(f"running {accounts:,} accounts x {run_days} days ...", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(accounts), str(run_days), str(args.seed)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))

    print(
        f"\n{'accounts':>10} {'days':>5} {'events':>12} {'fraud':>8} {'simulate s':>11} {'write s':>8} "
        f"{'total s':>8} {'events/s':>10} {'gen only/s':>11} {'floor write s':>14} {'peak RSS MiB':>13} {'MB':>7}"
    )
    for r in rows:
        total = r["simulate_s"] + r["write_s"]
        print(
            f"{r['accounts']:>10,} {r['days']:>5} {r['events']:>12,} {r['fraud_events']:>8,} {r['simulate_s']:>11.1f} "
            f"{r['write_s']:>8.1f} {total:>8.1f} {r['events'] / total:>10,.0f} {r['events'] / r['simulate_s']:>11,.0f} "
            f"{r['floor_write_s']:>14.1f} {r['peak_rss_mib']:>13,.0f} {r['bytes'] / 1e6:>7,.0f}"
        )
    print("events/s: generated and written (end to end); gen only/s: simulate() alone (arrays in memory)")
    print("floor write s: baseline, polars writing the same row count as 15 random int64 columns (same child)")
    print("peak RSS: the child process's maximum resident set (simulate and write; the baseline runs after)")


if __name__ == "__main__":
    main()
