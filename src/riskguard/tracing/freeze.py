"""Freeze orders: what to stop on which account, in which order, and why.

For every account holding traced money at the trace's ``as_of``:

- **freezable** = min(current balance, traced money held there). The held amount comes from the run's
  rule (under ``libr``, the default, it already never exceeds the lowest balance since the money
  arrived); the current balance is the ledger balance at ``as_of`` unless the caller supplies real
  balances (``current_balances``), which matter when the order is executed later than the trace;
- the freezable amount is **attributed** to victims in proportion to the money of each held there
  (largest remainder, to the cent);
- **priority**: accounts where money is still moving come first, because that money can still escape:
  ``moving`` (money left the account in the last ``moving_minutes`` before ``as_of``, or traced money
  stayed there a median of ``moving_minutes`` or less before moving on), then ``recent`` (money left within
  the last 24 hours), then ``still``; within a class, larger amounts first.

Each order carries the transfer chains (``paths.py``) from each victim's payment to the account: the
evidence a stop-payment request needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from riskguard.tracing.engine import Trace
from riskguard.tracing.money import split
from riskguard.tracing.paths import PathIndex

URGENCY = ("moving", "recent", "still")
DAY_MS = 86_400_000


@dataclass
class FreezeOrder:
    account: int
    balance: int
    held: int
    freezable: int
    by_victim: dict[int, int]
    urgency: str
    outflow_recent: int  # money that left in the last ``moving_minutes``
    last_outflow_row: int  # -1 when none
    dwell_minutes: float | None
    priority: int = 0
    _evidence: list[tuple[int, list[tuple[int, int, int, int]]]] | None = field(default=None, repr=False)

    def evidence(self, paths: PathIndex, most: int) -> list[tuple[int, list[tuple[int, int, int, int]]]]:
        """The transfer chain from each victim's payment to this account, for the ``most`` largest shares."""
        if self._evidence is None:
            largest = sorted(self.by_victim.items(), key=lambda kv: (-kv[1], kv[0]))[:most]
            self._evidence = [(victim, paths.path(self.account, victim)) for victim, _ in largest]
        return self._evidence

    def paths_rows(self, paths: PathIndex, most: int) -> list[int]:
        return [link[0] for _, chain in self.evidence(paths, most) for link in chain]


def dwell_by_account(trace: Trace) -> dict[int, float]:
    """Median minutes traced money stayed on each account it left: from the first arrival of a victim's
    money there to each departure (onward transfer, stop or exit) of that victim's money."""
    departures = [(row, source, victim) for row, source, _t, victim, _a, _h in trace.flows]
    departures += [(row, source, victim) for row, source, _t, victim, _a, _w in trace.stops]
    departures += [(row, account, victim) for row, account, victim, _a in trace.escapes if account >= 0]
    if not departures:
        return {}
    arrivals = [(account, victim, row) for account, h in trace.holdings.items() for victim, row in h.first.items()]
    ts = trace.ledger.ts
    left = pl.DataFrame(departures, schema={"row": pl.Int64, "account": pl.Int64, "victim": pl.Int64}, orient="row")
    first = pl.DataFrame(arrivals, schema={"account": pl.Int64, "victim": pl.Int64, "first": pl.Int64}, orient="row")
    joined = left.join(first, on=["account", "victim"], how="inner")
    dwell = (ts[joined["row"].to_numpy()] - ts[joined["first"].to_numpy()]) / 60_000
    medians = (
        pl.DataFrame({"account": joined["account"], "dwell": dwell}).group_by("account").agg(pl.col("dwell").median())
    )
    return dict(zip(medians["account"].to_list(), medians["dwell"].to_list(), strict=True))


def freeze_orders(
    trace: Trace,
    *,
    current_balances: dict[int, int] | None = None,
    moving_minutes: int = 60,
) -> list[FreezeOrder]:
    ledger = trace.ledger
    view = ledger.debits
    as_of_row, as_of_ms = trace.as_of_row, trace.as_of_ms
    recent_row = ledger.row_at_or_before(as_of_ms - moving_minutes * 60_000)
    dwell = dwell_by_account(trace)
    orders: list[FreezeOrder] = []
    for account, holding in trace.holdings.items():
        if holding.total <= 0:
            continue
        balance = ledger.balance_at(account, as_of_row)
        if current_balances is not None and account in current_balances:
            balance = current_balances[account]
        freezable = max(0, min(balance, holding.total))
        if freezable <= 0:
            continue
        by_victim = dict(holding.taint) if freezable == holding.total else split(freezable, holding.taint)
        lo, hi = int(view.off[account]), int(view.off[account + 1])
        keys = view.key[lo:hi]
        end = int(np.searchsorted(keys, 2 * as_of_row + 1, side="right"))
        start = int(np.searchsorted(keys, 2 * recent_row + 1, side="right"))
        outflow_recent = int(view.amount[lo + start : lo + end].sum())
        last_row = int(keys[end - 1] >> 1) if end else -1
        dwell_minutes = dwell.get(account)
        if outflow_recent > 0 or (dwell_minutes is not None and dwell_minutes <= moving_minutes):
            urgency = "moving"
        elif last_row >= 0 and as_of_ms - int(ledger.ts[last_row]) <= DAY_MS:
            urgency = "recent"
        else:
            urgency = "still"
        orders.append(
            FreezeOrder(
                account=account,
                balance=balance,
                held=holding.total,
                freezable=freezable,
                by_victim=by_victim,
                urgency=urgency,
                outflow_recent=outflow_recent,
                last_outflow_row=last_row,
                dwell_minutes=dwell_minutes,
            )
        )
    orders.sort(key=lambda o: (URGENCY.index(o.urgency), -o.freezable, o.account))
    for rank, order in enumerate(orders, 1):
        order.priority = rank
    return orders
