"""Graph benchmarks: refresh time and memory at 1 M and 10 M edges (with a baseline in the same run),
ring recovery per typology on simulated worlds, and YelpChi (``../shared/data/yelpchi``).

    python bench/graph.py                 # everything
    python bench/graph.py --only scale    # or: sim, yelpchi, refresh

Scale: a synthetic graph (accounts with their own phones, devices, cards, addresses in carrier NAT pools,
shops, and transfers, plus planted gangs of ten accounts sharing two devices and a phone) is written
straight into the link and flow tables, and the whole analysis (encoding, rings, association, dense
blocks, motifs; ``refresh.analyse``) is timed. Baseline: scipy connected components over the same links
(the least any graph job does). Each size runs in a fresh process, so that its peak RSS is its own.
Times are wall clock and CPU (user + system of all threads): other people's jobs share this machine, so
the wall time depends on the load (printed) and the CPU time is the steadier figure.

Refresh: the whole ``riskguard graph refresh`` path on a simulated world's events (``refresh_service``
into a fresh SQLite service): build from events, analysis, publishing the features, alerts, saving.
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
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

sys.path.insert(0, str(Path(__file__).parent))

from graph_data import read_reviews, spam_users, write_evaluation_files
from riskguard.graph.build import FLOW_SCHEMA, LINK_SCHEMA, EntityGraph
from riskguard.graph.gangs import score_rings
from riskguard.graph.refresh import analyse
from riskguard.graph.rings import find_rings


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def synthetic(edges: int, seed: int = 1) -> EntityGraph:
    rng = np.random.default_rng(seed)
    n = edges // 10  # about 8 links and 2 transfers per account
    now = 1_780_000_000_000
    kinds = {"device": 2, "ip": 3, "phone": 1, "card": 1, "merchant": 1}
    gang = np.arange(n) // 10  # gangs of ten among the first 1 % of the accounts
    in_gang = np.arange(n) < n // 100
    parts = []
    for kind, per in kinds.items():
        account = np.repeat(np.arange(n), per)
        if kind == "ip":
            value = np.where(rng.random(len(account)) < 0.5, account, n + rng.integers(0, n // 40, len(account)))
        elif kind == "merchant":
            value = rng.zipf(1.3, len(account)) % 50_000
        else:
            value = np.where(rng.random(len(account)) < 0.05, rng.integers(0, n, len(account)), account)
            if kind in ("device", "phone"):  # the gang's shared phones (devices) and phone number
                value = np.where(in_gang[account], 2 * n + 2 * gang[account] + np.arange(len(account)) % per, value)
        parts.append(
            pl.DataFrame({"a": account, "v": value}).select(
                ("acc-" + pl.col("a").cast(pl.String)).alias("account"),
                pl.lit(kind).alias("kind"),
                (kind + "-" + pl.col("v").cast(pl.String)).alias("value"),
                pl.lit("uses").alias("relation"),
                pl.lit(now - 86_400_000).alias("first_ms"),
                pl.lit(now).alias("last_ms"),
                pl.lit(1).alias("events"),
            )
        )
    links = pl.concat(parts).unique(["account", "kind", "value", "relation"]).cast(LINK_SCHEMA)
    m = edges - links.height
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    flows = (
        pl.DataFrame(
            {
                "src": ("acc-" + pl.Series(src).cast(pl.String)),
                "dst": ("acc-" + pl.Series(dst).cast(pl.String)),
                "relation": "transfer",
                "amount": pl.Series(rng.integers(100, 100_000, m)).cast(pl.Decimal(38, 8)),
                "ts_ms": now - rng.integers(0, 30 * 86_400_000, m),
                "event_id": pl.Series(np.arange(m)).cast(pl.String),
            }
        )
        .cast(FLOW_SCHEMA)
        .sort("ts_ms")
    )
    graph = EntityGraph()
    graph.links, graph.flows, graph.latest_ms = links, flows, now
    return graph


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def baseline(graph: EntityGraph) -> tuple[float, float]:
    wall, cpu = _clock()
    accounts = graph.links["account"].cast(pl.Categorical).to_physical().to_numpy()
    idents = (graph.links["kind"] + graph.links["value"]).cast(pl.Categorical).to_physical().to_numpy()
    n = int(accounts.max()) + int(idents.max()) + 2
    matrix = coo_matrix((np.ones(len(accounts)), (accounts, accounts.max() + 1 + idents)), shape=(n, n))
    connected_components(matrix, directed=False)
    return time.perf_counter() - wall, time.process_time() - cpu


def scale_one(edges: int) -> None:
    graph = synthetic(edges)
    load = os.getloadavg()[0]
    base_wall, base_cpu = baseline(graph)
    wall, cpu = _clock()
    result = analyse(graph)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"scale {graph.edges:,} edges ({graph.links.height:,} links, {graph.flows.height:,} transfers): "
        f"analysis {wall:.1f} s wall, {cpu:.1f} s CPU; steps (wall s) {result.timings}; "
        f"{result.rings.reported().height:,} rings; peak RSS {peak_gib():.2f} GiB; "
        f"baseline connected components {base_wall:.1f} s wall, {base_cpu:.1f} s CPU; "
        f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs",
        flush=True,
    )


def scale(sizes: list[int]) -> None:
    for edges in sizes:  # a fresh process per size: its peak RSS is its own
        subprocess.run([sys.executable, __file__, "--scale-one", str(edges)], check=True)


def simulated(seeds: tuple[int, ...] = (11, 5)) -> None:
    """Ring recovery per typology on two worlds (the seeds the ring thresholds were chosen on; the test
    suite checks a third, seed 31, that they were not)."""
    from riskguard.sim.config import TYPOLOGIES, WorldConfig
    from riskguard.sim.world import simulate
    from riskguard.sim.writer import read_events, write_world

    for seed in seeds:
        config = WorldConfig(accounts=50_000, days=21, seed=seed, intensity=dict.fromkeys(TYPOLOGIES, 20.0))
        with tempfile.TemporaryDirectory() as tmp:
            write_world(simulate(config), Path(tmp))
            started = time.perf_counter()
            graph = EntityGraph.from_events(read_events(Path(tmp)))
            rings = find_rings(graph)
            took = time.perf_counter() - started
            score = score_rings(rings, pl.read_parquet(Path(tmp) / "truth.parquet"))
        print(
            f"sim world seed {seed}, 50,000 accounts x 21 days, intensity 20: {graph.edges:,} edges, "
            f"build + rings {took:.1f} s"
        )
        for row in score["per_typology"]:
            print(
                f"  {row['typology']:<20} gangs {row['gangs']:>3} found {row['found']:>3} recall {row['recall']:.2f} "
                f"rings {row['rings']:>3} precision {row['precision']:.2f} coverage {row['coverage']:.2f}"
            )
        print(
            f"  all: precision {score['precision']:.3f} recall {score['recall']:.3f} "
            f"false rings {score['false_rings']}"
        )


def yelpchi() -> None:
    """Users of the YelpChi review graph ranked by each score of ``graph.user_item`` (directions fixed in
    docs/graph.md before measuring), under both label rules; then ``graph evaluate`` on five 40/10/50 %
    user splits (test users): the supervised model and the association from the training spammers."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from riskguard.graph.evaluate import evaluate, load_graph, render
    from riskguard.graph.user_item import unsupervised_scores

    reviews = read_reviews()
    users = reviews["user"].unique().sort()
    products = reviews["product"].unique().sort()
    u = reviews["user"].cast(pl.Enum(users.to_list())).to_physical().to_numpy().astype(np.int64)
    p = reviews["product"].cast(pl.Enum(products.to_list())).to_physical().to_numpy().astype(np.int64)
    scores = unsupervised_scores(u, p, len(users), len(products))
    scores["reviews per user (baseline)"] = np.bincount(u).astype(np.float64)
    print(f"yelpchi: {reviews.height:,} reviews, {len(users):,} users, {len(products)} products; ROC-AUC / AP")
    for rule in ("any", "majority"):
        spam = spam_users(reviews, rule)["label"].to_numpy()
        print(f"  label rule {rule!r} (spammers {spam.mean():.1%}); no labels used:")
        for name, score in scores.items():
            auc, ap = roc_auc_score(spam, score), average_precision_score(spam, score)
            print(f"    {name:<28} {auc:.4f} / {ap:.4f}")
        with tempfile.TemporaryDirectory() as tmp:
            paths = write_evaluation_files(Path(tmp), rule=rule)
            started = time.perf_counter()
            lines = render(evaluate(load_graph(paths["nodes"], paths["edges"], paths["splits"])))
        print(f"  graph evaluate (same splits, {time.perf_counter() - started:.1f} s):")
        for line in lines:
            print("   ", line)


def refresh(accounts: int, days: int) -> None:
    from riskguard.app import RiskGuard
    from riskguard.config import Settings
    from riskguard.graph.refresh import refresh_service
    from riskguard.sim.config import TYPOLOGIES, WorldConfig
    from riskguard.sim.world import simulate
    from riskguard.sim.writer import read_events, write_world

    config = WorldConfig(accounts=accounts, days=days, seed=11, intensity=dict.fromkeys(TYPOLOGIES, 5.0))
    with tempfile.TemporaryDirectory() as tmp:
        write_world(simulate(config), Path(tmp) / "world")
        events = read_events(Path(tmp) / "world")
        settings = Settings.from_env(environ={}, database_url=f"sqlite:///{tmp}/service.db")
        with RiskGuard(settings, background=False) as guard:
            wall, cpu = _clock()
            summary = refresh_service(guard, events=events, save_dir=Path(tmp) / "graph")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    edges = summary["links"] + summary["flows"]
    values = sum(summary["published"].values())
    print(
        f"refresh of a simulated world ({accounts:,} accounts x {days} days, {events.height:,} events): "
        f"{edges:,} edges, {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {peak_gib():.2f} GiB; "
        f"{values:,} feature values published, {summary['rings']} rings; steps (wall s) {summary['seconds']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["scale", "sim", "yelpchi", "refresh"])
    parser.add_argument("--world", default="100000x30", help="refresh: ACCOUNTSxDAYS of the simulated world")
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--scale-one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_one:
        scale_one(args.scale_one)
        return
    if args.only in (None, "yelpchi"):
        yelpchi()
    if args.only in (None, "sim"):
        simulated()
    if args.only in (None, "scale"):
        scale([int(s) for s in args.sizes.split(",")])
    if args.only in (None, "refresh"):
        accounts, days = (int(part) for part in args.world.split("x"))
        refresh(accounts, days)


if __name__ == "__main__":
    main()
