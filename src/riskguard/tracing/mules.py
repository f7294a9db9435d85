"""Mule scores: per-account features that describe money passing through, for live decisions.

Computed over the ledger's rows from ``since`` (default: 30 days before the last row) to its end, for every
account that both received and sent money in that time:

- ``mule.pass_through_ratio``: share of the money received (amount-weighted) that left within 24 hours;
- ``mule.median_dwell_minutes``: median time a receipt stayed before it had fully left (unpublished when
  most receipts never left);
- ``mule.fan_in`` / ``mule.fan_out``: distinct accounts that transferred money to it / it transferred to;
- ``mule.victim_inflow_share``: share of the money received that a trace attributes to reported victims
  (at any hop);
- ``mule.age_at_first_pass_through_days``: the account's age (the ``account_age_days`` attribute of the
  outflow) when money first passed through it within 24 hours.

When money "leaves" is decided first in, first out among receipts, with the balance the account held
before its first row here leaving last (so a well-funded account used as a mule still shows the money
passing through): receipt *i* occupies positions [P, P + A) of the account's cumulative inflow, and it
has fully left when cumulative outflow reaches P + A. One ``searchsorted`` over all accounts' cumulative
outflows (made one increasing axis by offsetting each account by the outflow of the accounts before it)
finds that moment for every receipt at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from riskguard.tracing.engine import Trace
from riskguard.tracing.ledger import TRANSFER, Ledger

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


def score(ledger: Ledger, *, since_ms: int | None = None, trace: Trace | None = None) -> MuleScores:
    view = ledger.index
    n_acc = ledger.n_accounts
    counts = np.diff(view.off)
    account = np.repeat(np.arange(n_acc, dtype=np.int64), counts)
    row = view.key >> 1
    ts = ledger.ts[row]
    if since_ms is None:
        since_ms = int(ledger.ts[-1]) - 30 * DAY_MS if len(ledger) else 0
    is_debit = view.side == 0
    # one increasing outflow axis: each account's cumulative outflow, shifted by all outflow before it
    debit_idx = np.flatnonzero(is_debit)
    out_total = np.bincount(account[debit_idx], weights=view.amount[debit_idx], minlength=n_acc).astype(np.int64)
    base = np.concatenate([[0], np.cumsum(out_total)[:-1]])
    axis = base[account[debit_idx]] + view.pos[debit_idx] + view.amount[debit_idx]
    d_end = np.searchsorted(account[debit_idx], np.arange(n_acc), side="right")

    credit_idx = np.flatnonzero(~is_debit & (ts >= since_ms))
    c_acc = account[credit_idx]
    c_amount = view.amount[credit_idx]
    opening = ledger.opening[c_acc]
    target = base[c_acc] + view.pos[credit_idx] - opening + c_amount
    found = np.searchsorted(axis, target, side="left")
    # the receipt cannot leave before it arrived: at the earliest by the account's next debit
    next_debit = np.searchsorted(debit_idx, credit_idx, side="right")
    found = np.maximum(found, next_debit)
    departed = found < d_end[c_acc]
    leave_row = np.where(departed, row[debit_idx[np.minimum(found, len(debit_idx) - 1)]] if len(debit_idx) else -1, -1)
    dwell = np.where(departed, (ledger.ts[np.maximum(leave_row, 0)] - ts[credit_idx]) / 60_000, np.inf)
    quick = departed & (dwell <= 24 * 60)
    receipts = pl.DataFrame(
        {
            "code": c_acc,
            "amount": c_amount,
            "dwell": dwell,
            "quick": quick,
            "age": np.where(quick, ledger.age_days[np.maximum(leave_row, 0)], -1),
            "ts": ts[credit_idx],
            "payer": ledger.payer[row[credit_idx]],
            "transfer": ledger.kind[row[credit_idx]] == TRANSFER,
        }
    )
    inflow = receipts.group_by("code").agg(
        total=pl.col("amount").sum(),
        passed=pl.col("amount").filter(pl.col("quick")).sum(),
        median_dwell=pl.col("dwell").median(),
        fan_in=pl.col("payer").filter(pl.col("transfer") & (pl.col("payer") >= 0)).n_unique(),
        age=pl.col("age").filter(pl.col("quick")).sort_by(pl.col("ts").filter(pl.col("quick"))).first(),
    )
    debit_rows = row[debit_idx]
    recent = ts[debit_idx] >= since_ms
    sends = pl.DataFrame({"code": account[debit_idx][recent], "payee": ledger.payee[debit_rows][recent]})
    outflow = sends.group_by("code").agg(fan_out=pl.col("payee").filter(pl.col("payee") >= 0).n_unique(), sent=pl.len())
    victim = pl.DataFrame({"code": pl.Series([], dtype=pl.Int64), "victim_in": pl.Series([], dtype=pl.Int64)})
    if trace is not None:
        pairs = [(code, h.traced_in) for code, h in trace.holdings.items()]
        if pairs:
            victim = pl.DataFrame(pairs, schema={"code": pl.Int64, "victim_in": pl.Int64}, orient="row")
    frame = (
        inflow.join(outflow, on="code", how="inner")
        .join(victim, on="code", how="left")
        .select(
            code="code",
            pass_through_ratio=(pl.col("passed") / pl.col("total")),
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
