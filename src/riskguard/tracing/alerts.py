"""``poison`` reach: every account victims' money *may* have reached, for alerting only.

Under the poison rule any taint taints everything: once traced money reaches an account, every later
wallet transfer out of it is treated as carrying it. That says nothing about amounts (it would attribute
the whole of a busy account's turnover to one victim), so riskguard never uses it to allocate, freeze or
return money; it lists the accounts reached this way as *alerts* for review. Reach is time-respecting
(an account passes the taint on only by transfers after it received it), counted in hops from the
victim's payment, and bounded by the trace's hop limit and by ``max_accounts``. Each account is expanded
once, from the earliest time the taint reached it (an earliest-arrival search over the per-account
index: a later arrival could only reach a subset of what an earlier one reaches).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from riskguard.tracing.engine import Trace
from riskguard.tracing.ledger import TRANSFER


@dataclass
class PoisonReach:
    first_row: dict[int, int]  # account → row by which the taint first reached it
    hops: dict[int, int]
    victim: dict[int, int]  # account → the victim whose taint reached it first
    truncated: bool


def poison_reach(trace: Trace, max_accounts: int = 1_000) -> PoisonReach:
    ledger = trace.ledger
    view = ledger.debits
    first: dict[int, int] = {}
    hops: dict[int, int] = {}
    victim_of: dict[int, int] = {}
    heap: list[tuple[int, int, int, int]] = []
    for row, account, victim, _amount in trace.seeds:
        if row < first.get(account, 1 << 62):
            first[account], hops[account], victim_of[account] = row, 1, victim
            heapq.heappush(heap, (row, 1, account, victim))
    done: set[int] = set()
    limit = trace.as_of_row
    max_hops = trace.params.max_hops
    truncated = False
    while heap:
        row, hop, account, victim = heapq.heappop(heap)
        if account in done or first.get(account) != row:
            continue
        done.add(account)
        if hop >= max_hops:
            continue
        lo, hi = int(view.off[account]), int(view.off[account + 1])
        keys = view.key[lo:hi]
        start = int(np.searchsorted(keys, 2 * row + 1, side="left"))
        stop = int(np.searchsorted(keys, 2 * limit + 1, side="right"))
        rows = keys[start:stop] >> 1
        rows = rows[(ledger.kind[rows] == TRANSFER) & (ledger.payee[rows] >= 0)]
        if not len(rows):
            continue
        targets, at = np.unique(ledger.payee[rows], return_index=True)
        for target, when in zip(targets.tolist(), rows[at].tolist(), strict=True):
            if when < first.get(target, 1 << 62):
                if target not in first and len(first) >= max_accounts:
                    truncated = True
                    continue
                first[target], hops[target], victim_of[target] = when, hop + 1, victim
                heapq.heappush(heap, (when, hop + 1, target, victim))
    return PoisonReach(first, hops, victim_of, truncated)
