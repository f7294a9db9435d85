"""Time-respecting, multi-hop tracing of victims' money through the ledger, one taint vector per victim.

The tracer starts from the fraudulent transfers each report names (the *seeds*: the victim's money
arriving on the first-layer account, hop 1) and follows the money forward in time. It keeps, for every
account that holds traced money, how much of each victim's money it holds (a sparse *taint vector*), and
visits that account's wallet debits in time order; each debit's traced part is decided by the run's
allocation rule (``rules.py``) and then:

- a transfer to another account on the platform carries it there (one hop more), unless a stop applies:
  the **hop limit** (money would reach an account beyond ``max_hops``) or the **minimum amount** (the
  traced part of the transfer is below ``min_amount``); stopped money is reported with where and when;
- a withdrawal, a payment from the wallet, or a transfer off the platform is an **exit**: the money
  *escaped*, and is reported with the account it left from, where it went (card, merchant, outside
  account) and when.

All accounts' debits are visited in one global time order (a heap keyed by ledger row), so money only
ever moves forward in time, and only accounts that hold traced money are visited: an account whose
traced holdings fall to zero is dropped until traced money reaches it again. Hand-written because no
library traces per-victim amounts through a ledger under these rules; the index it reads is numpy.

Per account, ``traced_in = traced_out + held + escaped`` (money stopped at a hop or minimum-amount limit
counts as traced out of the account it left); per victim, held + escaped + stopped = the amount traced
from the seeds, which never exceeds the reported loss.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from riskguard.errors import ValidationFailed
from riskguard.tracing import rules as R
from riskguard.tracing.ledger import Ledger
from riskguard.tracing.reports import Victim

HOP_LIMIT = "hop_limit"
MIN_AMOUNT = "min_amount"


@dataclass(frozen=True)
class TraceParams:
    """How a trace runs. ``min_amount`` is in minor units; ``as_of_ms`` defaults to the latest report."""

    rule: str = R.DEFAULT_RULE
    max_hops: int = 6
    min_amount: int = 1_000
    as_of_ms: int | None = None

    def check(self) -> None:
        errors = []
        if self.rule == "poison":
            errors.append(
                {
                    "loc": ["body", "rule"],
                    "type": "value_error",
                    "msg": "poison (any taint taints all) cannot allocate amounts; it is reported as alerts in "
                    "every trace. Choose libr, proportional, fifo or lifo",
                }
            )
        elif self.rule not in R.RULES:
            errors.append(
                {"loc": ["body", "rule"], "type": "value_error", "msg": f"choose one of {', '.join(R.RULES)}"}
            )
        if not 1 <= self.max_hops <= 50:
            errors.append({"loc": ["body", "max_hops"], "type": "value_error", "msg": "must be 1..50"})
        if self.min_amount < 0:
            errors.append({"loc": ["body", "min_amount"], "type": "value_error", "msg": "must not be negative"})
        if errors:
            raise ValidationFailed(errors)


@dataclass
class Trace:
    """What a run found; ``document.py`` turns it into the result clients read."""

    ledger: Ledger
    params: TraceParams
    victims: list[Victim]
    as_of_row: int
    as_of_ms: int
    holdings: dict[int, R.Holding]  # account code → its traced money
    seeds: list[tuple[int, int, int, int]] = field(default_factory=list)  # (row, account, victim, amount)
    # (row, from, to, victim, amount, hops of the account reached)
    flows: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    escapes: list[tuple[int, int, int, int]] = field(default_factory=list)  # (row, account, victim, amount)
    stops: list[tuple[int, int, int, int, int, str]] = field(
        default_factory=list
    )  # (row, from, to, victim, amount, why)
    visited: int = 0  # debit (and, for lifo, credit) entries the tracer read

    def held_by_victim(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for holding in self.holdings.values():
            for victim, amount in holding.taint.items():
                out[victim] = out.get(victim, 0) + amount
        return out


def run(ledger: Ledger, victims: list[Victim], params: TraceParams) -> Trace:
    """Traces every victim's money through ``ledger`` up to ``params.as_of_ms``."""
    params.check()
    as_of_ms = params.as_of_ms if params.as_of_ms is not None else max((v.reported_ms for v in victims), default=0)
    as_of_row = ledger.row_at_or_before(as_of_ms)
    return _Run(ledger, victims, params, as_of_row, as_of_ms).go()


class _Run:
    def __init__(self, ledger: Ledger, victims: list[Victim], params: TraceParams, as_of_row: int, as_of_ms: int):
        self.ledger = ledger
        self.params = params
        self.lifo = params.rule == "lifo"
        self.fifo = params.rule == "fifo"
        self.view = ledger.index if self.lifo else ledger.debits
        self.full = ledger.index
        self.trace = Trace(ledger, params, victims, as_of_row, as_of_ms, {})
        self.heap: list[tuple[int, int, int, int]] = []
        self.limit = 2 * as_of_row + 1

    def go(self) -> Trace:
        trace, ledger = self.trace, self.ledger
        heap = self.heap
        seeds: list[tuple[int, int, int]] = []
        for victim in trace.victims:
            for row, amount in victim.seeds:
                if row <= trace.as_of_row:
                    seeds.append((row, victim.index, amount))
        for number, (row, victim, _amount) in enumerate(sorted(seeds)):
            heapq.heappush(heap, (2 * row + 1, 0, number, victim))
        seed_list = sorted(seeds)
        view = self.view
        v_key, v_amount, v_side, v_balance, v_pos, v_off = (
            view.key,
            view.amount,
            view.side,
            view.balance,
            view.pos,
            view.off,
        )
        payee, kind = ledger.payee, ledger.kind
        holdings = trace.holdings
        rule = self.params.rule
        out_fn = R.libr_out if rule == "libr" else R.proportional_out
        min_amount, max_hops = self.params.min_amount, self.params.max_hops
        flows, escapes, stops = trace.flows, trace.escapes, trace.stops
        limit = self.limit
        visited = 0
        while heap:
            key, what, a, i = heapq.heappop(heap)
            if key > limit:
                break
            if what == 0:  # a seed: the victim's payment arrives on the first account
                row, victim, amount = seed_list[a]
                to = int(payee[row])
                if to < 0:  # paid straight off the platform: escaped at once
                    escapes.append((row, -1, victim, amount))
                    continue
                trace.seeds.append((row, to, victim, amount))
                self.receive(to, row, {victim: amount}, None)
                continue
            holding = holdings[a]
            visited += 1
            amount = int(v_amount[i])
            if self.lifo and v_side[i] == 1:
                R.lifo_credit(holding, i, amount)
            elif holding.total or self.lifo:
                if self.lifo:
                    carried = R.lifo_out(holding, amount)
                elif self.fifo:
                    carried = R.fifo_out(holding, amount, int(v_pos[i]))
                else:
                    carried = out_fn(holding, amount, int(v_balance[i]) + amount)
                if carried:
                    row = key >> 1
                    to = int(payee[row])
                    moved = sum(carried.values())
                    if to >= 0 and kind[row] == 0:
                        holding.traced_out += moved
                        if moved < min_amount:
                            for victim, part in carried.items():
                                stops.append((row, a, to, victim, part, MIN_AMOUNT))
                        else:
                            forward: dict[int, int] = {}
                            hops = holding.hop
                            for victim, part in carried.items():
                                if hops[victim] >= max_hops:
                                    stops.append((row, a, to, victim, part, HOP_LIMIT))
                                else:
                                    forward[victim] = part
                                    flows.append((row, a, to, victim, part, hops[victim] + 1))
                            if forward:
                                self.receive(to, row, forward, holding)
                    else:
                        holding.escaped += moved
                        for victim, part in carried.items():
                            escapes.append((row, a, victim, part))
            if not holding.total and not (self.lifo and holding.pending):
                self._deactivate(holding)
                continue
            i += 1
            if i < v_off[a + 1]:
                heapq.heappush(heap, (int(v_key[i]), 1, a, i))
            else:
                holding.active = False
        trace.visited = visited
        return trace

    def _deactivate(self, holding: R.Holding) -> None:
        holding.active = False
        holding.lots = None
        holding.pending = None

    def receive(self, account: int, row: int, part: dict[int, int], source: R.Holding | None) -> None:
        """Traced money ``part`` arrives on ``account`` by ``row`` (from ``source``; None for a seed)."""
        holding = self.trace.holdings.get(account)
        if holding is None:
            holding = self.trace.holdings[account] = R.Holding()
        moved = 0
        taint, in_by, hops = holding.taint, holding.in_by, holding.hop
        for victim, amount in part.items():
            taint[victim] = taint.get(victim, 0) + amount
            hop = 1 if source is None else source.hop[victim] + 1
            before = in_by.get(victim)
            if before is None:
                in_by[victim] = amount
                hops[victim] = hop
                holding.first[victim] = row
            else:
                in_by[victim] = before + amount
                if hop < hops[victim]:
                    hops[victim] = hop
            moved += amount
        holding.total += moved
        holding.traced_in += moved
        entry = -1
        if self.fifo or self.lifo:
            entry = int(self.ledger.credit_entry[row])
        if self.fifo:
            R.fifo_receive(holding, int(self.full.pos[entry]), int(self.ledger.amount[row]), part)
        if self.lifo:
            if not holding.active:
                R.lifo_start(holding, int(self.full.balance[entry]) - int(self.full.amount[entry]))
            assert holding.pending is not None
            waiting = holding.pending.setdefault(entry, {})
            for victim, amount in part.items():
                waiting[victim] = waiting.get(victim, 0) + amount
        if holding.active:
            return
        view = self.view
        lo, hi = int(view.off[account]), int(view.off[account + 1])
        at = lo + int(np.searchsorted(view.key[lo:hi], 2 * row + 1, side="left"))
        if at < hi:
            heapq.heappush(self.heap, (int(view.key[at]), 1, account, at))
            holding.active = True
