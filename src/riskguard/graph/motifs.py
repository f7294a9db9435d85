"""Money-laundering motifs on the transfer flows, per account.

What each finds (all within the graph's window; ``MotifConfig`` holds the parameters):

- ``fan_in`` / ``fan_out``: distinct payers / payees (a first-layer mule collects from many victims; a
  splitter pays many).
- ``pass_through_ratio``: of the money an account received, the share it sent on within
  ``dwell_hours`` (money in ≈ money out within hours: a mule). ``dwell_minutes``: the median time from a
  receipt to the next payment out.
- ``scatter_gather``: a source that pays at least ``min_paths`` accounts that each pay one same target within
  ``hop_hours`` (the source and the target both count it).
- ``gather_scatter``: an account with at least ``min_paths`` payers and ``min_paths`` payees whose payments
  out follow payments in within ``hop_hours``.
- ``cycles``: time-ordered cycles A→B→…→A of at most ``max_cycle`` hops, each hop later than the one
  before and the whole cycle within ``cycle_hours`` (round-tripping). Counted once per account on it.

Cost: sorts and joins over the transfers (polars). Paths are followed only through accounts that make at
most ``max_branch`` payments in the window, which bounds the joins on 10 M flows.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from riskguard.graph.build import EntityGraph

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class MotifConfig:
    dwell_hours: float = 24.0
    hop_hours: float = 24.0
    min_paths: int = 3
    max_cycle: int = 4
    cycle_hours: float = 72.0
    max_branch: int = 200


MOTIF_COLUMNS = (
    "fan_in",
    "fan_out",
    "pass_through_ratio",
    "dwell_minutes",
    "scatter_gather",
    "gather_scatter",
    "cycles",
)


def motifs(graph: EntityGraph, config: MotifConfig | None = None) -> pl.DataFrame:
    """One row per account with a transfer: ``account`` and the columns of ``MOTIF_COLUMNS``."""
    config = config or MotifConfig()
    flows = graph.flows.filter(pl.col("relation") == "transfer").select("src", "dst", "amount", "ts_ms")
    accounts = pl.concat([flows["src"], flows["dst"]]).unique().sort().to_frame("account")
    if flows.height == 0:
        return accounts.with_columns([pl.lit(0).alias(c) for c in MOTIF_COLUMNS])
    fan_in = flows.group_by("dst").agg(pl.col("src").n_unique().alias("fan_in")).rename({"dst": "account"})
    fan_out = flows.group_by("src").agg(pl.col("dst").n_unique().alias("fan_out")).rename({"src": "account"})
    out = (
        accounts.join(fan_in, on="account", how="left")
        .join(fan_out, on="account", how="left")
        .join(_pass_through(flows, config), on="account", how="left")
        .join(_scatter_gather(flows, config), on="account", how="left")
        .join(_gather_scatter(flows, config), on="account", how="left")
        .join(_cycles(flows, config), on="account", how="left")
    )
    return out.with_columns(
        [pl.col(c).fill_null(0) for c in MOTIF_COLUMNS if c not in ("pass_through_ratio", "dwell_minutes")]
    ).with_columns(pl.col("pass_through_ratio").fill_null(0.0))


def _pass_through(flows: pl.DataFrame, config: MotifConfig) -> pl.DataFrame:
    """Per receiving account: money sent on within the dwell window / money received (exact sums)."""
    dwell = int(config.dwell_hours * HOUR_MS)
    received = flows.select(pl.col("dst").alias("account"), pl.col("ts_ms").alias("in_ms"), pl.col("amount"))
    sent = flows.select(pl.col("src").alias("account"), pl.col("ts_ms").alias("out_ms"), pl.col("amount").alias("out"))
    inbound = received.group_by("account").agg(pl.col("amount").sum().alias("in_total"), pl.col("in_ms").min())
    # payments out within ``dwell`` after the account's receipts (each payment counted once)
    received = received.sort("in_ms")
    matched = sent.sort("out_ms").join_asof(
        received.select("account", "in_ms"),
        left_on="out_ms",
        right_on="in_ms",
        by="account",
        strategy="backward",
        tolerance=dwell,
        check_sortedness=False,
    )
    onward = (
        matched.filter(pl.col("in_ms").is_not_null())
        .group_by("account")
        .agg(
            pl.col("out").sum().alias("onward"),
            ((pl.col("out_ms") - pl.col("in_ms")) / 60_000).median().alias("dwell_minutes"),
        )
    )
    return (
        inbound.join(onward, on="account", how="left")
        .with_columns(
            pass_through_ratio=pl.when(pl.col("in_total") > 0)
            .then((pl.col("onward").fill_null(0) / pl.col("in_total")).cast(pl.Float64))
            .otherwise(0.0)
            .clip(upper_bound=1.0)
        )
        .select("account", "pass_through_ratio", "dwell_minutes")
    )


def _two_hops(flows: pl.DataFrame, config: MotifConfig) -> pl.DataFrame:
    """(source, middle, target) with the second hop after the first and within ``hop_hours``."""
    hop = int(config.hop_hours * HOUR_MS)
    busy = flows.group_by("src").agg(pl.len().alias("n")).filter(pl.col("n") > config.max_branch).select("src")
    first = flows.join(busy, on="src", how="anti").select(
        pl.col("src").alias("a"), pl.col("dst").alias("m"), pl.col("ts_ms").alias("t1")
    )
    second = flows.join(busy, on="src", how="anti").select(
        pl.col("src").alias("m"), pl.col("dst").alias("b"), pl.col("ts_ms").alias("t2")
    )
    paths = first.join(second, on="m").filter(
        (pl.col("t2") > pl.col("t1")) & (pl.col("t2") - pl.col("t1") <= hop) & (pl.col("a") != pl.col("b"))
    )
    return paths.select("a", "m", "b").unique()


def _scatter_gather(flows: pl.DataFrame, config: MotifConfig) -> pl.DataFrame:
    paths = _two_hops(flows, config)
    found = (
        paths.group_by("a", "b").agg(pl.col("m").n_unique().alias("paths")).filter(pl.col("paths") >= config.min_paths)
    )
    ends = pl.concat([found.select(pl.col("a").alias("account")), found.select(pl.col("b").alias("account"))])
    return ends.group_by("account").agg(pl.len().alias("scatter_gather"))


def _gather_scatter(flows: pl.DataFrame, config: MotifConfig) -> pl.DataFrame:
    paths = _two_hops(flows, config)
    return (
        paths.group_by("m")
        .agg(pl.col("a").n_unique().alias("payers"), pl.col("b").n_unique().alias("payees"))
        .filter((pl.col("payers") >= config.min_paths) & (pl.col("payees") >= config.min_paths))
        .select(pl.col("m").alias("account"), pl.lit(1).alias("gather_scatter"))
    )


def _cycles(flows: pl.DataFrame, config: MotifConfig) -> pl.DataFrame:
    span = int(config.cycle_hours * HOUR_MS)
    busy = flows.group_by("src").agg(pl.len().alias("n")).filter(pl.col("n") > config.max_branch).select("src")
    hops = flows.join(busy, on="src", how="anti").select("src", "dst", "ts_ms")
    paths = hops.select(
        pl.col("src").alias("start"),
        pl.col("dst").alias("at"),
        pl.col("ts_ms").alias("t0"),
        pl.col("ts_ms").alias("t"),
        pl.concat_list([pl.col("src"), pl.col("dst")]).alias("nodes"),
    )
    on_cycle: list[pl.DataFrame] = []
    for _ in range(config.max_cycle - 1):
        paths = (
            paths.join(hops, left_on="at", right_on="src")
            .filter((pl.col("ts_ms") > pl.col("t")) & (pl.col("ts_ms") - pl.col("t0") <= span))
            .select("start", pl.col("dst").alias("at"), "t0", pl.col("ts_ms").alias("t"), "nodes")
        )
        closed = paths.filter(pl.col("at") == pl.col("start"))
        on_cycle.append(closed.select(pl.col("nodes")).explode("nodes"))
        paths = paths.filter(
            (pl.col("at") != pl.col("start")) & ~pl.col("nodes").list.contains(pl.col("at"))
        ).with_columns(pl.concat_list([pl.col("nodes"), pl.col("at")]).alias("nodes"))
        if paths.height == 0:
            break
    if not on_cycle:
        return pl.DataFrame(schema={"account": pl.String, "cycles": pl.UInt32})
    members = pl.concat(on_cycle).rename({"nodes": "account"})
    return members.group_by("account").agg(pl.len().alias("cycles"))
