"""Evidence: the chain of transfers by which a victim's money reached an account.

For an account and a victim, the path is followed backwards from the account: at each account, the
transfer that brought the most of that victim's money (before the money was passed on) is taken, until
the victim's own payment is reached. Each link names the transfer (event id, time, payer, payee) and the
victim's traced money it carried. An account reached by several transfers has one path per victim (the
main one) and ``transfers`` in the trace result lists every traced transfer.
"""

from __future__ import annotations

import numpy as np

from riskguard.tracing.engine import Trace


class PathIndex:
    """Incoming traced transfers per (account, victim), for walking back from any account."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        width = max(len(trace.victims), 1)
        flows = np.array([f[:5] for f in trace.flows], dtype=np.int64).reshape(-1, 5)
        row, source, target, victim, amount = flows.T
        # by (account reached, victim), then the largest amount first, then the earliest
        order = np.lexsort((row, -amount, target * width + victim))
        self.keys = (target * width + victim)[order]
        self.rows, self.sources, self.amounts = row[order], source[order], amount[order]
        self.width = width
        self.seed: dict[tuple[int, int], tuple[int, int]] = {}
        for seed_row, account, seed_victim, seed_amount in trace.seeds:
            best = self.seed.get((account, seed_victim))
            if best is None or seed_amount > best[1]:
                self.seed[(account, seed_victim)] = (seed_row, seed_amount)

    def _largest_before(self, account: int, victim: int, before: int, seen: set[int]) -> tuple[int, int, int] | None:
        """The incoming transfer of the victim's money with the largest amount (earliest of equals) before
        ``before`` from an account not yet on the path: (amount, row, source)."""
        key = account * self.width + victim
        low = int(np.searchsorted(self.keys, key, side="left"))
        high = int(np.searchsorted(self.keys, key, side="right"))
        for at in range(low, high):
            row, source = int(self.rows[at]), int(self.sources[at])
            if row < before and source not in seen:
                return int(self.amounts[at]), row, source
        return None

    def path(self, account: int, victim: int) -> list[tuple[int, int, int, int]]:
        """Links (row, from account or -1 for the victim, to account, amount) from the victim's payment
        to ``account``; empty when the victim's money never reached it."""
        links: list[tuple[int, int, int, int]] = []
        seen = {account}
        current, before = account, 1 << 62
        while True:
            seed = self.seed.get((current, victim))
            edge = self._largest_before(current, victim, before, seen)
            if seed is not None and seed[0] < before and (edge is None or seed[1] >= edge[0]):
                links.append((seed[0], -1, current, seed[1]))
                break
            if edge is None:
                break
            amount, row, source = edge
            links.append((row, source, current, amount))
            seen.add(source)
            current, before = source, row
        links.reverse()
        return links
