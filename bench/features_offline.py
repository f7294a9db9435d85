"""Offline feature benchmark: point-in-time features for every event of a simulated history, in bulk.

The 30 features of bench/features.py (the starter strategy's 26 plus min, max, avg and last_seen) over a
simulated world of about a million events (``riskguard simulate``'s events Parquet, written by a child
process so that this one's peak RSS is reading and computing only), through ``offline_features``: once
from the DataFrame in memory (best of ``--repeat``), once from the Parquet file. Baselines in the same
run: the definition (features/reference.py, a per-key scan in arrival order) on a prefix, and polars'
own ``rolling`` windows for the unfiltered count/sum/min/max/avg/distinct features, which window on event
time only (no arrival order, lateness, duplicates, buckets or filters: not the same values).

    .venv/bin/python bench/features_offline.py [--accounts 100000] [--days 11] [--world DIR] [--quick]

Prints ``offline: N events/s (30 features) ...`` and the baselines.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from features import specs  # the 30 features of the feature-engine benchmark
from riskguard.events.validate import parse_event_obj
from riskguard.features.offline import offline_features
from riskguard.features.reference import reference_values
from riskguard.features.spec import FeatureSpec
from riskguard.sim.writer import envelope, read_events

TARGET = 200_000  # events/s for 30 features (issue 3)


def make_world(out: Path, accounts: int, days: int) -> None:
    code = (
        "import sys; from pathlib import Path; from riskguard.sim.config import WorldConfig; "
        "from riskguard.sim.world import simulate; from riskguard.sim.writer import write_world; "
        f"write_world(simulate(WorldConfig(accounts={accounts}, days={days}, seed=7)), Path(sys.argv[1]))"
    )
    subprocess.run([sys.executable, "-c", code, str(out)], check=True)


def polars_rolling(frame: pl.DataFrame, features: list[FeatureSpec]) -> tuple[float, int]:
    """Seconds for polars ``rolling`` windows (event time, per entity) of the unfiltered features."""
    table = frame.with_columns(
        ts=pl.col("occurred_at").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us", time_zone="UTC"),
        units=(pl.col("amount").cast(pl.Decimal(20, 4)) * 10_000).cast(pl.Int64),
    )
    aggregates = {
        "count": lambda f: pl.len(),
        "sum": lambda f: pl.col("units").sum(),
        "min": lambda f: pl.col("units").min(),
        "max": lambda f: pl.col("units").max(),
        "avg": lambda f: pl.col("units").mean(),
        "distinct": lambda f: pl.col(f.field).n_unique(),
    }
    chosen = [f for f in features if f.stateful and f.when is None and f.aggregate in aggregates]
    started = time.perf_counter()
    for f in chosen:
        (entity,) = f.entity_fields
        part = table.filter(pl.col(entity).is_not_null()).sort(entity, "ts")
        part.rolling(index_column="ts", period=f"{f.window_seconds}s", group_by=entity).agg(
            aggregates[f.aggregate](f).alias(f.name)
        )
    return time.perf_counter() - started, len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=11, help="days simulated (11 x 100,000 accounts: ~1.06M events)")
    parser.add_argument("--world", type=Path, help="an existing `riskguard simulate` world to use instead")
    parser.add_argument("--repeat", type=int, default=2, help="in-memory runs; the best is reported")
    parser.add_argument("--prefix", type=int, default=5_000, help="events the reference baseline runs on")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    args = parser.parse_args()
    if args.quick:
        args.accounts, args.days, args.repeat, args.prefix = 3_000, 3, 1, 500
    features = specs()
    computed = sum(1 for f in features if f.aggregate != "published")  # published values are not reconstructed
    with tempfile.TemporaryDirectory(prefix="riskguard-bench-offline-") as scratch:
        world = args.world
        if world is None:
            world = Path(scratch) / "world"
            make_world(world, args.accounts, args.days)
        parquet = sorted((world / "events").glob("part-*.parquet"))
        frame = read_events(world)
        n = frame.height
        print(
            f"machine: {os.cpu_count()} cores; {computed} features; {n:,} events "
            f"({len(parquet)} Parquet file(s)); 1-min load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        best, best_cpu, peak = float("inf"), 0.0, 0.0
        for _ in range(args.repeat):
            started, cpu = time.perf_counter(), time.process_time()
            result = offline_features(frame, features)
            elapsed = time.perf_counter() - started
            assert result.height == n and result.width == computed + 1
            if elapsed < best:
                best, best_cpu = elapsed, time.process_time() - cpu
            peak = peak or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # after the first run
        keys = sum(frame.get_column(c).n_unique() for c in ("account_id", "device_id", "ip", "phone"))
        print(
            f"offline: {n / best:,.0f} events/s ({computed} features) over {n:,} events and about {keys:,} keys: "
            f"{best:.2f} s wall, {best_cpu:.2f} s CPU (all threads; {n / best_cpu:,.0f} events per CPU-second); "
            f"peak RSS {peak:,.0f} MiB ({before:,.0f} MiB with the history loaded, before computing)",
            flush=True,
        )
        started = time.perf_counter()
        offline_features(world, features)
        from_file = time.perf_counter() - started
        print(f"  from the Parquet file (reading included): {n / from_file:,.0f} events/s, {from_file:.2f} s")

    prefix = min(args.prefix, n)
    events = [parse_event_obj(envelope(r), max_future_skew_s=None) for r in frame.head(prefix).iter_rows(named=True)]
    started = time.perf_counter()
    reference_values(events, features)
    reference = time.perf_counter() - started
    print(
        f"  baseline, the definition (reference.py, per-key scan in arrival order) on the first {prefix:,} events: "
        f"{prefix / reference:,.0f} events/s"
    )
    seconds, count = polars_rolling(frame, features)
    print(
        f"  baseline, polars rolling windows (event time only; no arrival order, lateness, buckets or filters) for "
        f"the {count} unfiltered features: {n * count / computed / seconds:,.0f} events/s scaled to "
        f"{computed} features ({seconds:.2f} s for {count})"
    )
    print(f"target (issue 3): offline >= {TARGET:,} events/s for 30 features")


if __name__ == "__main__":
    main()
