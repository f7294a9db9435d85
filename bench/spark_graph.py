"""The graph refresh's two graph-wide steps — ring components and the propagation score (association
risk) — in-process and on Spark ``local[N]``, on the synthetic graphs of ``bench/graph.py``.

    python bench/spark_graph.py                        # 1 M and 10 M edges, local[2]
    python bench/spark_graph.py --sizes 1000000 --master local[2] --memory 2g

Per size, in a fresh process: the in-process baseline (encoding and cleaning the graph, scipy connected
components of the ring-binding links, the association power iteration; ``graph/``) and then the same on
Spark (the graph read from its saved Parquet files as a cluster would, cleaned, components by min-label
propagation with pointer jumping, propagation by iterated joins; ``riskguard/spark``), with the results
checked equal. Wall time, CPU time (Python process, and the Spark JVM's from /proc), peak memory, the
Spark rounds, and the load average before and after. Batch jobs have no per-request latency: throughput
is edges per second of wall and of CPU time. The seeds are 200 of the planted gang accounts.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from graph import synthetic
from riskguard.config import Settings
from riskguard.graph.association import association_risk
from riskguard.graph.encode import encode
from riskguard.graph.rings import RingConfig
from riskguard.graph.view import binding_of


def jvm_stats(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system, every thread) and peak RSS (GiB) of the Spark JVM."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 2**20
    return cpu, peak


def progress(text: str) -> None:
    """A line as each phase ends (a bounded run that is stopped still says how far it got)."""
    print(f"  [{time.strftime('%H:%M:%S')}] {text}; load average {os.getloadavg()[0]:.1f}", flush=True)


def one(edges: int, master: str, memory: str, partitions: int) -> None:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = synthetic(edges)
    seeds = [(f"acc-{i}", int(graph.latest_ms or 0) - i * 3_600_000) for i in range(0, 2000, 10)]
    load_before = os.getloadavg()[0]
    config = RingConfig()

    wall, cpu = time.perf_counter(), time.process_time()
    view = binding_of(encode(graph), graph.config)
    ring_view = view.restrict(config.kinds)
    keep = (ring_view.degree[ring_view.col] >= config.min_shared) & ~ring_view.rotating
    n = ring_view.n_accounts + ring_view.n_idents
    rows, cols = ring_view.row[keep], ring_view.n_accounts + ring_view.col[keep]
    _, expected = connected_components(
        coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n)), directed=False
    )
    risk = association_risk(graph, seeds, view=view)
    local_wall, local_cpu = time.perf_counter() - wall, time.process_time() - cpu
    local_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    progress(f"{graph.edges:,} edges: in-process {local_wall:.1f} s wall, {local_cpu:.1f} s CPU")

    from riskguard.spark import graph as on_spark
    from riskguard.spark.session import spark_session

    settings = Settings.from_env(
        environ={}, spark_master=master, spark_driver_memory=memory, spark_shuffle_partitions=partitions
    )
    with tempfile.TemporaryDirectory(
        prefix="spark_graph_bench_", dir=os.environ.get("SPARK_LOCAL_DIRS", "/tmp")
    ) as tmp:
        graph.save(Path(tmp))
        started = time.perf_counter()
        spark = spark_session(settings, "riskguard-bench")
        session_s = time.perf_counter() - started
        pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
        jvm_cpu0, _ = jvm_stats(pid)
        wall, cpu = time.perf_counter(), time.process_time()
        links, flows = on_spark.read_saved(spark, tmp)
        prepared = on_spark.prepare(links, flows, graph.config, int(graph.latest_ms or 0))
        prepare_s = time.perf_counter() - wall
        progress(f"Spark prepare {prepare_s:.1f} s wall, JVM CPU {jvm_stats(pid)[0] - jvm_cpu0:.1f} s")
        labels, rounds = on_spark.ring_components(prepared, config)
        got = on_spark.to_ring_labels(ring_view, labels, prepared)
        components_s = time.perf_counter() - wall - prepare_s
        progress(
            f"Spark components {components_s:.1f} s wall, {rounds} rounds, JVM CPU {jvm_stats(pid)[0] - jvm_cpu0:.1f} s"
        )
        spark_risk, iterations = on_spark.association_scores(prepared, seeds)
        got_risk = on_spark.to_risk(spark_risk, view)
        spark_wall, spark_cpu = time.perf_counter() - wall, time.process_time() - cpu
        jvm_cpu1, jvm_peak = jvm_stats(pid)
        spark.stop()
    equal = np.array_equal(got, expected)
    difference = float(np.abs(got_risk["risk"].to_numpy() - risk["risk"].to_numpy()).max())
    total_edges = graph.edges
    spark_cpu_all = spark_cpu + (jvm_cpu1 - jvm_cpu0)
    print(
        f"{total_edges:,} edges ({graph.links.height:,} links, {graph.flows.height:,} transfers; "
        f"{int(keep.sum()):,} ring-binding links, {len(np.unique(expected[np.unique(rows)])):,} components):\n"
        f"  in-process (baseline): {local_wall:.1f} s wall, {local_cpu:.1f} s CPU, "
        f"{total_edges / local_wall:,.0f} edges/s ({total_edges / max(local_cpu, 1e-9):,.0f} per CPU-second), "
        f"peak RSS {local_peak:.2f} GiB\n"
        f"  Spark {master}: {spark_wall:.1f} s wall (prepare {prepare_s:.1f}, components {components_s:.1f} in "
        f"{rounds} rounds, propagation {spark_wall - prepare_s - components_s:.1f} in {iterations} iterations), "
        f"{spark_cpu_all:.1f} s CPU (JVM {jvm_cpu1 - jvm_cpu0:.1f}, Python {spark_cpu:.1f}), "
        f"{total_edges / spark_wall:,.0f} edges/s ({total_edges / max(spark_cpu_all, 1e-9):,.0f} per CPU-second); "
        f"session start {session_s:.1f} s; JVM peak RSS {jvm_peak:.2f} GiB (driver memory {memory})\n"
        f"  equal: components {equal}, risk max difference {difference:.1e}; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--memory", default="3g", help="Spark driver memory (local mode: also the executors')")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.master, args.memory, args.partitions)
        return
    for size in (int(s) for s in args.sizes.split(",")):  # a fresh process per size: its own peak memory
        subprocess.run(
            [sys.executable, __file__, "--one", str(size), "--master", args.master, "--memory", args.memory,
             "--partitions", str(args.partitions)],
            check=True,
        )  # fmt: skip


if __name__ == "__main__":
    main()
