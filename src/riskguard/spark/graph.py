"""The graph refresh's two graph-wide iterative steps on Spark: ring components and the propagation score.

Input: the graph's link and flow tables (``graph/build.py``) as Spark DataFrames — read from the Parquet
files ``EntityGraph.save`` writes (``links.parquet``, ``flows.parquet``), or sent from an in-memory graph.
The cleaning of ``graph/view.py`` is mirrored with DataFrame operations (attack tools and compromised
accounts, one entry per account–identifier pair, hub cut, rarity weights, rotating addresses); then

- ``ring_components``: connected components of the ring-binding links (``rings._components`` before its
  community split), by ``components.py``;
- ``association_scores``: the propagation score ``graph.risk`` of ``graph/association.py``, by
  ``propagation.py``.

Nodes get integer ids in Spark (accounts ``>= 0``, identifiers ``< 0``), fixed by a checkpoint because
``monotonically_increasing_id`` is only stable within one computation. Nothing collects the graph to the
driver; only the results come back (``to_ring_labels`` and ``to_risk`` turn them into what the in-process
refresh uses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from riskguard.graph.build import DAY_MS, KINDS, EntityGraph, GraphConfig
from riskguard.graph.rings import RingConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from riskguard.graph.view import Bipartite

LOGIN_KINDS = ("device", "ip")


@dataclass
class SparkGraph:
    """The binding links and node ids of a graph on Spark.

    ``binding``: ``account, kind, value, a, v, weight, last_ms, degree, rotating`` (``a``: the account's
    node id, ``v``: the identifier's); ``accounts``: ``account, a`` for every account of the graph;
    ``idents``: ``kind, value, v``; ``flows``: the flow table with ``a_src``, ``a_dst``."""

    binding: DataFrame
    accounts: DataFrame
    idents: DataFrame
    flows: DataFrame
    latest_ms: int


def frames_of(spark: SparkSession, graph: EntityGraph) -> tuple[DataFrame, DataFrame]:
    """An in-memory graph's links and flows as Spark DataFrames (through Arrow; amounts as text, exact)."""
    links = spark.createDataFrame(graph.links.to_arrow())
    flows = spark.createDataFrame(graph.flows.with_columns(pl.col("amount").cast(pl.String)).to_arrow())
    return links, flows


def read_saved(spark: SparkSession, directory: str) -> tuple[DataFrame, DataFrame]:
    """A saved graph's links and flows (``EntityGraph.save``), read by the executors, never the driver."""
    return spark.read.parquet(f"{directory}/links.parquet"), spark.read.parquet(f"{directory}/flows.parquet")


def prepare(links: DataFrame, flows: DataFrame, config: GraphConfig, latest_ms: int) -> SparkGraph:
    """Node ids and the cleaned, weighted binding links (``view.binding_of``, see the module docstring)."""
    from pyspark.sql import functions as F

    accounts = (
        links.select("account")
        .union(flows.select(F.col("src").alias("account")))
        .union(flows.select(F.col("dst").alias("account")))
        .distinct()
        .withColumn("a", F.monotonically_increasing_id())
        .localCheckpoint()
    )
    idents = (
        links.select("kind", "value").distinct().withColumn("v", -1 - F.monotonically_increasing_id()).localCheckpoint()
    )
    # attack tools: devices and addresses with failed logins on many accounts, few of them successful
    login = links.where(F.col("kind").isin(*LOGIN_KINDS))
    tools = (
        login.where(F.col("relation").isin("failed_login", "uses"))
        .groupBy("kind", "value")
        .agg(
            F.sum(F.when(F.col("relation") == "failed_login", 1).otherwise(0)).alias("failed"),
            F.sum(F.when(F.col("relation") == "uses", 1).otherwise(0)).alias("uses"),
            F.countDistinct("account").alias("accounts"),
        )
        .where(
            (F.col("failed") >= config.attack_min_accounts)
            & (F.col("uses") / F.col("accounts") <= F.lit(config.attack_max_success))
        )
        .select("kind", "value", F.lit(True).alias("tool"))
    )
    marked = links.join(tools, on=["kind", "value"], how="left")
    since = (
        marked.where((F.col("relation") == "uses") & F.col("tool").isNotNull())
        .groupBy("account")
        .agg(F.min("first_ms").alias("since_ms"))
    )
    usable = (
        marked.where(F.col("relation").isin("uses", "contact") & F.col("tool").isNull())
        .join(since, on="account", how="left")
        .where(F.col("since_ms").isNull() | (F.col("first_ms") < F.col("since_ms")))
        .groupBy("account", "kind", "value")
        .agg(F.min("first_ms").alias("first_ms"), F.max("last_ms").alias("last_ms"))
    )
    caps = F.create_map(*[x for kind in KINDS for x in (F.lit(kind), F.lit(config.cap(kind)))])
    degree = usable.groupBy("kind", "value").agg(F.count(F.lit(1)).alias("degree"))
    kept = (
        usable.join(degree, on=["kind", "value"])
        .where(F.col("degree") <= F.coalesce(caps[F.col("kind")], F.lit(10**9)))
        .withColumn("weight", F.lit(1.0) / F.log2(F.lit(1.0) + F.col("degree")))
    )
    # an address of a /24 range through which the account used more than one address binds nobody to it
    ranged = kept.withColumn(
        "range",
        F.when(F.col("kind") == "ip", F.regexp_extract("value", r"^(\d+\.\d+\.\d+)\.", 1)),
    )
    per_range = (
        ranged.where(F.col("range").isNotNull() & (F.col("range") != ""))
        .groupBy("account", "range")
        .agg(F.count(F.lit(1)).alias("in_range"))
    )
    binding = (
        ranged.join(per_range, on=["account", "range"], how="left")
        .withColumn("rotating", F.coalesce(F.col("in_range") > 1, F.lit(False)))
        .join(accounts, on="account")
        .join(idents, on=["kind", "value"])
        .select("account", "kind", "value", "a", "v", "weight", "last_ms", "degree", "rotating")
    )
    coded = flows.join(accounts.select(F.col("account").alias("src"), F.col("a").alias("a_src")), on="src").join(
        accounts.select(F.col("account").alias("dst"), F.col("a").alias("a_dst")), on="dst"
    )
    return SparkGraph(binding.localCheckpoint(), accounts, idents, coded, latest_ms)


def ring_components(graph: SparkGraph, config: RingConfig | None = None) -> tuple[DataFrame, int]:
    """``node, component, rounds``: components of the links that bind rings (identifiers of the ring kinds
    shared by at least ``min_shared`` accounts, rotating addresses left out), as ``rings._components``
    computes them before splitting large ones. Nodes are ids (``SparkGraph``)."""
    from pyspark.sql import functions as F

    from riskguard.spark.components import components

    config = config or RingConfig()
    edges = graph.binding.where(
        F.col("kind").isin(*config.kinds) & (F.col("degree") >= config.min_shared) & ~F.col("rotating")
    ).select(F.col("a").alias("src"), F.col("v").alias("dst"))
    return components(edges)


def association_scores(
    graph: SparkGraph,
    seeds: list[tuple[str, int]],
    *,
    restart: float = 0.15,
    half_life_days: float = 30.0,
    iterations: int = 30,
    with_flows: bool = True,
) -> tuple[DataFrame, int]:
    """``account, risk`` for every account of the graph: ``association.association_risk`` on Spark."""
    from pyspark.sql import functions as F

    spark = graph.binding.sparkSession
    now = F.lit(int(graph.latest_ms))
    half_life = F.lit(float(half_life_days * DAY_MS))
    parts = [
        graph.binding.select(
            F.col("a").alias("r"), F.col("v").alias("c"), F.col("weight"), (now - F.col("last_ms")).alias("age")
        )
    ]
    if with_flows:  # one link per payer and payee, as recent as their latest transfer
        parts.append(
            graph.flows.where(F.col("relation") == "transfer")
            .groupBy("a_src", "a_dst")
            .agg(F.max("ts_ms").alias("ts"))
            .select(
                F.col("a_src").alias("r"),
                F.col("a_dst").alias("c"),
                F.lit(1.0).alias("weight"),
                (now - F.col("ts")).alias("age"),
            )
        )
    links = parts[0] if len(parts) == 1 else parts[0].union(parts[1])
    weighted = links.select("r", "c", (F.col("weight") * F.pow(F.lit(2.0), -F.col("age") / half_life)).alias("w"))
    adjacency = weighted.select(F.col("r").alias("i"), F.col("c").alias("j"), "w").union(
        weighted.select(F.col("c").alias("i"), F.col("r").alias("j"), "w")
    )
    seed_frame = spark.createDataFrame([(str(a), int(t)) for a, t in seeds], "account string, at_ms long").join(
        graph.accounts, on="account"
    )
    vector = seed_frame.select(
        F.col("a").alias("node"),
        F.pow(F.lit(2.0), -F.greatest(now - F.col("at_ms"), F.lit(0)) / half_life).alias("s"),
    )
    vector = vector.groupBy("node").agg(F.sum("s").alias("s")).localCheckpoint()
    from riskguard.spark.propagation import personalised_pagerank

    scores, done = personalised_pagerank(adjacency, vector, restart=restart, iterations=iterations)
    table = (
        graph.accounts.join(scores.withColumnRenamed("node", "a"), on="a", how="left")
        .join(
            vector.where(F.col("s") > 0).select(F.col("node").alias("a"), F.lit(True).alias("seed")), on="a", how="left"
        )
        .select("account", F.coalesce("score", F.lit(0.0)).alias("score"), F.col("seed").isNotNull().alias("seed"))
        .localCheckpoint()
    )
    top = table.where(~F.col("seed")).agg(F.max("score")).first()[0]
    scale = float(top) if top is not None and top > 0 else 1.0
    risk = table.select(
        "account",
        F.when(F.col("seed"), F.lit(1.0)).otherwise(F.least(F.col("score") / F.lit(scale), F.lit(1.0))).alias("risk"),
    )
    return risk, done


def to_ring_labels(view: Bipartite, labels: DataFrame, graph: SparkGraph) -> np.ndarray:
    """The Spark components as the per-node label array ``rings._components`` works on (accounts, then
    identifiers, by the in-process codes), numbered as scipy numbers them: in the order of each
    component's smallest node code, nodes outside every binding link on their own."""
    from pyspark.sql import functions as F

    accounts = labels.join(graph.accounts.select(F.col("a").alias("node"), "account"), on="node").select(
        "account", "component"
    )
    idents = labels.join(graph.idents.select(F.col("v").alias("node"), "kind", "value"), on="node").select(
        "kind", "value", "component"
    )
    account_rows = pl.from_arrow(accounts.toArrow())
    ident_rows = pl.from_arrow(idents.toArrow())
    e = view.encoded
    n = e.n_accounts + e.n_idents
    codes = np.concatenate(
        [
            e.account_codes(account_rows["account"]) if account_rows.height else np.zeros(0, np.int64),
            _ident_codes(view, ident_rows) + e.n_accounts if ident_rows.height else np.zeros(0, np.int64),
        ]
    )
    component = (
        np.concatenate([account_rows["component"].to_numpy(), ident_rows["component"].to_numpy()]).astype(np.int64)
        if len(codes)
        else np.zeros(0, np.int64)
    )
    if (codes < 0).any() or (len(codes) and (codes >= n).any()):
        raise ValueError("the Spark components name nodes the in-process graph does not have")
    smallest = np.arange(n, dtype=np.int64)
    if len(codes):
        groups, inverse = np.unique(component, return_inverse=True)
        least = np.full(len(groups), n, dtype=np.int64)
        np.minimum.at(least, inverse, codes)
        smallest[codes] = least[inverse]
    _, canonical = np.unique(smallest, return_inverse=True)
    return canonical.reshape(-1).astype(np.int64)


def _ident_codes(view: Bipartite, rows: pl.DataFrame) -> np.ndarray:
    index = view.encoded.idents.select("kind", "value").with_row_index("code")
    found = rows.select("kind", "value").join(index, on=["kind", "value"], how="left", maintain_order="left")
    return found["code"].fill_null(-1).cast(pl.Int64).to_numpy()


def to_risk(risk: DataFrame, view: Bipartite) -> pl.DataFrame:
    """The Spark risk table in the in-process shape and order (``account, risk``, by account code)."""
    table = pl.from_arrow(risk.toArrow())
    ordered = pl.DataFrame({"account": view.encoded.accounts}).join(
        table, on="account", how="left", maintain_order="left"
    )
    return ordered.with_columns(pl.col("risk").fill_null(0.0).cast(pl.Float64))


def spark_offload(spark: SparkSession, graph: EntityGraph, config: Any, stats: dict[str, Any] | None = None) -> Any:
    """An ``offload`` for ``graph.refresh.analyse``: the ring components and the association risk of
    ``graph`` computed on Spark and returned in the in-process shapes. ``stats`` receives the rounds and
    iterations Spark ran and its wall time."""
    import time

    def run(view: Bipartite, seeds: list[tuple[str, int]]) -> tuple[np.ndarray, pl.DataFrame]:
        started = time.perf_counter()
        links, flows = frames_of(spark, graph)
        prepared = prepare(links, flows, graph.config, graph.latest_ms or 0)
        labels, rounds = ring_components(prepared, config.rings)
        ring_labels = to_ring_labels(view.restrict(config.rings.kinds), labels, prepared)
        risk, iterations = association_scores(
            prepared, seeds, restart=config.risk_restart, half_life_days=config.risk_half_life_days
        )
        table = to_risk(risk, view)
        if stats is not None:
            stats.update(
                components_rounds=rounds, propagation_iterations=iterations, spark_s=time.perf_counter() - started
            )
        return ring_labels, table

    return run
