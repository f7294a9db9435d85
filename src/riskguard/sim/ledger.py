"""Wallet balances: which payments the world can afford, settled for all accounts at once.

Money rules (the invariants the tests check):

- a transfer moves its amount from the payer's wallet to the payee's, unless it carries a ``card_id``: then
  the payer's bank card pays (outside the wallet) and only the payee's wallet is credited;
- a payment takes its amount from the wallet unless it carries a ``card_id``;
- a withdrawal always takes its amount from the wallet (to the bank card named);
- credits (salaries, loan disbursals, promotion bonuses, inbound bank transfers) add to the wallet;
- no wallet balance is ever negative.

Legitimate spending is generated without looking at balances. Here every account's entries are put in
time order (credits before debits at the same millisecond) and running balances are computed with one
cumulative sum; a legitimate debit that takes a wallet below zero is dropped (the platform would have
declined it), and the affected accounts are settled again until no balance is negative. Fraud events are
never dropped: the typologies only ever send on money that arrived before, or drain at most 90 % of a
victim's opening balance, so dropping the victim's own legitimate spending always makes room.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskguard.sim.table import EventTable, T

MAX_ROUNDS = 50
PRECISE_ROUNDS = 8


@dataclass
class Settlement:
    keep: np.ndarray  # bool per event: False for legitimate debits the wallet could not cover
    closing_fen: np.ndarray  # int64 per account
    rounds: int


def wallet_debits(events: EventTable) -> np.ndarray:
    kind, card = events["type"], events["card"]
    by_wallet = card < 0
    return (kind == T["withdrawal"]) | (((kind == T["transfer"]) | (kind == T["payment"])) & by_wallet)


def settle(events: EventTable, credits: dict[str, np.ndarray], opening_fen: np.ndarray, start_ms: int) -> Settlement:
    """Drops the legitimate debits that no wallet could cover; returns what is kept and closing balances."""
    n_accounts = len(opening_fen)
    debit_rows = np.flatnonzero(wallet_debits(events))
    credit_rows = np.flatnonzero(events["type"] == T["transfer"])
    account = np.concatenate([events["account"][debit_rows], events["counterparty"][credit_rows], credits["account"]])
    ts = np.concatenate([events["ts"][debit_rows], events["ts"][credit_rows], credits["ts"]]) - start_ms
    delta = np.concatenate([-events["amount"][debit_rows], events["amount"][credit_rows], credits["amount"]])
    row = np.concatenate([debit_rows, credit_rows, np.full(len(credits["ts"]), -1, dtype=np.int64)])
    is_debit = np.zeros(len(row), dtype=bool)
    is_debit[: len(debit_rows)] = True
    if len(ts) and (ts.min() < 0 or ts.max() >= 1 << 35):
        raise ValueError("an event or credit lies outside the world's time span")
    if len(account) and (account.min() < 0 or account.max() >= n_accounts or delta.min() < -(10**12)):
        raise ValueError("an entry names an unknown account or an impossible amount")
    key = (account.astype(np.int64) << 36) | (ts << 1) | is_debit.astype(np.int64)
    order = np.argsort(key, kind="stable")
    del key, ts
    account, delta, row, is_debit = account[order], delta[order], row[order], is_debit[order]
    del order
    droppable = is_debit & (events["typology"][np.maximum(row, 0)] < 0)

    keep = np.ones(len(events), dtype=bool)
    dirty = np.ones(n_accounts, dtype=bool)
    rounds = 0
    for rounds in range(1, MAX_ROUNDS + 1):
        live = dirty[account] & ((row < 0) | keep[np.maximum(row, 0)])
        sel = np.flatnonzero(live)
        a, d = account[sel], delta[sel]
        running = _running(a, d, opening_fen)
        negative = running < 0
        if not negative.any():
            break
        can_drop = droppable[sel]
        # first rounds: only the debit that crosses below zero (later ones may then fit); then all short ones
        crossing = (running - d >= 0) if rounds <= PRECISE_ROUNDS else True
        drop = negative & crossing & can_drop
        fraud_short = negative & is_debit[sel] & ~can_drop
        if fraud_short.any():  # a fraud debit needs room: drop the victim's own legitimate spending
            drop |= np.isin(a, np.unique(a[fraud_short])) & can_drop
        dropped = row[sel[drop]]
        if not len(dropped):
            raise RuntimeError("wallet balances cannot be settled: a fraud debit exceeds what its account received")
        keep[dropped] = False
        dirty[:] = False
        dirty[events["account"][dropped]] = True
        transfers = dropped[events["type"][dropped] == T["transfer"]]
        dirty[events["counterparty"][transfers]] = True
    else:
        raise RuntimeError(f"wallet balances did not settle in {MAX_ROUNDS} rounds")

    live = (row < 0) | keep[np.maximum(row, 0)]
    running = _running(account[live], delta[live], opening_fen)
    if len(running) and running.min() < 0:
        raise RuntimeError("a wallet balance is negative after settlement")
    moved = np.bincount(account[live], weights=delta[live], minlength=n_accounts)  # exact: sums stay below 2^53
    closing = opening_fen + moved.round().astype(np.int64)
    return Settlement(keep=keep, closing_fen=closing, rounds=rounds)


def _running(account: np.ndarray, delta: np.ndarray, opening_fen: np.ndarray) -> np.ndarray:
    """Balance after each entry; entries are grouped by account and in time order within an account."""
    if not len(account):
        return np.zeros(0, dtype=np.int64)
    total = np.cumsum(delta)
    first = np.flatnonzero(np.concatenate([[True], account[1:] != account[:-1]]))
    lengths = np.diff(np.concatenate([first, [len(account)]]))
    before_group = np.repeat(total[first] - delta[first], lengths)
    return total - before_group + opening_fen[account]
