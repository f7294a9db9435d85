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
        self.incoming: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
        for row, source, target, victim, amount, _hops in trace.flows:
            self.incoming[(target, victim)].append((row, source, amount))
        self.seed: dict[tuple[int, int], tuple[int, int]] = {}
        for row, account, victim, amount in trace.seeds:
            best = self.seed.get((account, victim))
            if best is None or amount > best[1]:
                self.seed[(account, victim)] = (row, amount)

    def path(self, account: int, victim: int) -> list[tuple[int, int, int, int]]:
        """Links (row, from account or -1 for the victim, to account, amount) from the victim's payment
        to ``account``; empty when the victim's money never reached it."""
        links: list[tuple[int, int, int, int]] = []
        seen = {account}
        current, before = account, 1 << 62
        while True:
            seed = self.seed.get((current, victim))
            candidates = [c for c in self.incoming.get((current, victim), ()) if c[0] < before and c[1] not in seen]
            if seed is not None and seed[0] < before and (not candidates or seed[1] >= max(c[2] for c in candidates)):
                links.append((seed[0], -1, current, seed[1]))
                break
            if not candidates:
                break
            row, source, amount = max(candidates, key=lambda c: (c[2], -c[0]))
            links.append((row, source, current, amount))
            seen.add(source)
            current, before = source, row
        links.reverse()
        return links
