"""Evidence: the chain of transfers by which a victim's money reached an account.

For an account and a victim, the path is followed backwards from the account: at each account, the
transfer that brought the most of that victim's money (before the money was passed on) is taken, until
the victim's own payment is reached. Each link names the transfer (event id, time, payer, payee) and the
victim's traced money it carried. An account reached by several transfers has one path per victim (the
main one) and ``transfers`` in the trace result lists every traced transfer.
"""

from __future__ import annotations

from collections import defaultdict

from riskguard.tracing.engine import Trace


class PathIndex:
    """Incoming traced transfers per (account, victim), for walking back from any account."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        incoming: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
        for row, source, target, victim, amount, _hops in trace.flows:
            incoming[(target, victim)].append((amount, row, source))
        self.incoming = incoming
        self._sorted: set[tuple[int, int]] = set()
        self.seed: dict[tuple[int, int], tuple[int, int]] = {}
        for row, account, victim, amount in trace.seeds:
            best = self.seed.get((account, victim))
            if best is None or amount > best[1]:
                self.seed[(account, victim)] = (row, amount)

    def _largest_before(self, account: int, victim: int, before: int, seen: set[int]) -> tuple[int, int, int] | None:
        """The incoming transfer of the victim's money with the largest amount (earliest of equals) before
        ``before`` from an account not yet on the path: (amount, row, source)."""
        key = (account, victim)
        edges = self.incoming.get(key)
        if not edges:
            return None
        if key not in self._sorted:
            edges.sort(key=lambda e: (-e[0], e[1]))
            self._sorted.add(key)
        for edge in edges:
            if edge[1] < before and edge[2] not in seen:
                return edge
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
