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

Cost: on the integer codes of ``encode.py``, sorts of the transfers and binary searches
(``numpy.searchsorted``) for the payments that follow a payment in time, so each path is produced only
when it satisfies the time window (no join of every receipt with every payment). Paths are followed
only through accounts that make at most ``max_branch`` payments in the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from riskguard.graph.build import EntityGraph
from riskguard.graph.encode import FLOW_RELATIONS, Encoded, distinct, encode

HOUR_MS = 3_600_000
TRANSFER = FLOW_RELATIONS.index("transfer")


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


@dataclass
class _Transfers:
    src: np.ndarray
    dst: np.ndarray
    ts: np.ndarray
    amount: pl.Series
    n: int  # account codes are below n


def motifs(graph: EntityGraph, config: MotifConfig | None = None, *, encoded: Encoded | None = None) -> pl.DataFrame:
    """One row per account with a transfer: ``account`` and the columns of ``MOTIF_COLUMNS``.
    ``encoded``: the graph's codes when the caller already has them."""
    config = config or MotifConfig()
    e = encoded if encoded is not None else encode(graph)
    is_transfer = e.flow_relation == TRANSFER
    flows = _Transfers(
        e.flow_src[is_transfer],
        e.flow_dst[is_transfer],
        e.flow_ts[is_transfer],
        e.flow_amount.filter(pl.Series(is_transfer)),
        e.n_accounts,
    )
    codes = distinct(np.concatenate([flows.src, flows.dst]))
    out = pl.DataFrame({"code": codes})
    if len(flows.src):
        pairs = distinct(flows.src * np.int64(flows.n) + flows.dst)
        fan_in = np.bincount(pairs % flows.n, minlength=flows.n)
        fan_out = np.bincount(pairs // flows.n, minlength=flows.n)
        payments = _Payments(flows, config)
        paths = _two_hops(payments, config)
        out = (
            out.with_columns(fan_in=pl.Series(fan_in[codes]), fan_out=pl.Series(fan_out[codes]))
            .join(_pass_through(flows, config), on="code", how="left")
            .join(_scatter_gather(paths, config), on="code", how="left")
            .join(_gather_scatter(paths, config), on="code", how="left")
            .join(_cycles(payments, config, flows.n), on="code", how="left")
        )
    else:
        out = out.with_columns([pl.lit(0).alias(c) for c in MOTIF_COLUMNS])
    counts = [c for c in MOTIF_COLUMNS if c not in ("pass_through_ratio", "dwell_minutes")]
    return out.select(
        e.accounts.gather(out["code"].to_numpy()).alias("account"),
        *[pl.col(c).fill_null(0).cast(pl.Int64) for c in counts],
        pl.col("pass_through_ratio").fill_null(0.0).cast(pl.Float64),
        pl.col("dwell_minutes").cast(pl.Float64),
    ).select("account", *MOTIF_COLUMNS)


def _pass_through(flows: _Transfers, config: MotifConfig) -> pl.DataFrame:
    """Per account that sent money on: payments made within ``dwell_hours`` after its latest receipt before
    them (each payment counted once) / money received, both exact sums; and the median of those delays."""
    dwell = int(config.dwell_hours * HOUR_MS)
    base = int(flows.ts.min())
    span = np.int64(int(flows.ts.max()) - base + 2)
    received = flows.dst * span + (flows.ts - base + 1)
    order = np.argsort(received, kind="stable")
    received = received[order]
    sent = flows.src * span + (flows.ts - base + 1)
    queries = np.argsort(sent, kind="stable")
    latest = np.empty(len(sent), dtype=np.int64)
    latest[queries] = np.searchsorted(received, sent[queries], side="right") - 1
    found = latest >= 0
    receipt = np.where(found, received[np.maximum(latest, 0)], 0)
    delay = sent - receipt  # same account: the time between; another account: beyond any window
    onward = np.flatnonzero(found & (receipt // span == flows.src) & (delay <= dwell))
    if not len(onward):
        return pl.DataFrame(schema={"code": pl.Int64, "pass_through_ratio": pl.Float64, "dwell_minutes": pl.Float64})
    out = (
        pl.DataFrame({"code": flows.src[onward], "out": flows.amount.gather(onward), "delay": delay[onward]})
        .group_by("code")
        .agg(pl.col("out").sum().alias("onward"), (pl.col("delay").median() / 60_000).alias("dwell_minutes"))
    )
    senders = np.zeros(flows.n, dtype=bool)
    senders[flows.src[onward]] = True
    mine = np.flatnonzero(senders[flows.dst])
    inbound = (
        pl.DataFrame({"code": flows.dst[mine], "amount": flows.amount.gather(mine)})
        .group_by("code")
        .agg(pl.col("amount").sum().alias("in_total"))
    )
    return out.join(inbound, on="code").select(
        "code",
        (pl.col("onward") / pl.col("in_total")).cast(pl.Float64).clip(upper_bound=1.0).alias("pass_through_ratio"),
        pl.col("dwell_minutes").cast(pl.Float64),
    )


class _Payments:
    """The quiet transfers (their payer makes at most ``max_branch`` payments) sorted by payer and time,
    for finding the payments an account made within a time range: one sort here, then binary searches
    (queries sorted first, which keeps the searches in cache)."""

    def __init__(self, flows: _Transfers, config: MotifConfig) -> None:
        quiet = np.flatnonzero(np.bincount(flows.src, minlength=flows.n)[flows.src] <= config.max_branch)
        self.src, self.dst, self.ts = flows.src[quiet], flows.dst[quiet], flows.ts[quiet]
        self.base = int(self.ts.min()) if len(self.ts) else 0
        self.span = np.int64(int(self.ts.max()) - self.base + 2 if len(self.ts) else 2)
        keys = self.src * self.span + (self.ts - self.base + 1)
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]

    def _key(self, account: np.ndarray, at_ms: np.ndarray) -> np.ndarray:
        return account * self.span + np.clip(at_ms - self.base + 1, 0, self.span - 1)

    def following(self, at: np.ndarray, after: np.ndarray, until: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each query ``i``, the payments of account ``at[i]`` made in ``(after[i], until[i]]``:
        ``(query index, payment index)`` pairs (payment indices into ``src``/``dst``/``ts``)."""
        low, high = self._key(at, after), self._key(at, until)
        queries = np.argsort(low, kind="stable")
        lo, hi = np.empty(len(at), dtype=np.int64), np.empty(len(at), dtype=np.int64)
        lo[queries] = np.searchsorted(self.keys, low[queries], side="right")
        hi[queries] = np.searchsorted(self.keys, high[queries], side="right")
        counts = np.maximum(hi - lo, 0)
        query = np.repeat(np.arange(len(at)), counts)
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return query, self.order[np.repeat(lo, counts) + within]


def _two_hops(payments: _Payments, config: MotifConfig) -> pl.DataFrame:
    """Distinct (source, middle, target) with the second hop after the first and within ``hop_hours``."""
    hop = int(config.hop_hours * HOUR_MS)
    src, dst, ts = payments.src, payments.dst, payments.ts
    first, second = payments.following(dst, ts, ts + hop)
    paths = pl.DataFrame({"a": src[first], "m": dst[first], "b": dst[second]})
    return paths.filter(pl.col("a") != pl.col("b")).unique()


def _scatter_gather(paths: pl.DataFrame, config: MotifConfig) -> pl.DataFrame:
    found = (
        paths.group_by("a", "b").agg(pl.col("m").n_unique().alias("paths")).filter(pl.col("paths") >= config.min_paths)
    )
    ends = pl.concat([found.select(pl.col("a").alias("code")), found.select(pl.col("b").alias("code"))])
    return ends.group_by("code").agg(pl.len().alias("scatter_gather"))


def _gather_scatter(paths: pl.DataFrame, config: MotifConfig) -> pl.DataFrame:
    return (
        paths.group_by("m")
        .agg(pl.col("a").n_unique().alias("payers"), pl.col("b").n_unique().alias("payees"))
        .filter((pl.col("payers") >= config.min_paths) & (pl.col("payees") >= config.min_paths))
        .select(pl.col("m").alias("code"), pl.lit(1).alias("gather_scatter"))
    )


def _cycles(payments: _Payments, config: MotifConfig, n: int) -> pl.DataFrame:
    """Accounts on time-ordered cycles: paths grown one later hop at a time, within ``cycle_hours`` of the
    first hop, never revisiting an account; a path back at its start is a cycle."""
    span = int(config.cycle_hours * HOUR_MS)
    src, dst, ts = payments.src, payments.dst, payments.ts
    nodes = [src, dst]  # the path's accounts so far
    at, t0, t = dst, ts, ts
    on_cycle: list[np.ndarray] = []
    for _ in range(config.max_cycle - 1):
        if not len(at):
            break
        path, hop = payments.following(at, t, t0 + span)
        nodes = [column[path] for column in nodes]
        at, t0, t = dst[hop], t0[path], ts[hop]
        closed = at == nodes[0]
        on_cycle.extend(column[closed] for column in nodes)
        fresh = ~closed
        for column in nodes[1:]:
            fresh &= at != column
        nodes = [column[fresh] for column in nodes] + [at[fresh]]
        at, t0, t = at[fresh], t0[fresh], t[fresh]
    members = np.concatenate(on_cycle) if on_cycle else np.zeros(0, dtype=np.int64)
    counts = np.bincount(members, minlength=n)
    hit = np.flatnonzero(counts)
    return pl.DataFrame({"code": hit, "cycles": counts[hit]}, schema={"code": pl.Int64, "cycles": pl.Int64})
