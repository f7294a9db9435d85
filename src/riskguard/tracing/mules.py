"""Mule scores: per-account features that describe money passing through, for live decisions.

Computed over the ledger's rows from ``since`` (default: 30 days before the last row), for every account
that both received and sent money in that time:

- ``mule.pass_through_ratio``: share of the money received (amount-weighted) that left within 24 hours;
- ``mule.median_dwell_minutes``: over the receipts, the median time until half of a receipt had left
  (unpublished when most receipts have not);
- ``mule.fan_in`` / ``mule.fan_out``: distinct accounts that transferred money to it / it transferred to;
- ``mule.victim_inflow_share``: share of the money received that a trace attributes to reported victims
  (at any hop);
- ``mule.age_at_first_pass_through_days``: the account's age (the ``account_age_days`` attribute of the
  outflow) when half of a receipt first left within 24 hours.

**Which money leaves.** Receipts leave first in, first out, before the balance the account already held
(so an account rented out as a mule, with savings of its own, still shows the money passing through):
each outflow takes from the receipts still waiting, and only the rest from the older balance. With R and
A the cumulative receipts and outflows after each entry, the receipts consumed so far are
``C = A + min(0, min over earlier entries of (R − A))`` — a running minimum per account, so numpy
computes it for every entry at once; receipt *i*, at [Q, Q + amount) of the cumulative receipts, has left
by time T to the extent C(T) exceeds Q. One ``searchsorted`` over all accounts' C (one increasing axis,
each account offset by the accounts before it) finds when each receipt was half gone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from riskguard.tracing.engine import Trace
from riskguard.tracing.ledger import TRANSFER, Ledger, _segment_cumsum

DAY_MS = 86_400_000
SOURCES = (
    "mule.pass_through_ratio",
    "mule.median_dwell_minutes",
    "mule.fan_in",
    "mule.fan_out",
    "mule.victim_inflow_share",
    "mule.age_at_first_pass_through_days",
)


@dataclass
class MuleScores:
    frame: pl.DataFrame  # one row per scored account: account and one column per source (nulls unpublished)

    def values(self, source: str) -> dict[str, float]:
        column = source.split(".", 1)[1]
        rows = self.frame.select("account", column).drop_nulls()
        return dict(zip(rows["account"].to_list(), rows[column].cast(pl.Float64).to_list(), strict=True))


def _segment_running_min(values: np.ndarray, off: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Running minimum restarting at each segment (later segments shifted below earlier ones)."""
    if not len(values):
        return values
    span = int(values.max() - values.min()) + 1
    segment = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    shifted = values - segment * span
    return np.minimum.accumulate(shifted) + segment * span


def score(ledger: Ledger, *, since_ms: int | None = None, trace: Trace | None = None) -> MuleScores:
    view = ledger.index
    n_acc = ledger.n_accounts
    counts = np.diff(view.off)
    account = np.repeat(np.arange(n_acc, dtype=np.int64), counts)
    row = view.key >> 1
    ts = ledger.ts[row]
    if since_ms is None:
        since_ms = int(ledger.ts[-1]) - 30 * DAY_MS if len(ledger) else 0
    is_credit = view.side == 1
    received = _segment_cumsum(np.where(is_credit, view.amount, 0), view.off, counts)
    sent = _segment_cumsum(np.where(is_credit, 0, view.amount), view.off, counts)
    consumed = sent + np.minimum(0, _segment_running_min(received - sent, view.off, counts))

    # the time axis: the last entry of an account at or before a moment
    t0 = int(ts.min()) if len(ts) else 0
    span = int(ts.max()) - t0 + 2 * DAY_MS if len(ts) else 1
    time_key = account * span + (ts - t0)
    # the consumption axis, one increasing line over all accounts
    final = np.zeros(n_acc, dtype=np.int64)
    nonempty = counts > 0
    final[nonempty] = consumed[view.off[1:][nonempty] - 1]
    base = np.concatenate([[0], np.cumsum(final + 1)[:-1]])
    axis = base[account] + consumed

    credit = np.flatnonzero(is_credit & (ts >= since_ms))
    c_acc, c_amount, c_ts = account[credit], view.amount[credit], ts[credit]
    start = received[credit] - c_amount  # Q: receipts before this one
    later = np.searchsorted(time_key, c_acc * span + (c_ts + DAY_MS - t0), side="right") - 1
    gone = np.clip(consumed[later] - start, 0, c_amount)  # ``later`` is this account's (the credit itself at least)
    half = np.searchsorted(axis, base[c_acc] + start + (c_amount + 1) // 2, side="left")
    half_left = half < view.off[c_acc + 1]
    half_row = row[np.minimum(half, len(row) - 1)]
    dwell = np.where(half_left, (ledger.ts[half_row] - c_ts) / 60_000, np.inf)
    quick = half_left & (dwell <= 24 * 60)
    receipts = pl.DataFrame(
        {
            "code": c_acc,
            "amount": c_amount,
            "gone": gone,
            "dwell": dwell,
            "age": np.where(quick, ledger.age_days[half_row], -1),
            "quick": quick,
            "ts": c_ts,
            "payer": ledger.payer[row[credit]],
            "transfer": ledger.kind[row[credit]] == TRANSFER,
        }
    )
    inflow = receipts.group_by("code").agg(
        total=pl.col("amount").sum(),
        gone=pl.col("gone").sum(),
        median_dwell=pl.col("dwell").median(),
        fan_in=pl.col("payer").filter(pl.col("transfer") & (pl.col("payer") >= 0)).n_unique(),
        age=pl.col("age").filter(pl.col("quick")).sort_by(pl.col("ts").filter(pl.col("quick"))).first(),
    )
    debit = np.flatnonzero(~is_credit & (ts >= since_ms))
    sends = pl.DataFrame({"code": account[debit], "payee": ledger.payee[row[debit]]})
    outflow = sends.group_by("code").agg(fan_out=pl.col("payee").filter(pl.col("payee") >= 0).n_unique())
    victim = pl.DataFrame(schema={"code": pl.Int64, "victim_in": pl.Int64})
    if trace is not None and trace.holdings:
        pairs = [(code, h.traced_in) for code, h in trace.holdings.items()]
        victim = pl.DataFrame(pairs, schema={"code": pl.Int64, "victim_in": pl.Int64}, orient="row")
    frame = (
        inflow.join(outflow, on="code", how="inner")
        .join(victim, on="code", how="left")
        .select(
            code="code",
            pass_through_ratio=pl.col("gone") / pl.col("total"),
            median_dwell_minutes=pl.when(pl.col("median_dwell").is_finite()).then(pl.col("median_dwell")),
            fan_in="fan_in",
            fan_out="fan_out",
            victim_inflow_share=(pl.col("victim_in").fill_null(0) / pl.col("total")).clip(0.0, 1.0),
            age_at_first_pass_through_days=pl.when(pl.col("age") >= 0).then(pl.col("age").cast(pl.Float64)),
        )
        .sort("code")
    )
    names = ledger.accounts.gather(frame["code"].cast(pl.UInt32))
    return MuleScores(frame.with_columns(account=names).drop("code"))
