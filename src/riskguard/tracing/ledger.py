"""The transfer ledger as the tracer reads it: money-moving rows in time order, indexed by account and time.

A ledger holds one row per money movement, in time order: ``transfer`` (payer → payee, or to an account
outside the platform), ``payment`` (to a merchant), ``withdrawal`` (to a bank card) and ``credit`` (money
arriving from outside the event stream: salaries, inbound bank transfers). Wallet rules are those of the
platform (and of the simulator): a transfer or payment that carries a ``card_id`` is paid by the payer's
bank card, not the wallet, so it credits the payee without debiting the payer; a withdrawal always debits
the wallet.

**The index.** Each row becomes at most two *entries*: a debit of the payer's wallet (key ``2·row``) and a
credit of the payee's wallet (key ``2·row + 1``), so that the debit of a transfer always sorts before its
credit and every entry has one global, time-ordered key. Entries are sorted by (account, key) once, with
numpy, into contiguous per-account segments (CSR offsets), and carry the wallet balance after the entry
and the entry's position on the account's cumulative-inflow or cumulative-outflow axis (what FIFO
tracing needs). The tracer then reads an account's history from any point in time with one binary search,
and never scans the rows of accounts that hold no traced money.

**Balances.** The ledger shows flows on the platform, not balances, so the opening balance of each account
(its balance before its first row here) comes from one of two places, stated in every trace result as
``balance_basis``:

- ``given``: opening balances supplied with the ledger (a world's ``accounts.parquet``, or the request's
  ``opening_balances``). Where a given opening balance is too low for the flows that follow (a debit
  would take the wallet below zero: an unseen credit), it is raised to the smallest balance that keeps
  the wallet non-negative, and the number of accounts raised is reported;
- ``reconstructed``: no opening balances; each account's opening balance is taken as the smallest one
  consistent with its flows (its wallet never below zero). This is a lower bound of the true balance at
  every moment, so amounts traced with it are lower bounds too (money the platform cannot see is treated
  as the holder's own, clean money).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl

from riskguard.errors import ValidationFailed

KINDS: tuple[str, ...] = ("transfer", "payment", "withdrawal", "credit")
TRANSFER, PAYMENT, WITHDRAWAL, CREDIT = range(4)
#: exits: how money leaves the platform, by row kind (a transfer leaves only when it goes off-platform)
EXIT_NAMES = {TRANSFER: "off_platform_transfer", PAYMENT: "payment", WITHDRAWAL: "withdrawal"}

FRAME_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "ts": pl.Int64(),  # milliseconds since the epoch, UTC
    "kind": pl.String(),  # transfer | payment | withdrawal | credit
    "account": pl.String(),  # the payer; for a credit, the account credited
    "counterparty": pl.String(),  # a transfer's payee
    "merchant": pl.String(),
    "card": pl.String(),
    "amount": pl.Int64(),  # minor units
    "wallet": pl.Boolean(),  # the payer's wallet pays (false: a bank card pays)
    "off_platform": pl.Boolean(),  # a transfer to an account outside the platform
    "age_days": pl.Int64(),  # the payer account's age in days at the event (attribute), if known
}
AMOUNT_TEXT = re.compile(r"^\d{1,15}(\.\d{1,2})?$")


@dataclass
class Basis:
    """How balances are known: ``given`` or ``reconstructed``, and how many given ones had to be raised."""

    kind: str
    raised: int = 0
    detail: str = ""

    def describe(self) -> dict[str, object]:
        if self.kind == "given":
            text = "opening balances given with the ledger; balances follow from them and the flows" + (
                f"; {self.raised} opening balances were raised to keep wallets non-negative" if self.raised else ""
            )
        else:
            text = (
                "reconstructed from the flows: each account's opening balance is the smallest that keeps its "
                "wallet non-negative, a lower bound of the true balance; money the platform does not see is "
                "treated as the holder's own (clean) money, so traced amounts are lower bounds"
            )
        return {"basis": self.kind, "assumption": text, "raised_accounts": self.raised, "source": self.detail}


@dataclass
class View:
    """A subset of the entries (all of them, or only debits), in per-account segments."""

    key: np.ndarray  # int64, 2·row (debit) or 2·row + 1 (credit)
    amount: np.ndarray  # int64, positive
    side: np.ndarray  # int8, 0 debit, 1 credit
    balance: np.ndarray  # int64, wallet balance after the entry
    pos: np.ndarray  # int64, debit: outflow before it; credit: opening + inflow before it
    off: np.ndarray  # int64, segment offsets per account (n_accounts + 1)


@dataclass
class Ledger:
    """Money-moving rows in time order (one numpy array per column) and their index."""

    ts: np.ndarray  # int64 ms
    kind: np.ndarray  # int8, KINDS
    payer: np.ndarray  # int32 account code; -1 for credits
    payee: np.ndarray  # int32 account code credited; -1 for payments, withdrawals, off-platform transfers
    amount: np.ndarray  # int64 minor units
    debit: np.ndarray  # bool: the payer's wallet is debited
    age_days: np.ndarray  # int32, -1 unknown
    event_id: pl.Series  # String, null for credits without an event
    where: pl.Series  # String: merchant, card, outside payee, or the credit's kind
    accounts: pl.Series  # String: account identifier per code
    currency: str = "CNY"
    opening_given: np.ndarray | None = None  # int64 per account code, when given
    source: str = ""
    _basis: Basis | None = field(default=None, init=False, repr=False)
    _opening: np.ndarray | None = field(default=None, init=False, repr=False)
    _credit_entry: np.ndarray | None = field(default=None, init=False, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        frame: pl.DataFrame,
        *,
        opening: dict[str, int] | pl.DataFrame | None = None,
        currency: str = "CNY",
        source: str = "",
    ) -> Ledger:
        """A ledger from a frame with the columns of ``FRAME_SCHEMA`` (missing optional ones are filled).

        ``opening`` gives opening balances in minor units, as a mapping of account identifiers or a frame
        with columns ``account`` and ``opening``; accounts not named start from zero (raised where the
        flows need more: see ``Basis``)."""
        frame = _normalise(frame)
        unknown = frame.filter(~pl.col("kind").is_in(list(KINDS)))
        if unknown.height:
            raise ValidationFailed(
                [{"loc": ["ledger", "kind"], "type": "value_error", "msg": f"unknown kind {unknown['kind'][0]!r}"}]
            )
        if frame.height and frame["amount"].min() <= 0:  # type: ignore[operator]
            raise ValidationFailed([{"loc": ["ledger", "amount"], "type": "value_error", "msg": "amounts must be > 0"}])
        n = frame.height
        # strings are encoded before anything is reordered (polars sorts gathered strings slowly)
        kind = frame["kind"].replace_strict(list(KINDS), list(range(len(KINDS))), return_dtype=pl.Int8)
        kind_np = kind.to_numpy().astype(np.int8)
        is_credit = kind_np == CREDIT
        onto_platform = (kind_np == TRANSFER) & ~frame["off_platform"].to_numpy()
        payer_name = frame["account"].set(pl.Series(is_credit), None)
        payee_name = pl.select(
            pl.when(pl.lit(pl.Series(is_credit)))
            .then(frame["account"])
            .when(pl.lit(pl.Series(onto_platform)))
            .then(frame["counterparty"])
        ).to_series()
        codes, names = _encode(pl.concat([payer_name, payee_name]))
        order = _time_order(frame["ts"].to_numpy())
        payer, payee = codes[:n][order], codes[n:][order]
        kind_np = kind_np[order]
        debit = (payer >= 0) & ((kind_np == WITHDRAWAL) | frame["wallet"].to_numpy()[order])
        where = pl.select(
            pl.when(pl.lit(kind == PAYMENT))
            .then(frame["merchant"])
            .when(pl.lit(kind == WITHDRAWAL))
            .then(frame["card"])
            .when(pl.lit(kind == TRANSFER) & pl.lit(pl.Series(~onto_platform)))
            .then(frame["counterparty"])
            .when(pl.lit(kind == CREDIT))
            .then(frame["merchant"].fill_null(pl.lit("outside")))
        ).to_series()
        gather = pl.Series(order.astype(np.int64))
        ledger = cls(
            ts=frame["ts"].to_numpy().astype(np.int64)[order],
            kind=kind_np,
            payer=payer,
            payee=payee,
            amount=frame["amount"].to_numpy().astype(np.int64)[order],
            debit=debit,
            age_days=frame["age_days"].fill_null(-1).to_numpy().astype(np.int32)[order],
            event_id=frame["event_id"].gather(gather),
            where=where.gather(gather),
            accounts=names,
            currency=currency,
            source=source,
        )
        if opening is not None:
            given = (
                opening
                if isinstance(opening, pl.DataFrame)
                else pl.DataFrame(
                    {"account": list(opening), "opening": list(opening.values())},
                    schema={"account": pl.String, "opening": pl.Int64},
                )
            )
            found = ledger.codes_of(given["account"].cast(pl.String))
            ledger.opening_given = np.zeros(len(names), dtype=np.int64)
            ledger.opening_given[found[found >= 0]] = given["opening"].cast(pl.Int64).to_numpy()[found >= 0]
        return ledger

    # ------------------------------------------------------------------ identifiers
    def __len__(self) -> int:
        return len(self.ts)

    @property
    def n_accounts(self) -> int:
        return len(self.accounts)

    @cached_property
    def _account_hashes(self) -> tuple[np.ndarray, np.ndarray]:
        hashes = _hash(self.accounts)
        order = np.argsort(hashes)
        return hashes[order], order

    def codes_of(self, accounts: pl.Series) -> np.ndarray:
        """The code of each account identifier (-1 where the ledger never names it)."""
        return _find(accounts, *self._account_hashes, self.accounts)

    def code(self, account: str) -> int:
        """The code of an account identifier, or -1 when the ledger never names it."""
        return int(self.codes_of(pl.Series([account], dtype=pl.String))[0])

    def name(self, code: int) -> str:
        return str(self.accounts[int(code)])

    @cached_property
    def _id_hashes(self) -> tuple[np.ndarray, np.ndarray]:
        hashes = _hash(self.event_id)
        order = np.argsort(hashes)
        return hashes[order], order

    def rows_of(self, event_ids: list[str]) -> list[int]:
        """Row of each event id (-1 where the ledger has no such event)."""
        if not event_ids:
            return []
        return _find(pl.Series(event_ids, dtype=pl.String), *self._id_hashes, self.event_id).tolist()

    def row_at_or_before(self, ms: int) -> int:
        """The last row at or before ``ms`` (-1 when none)."""
        return int(np.searchsorted(self.ts, ms, side="right")) - 1

    # ------------------------------------------------------------------ index
    @cached_property
    def index(self) -> View:
        """Every wallet entry, by account then time, with balances and FIFO positions."""
        n = len(self)
        rows = np.arange(n, dtype=np.int64)
        d_rows = rows[self.debit]
        c_rows = rows[self.payee >= 0]
        account = np.concatenate([self.payer[d_rows], self.payee[c_rows]]).astype(np.int64)
        key = np.concatenate([2 * d_rows, 2 * c_rows + 1])
        side = np.concatenate([np.zeros(len(d_rows), np.int8), np.ones(len(c_rows), np.int8)])
        amount = np.concatenate([self.amount[d_rows], self.amount[c_rows]])
        order = np.argsort(account * (2 * n + 2) + key)  # unique keys: no need for a stable sort
        account, key, side, amount = account[order], key[order], side[order], amount[order]
        del order
        off = np.searchsorted(account, np.arange(self.n_accounts + 1), side="left").astype(np.int64)
        counts = np.diff(off)
        delta = np.where(side == 0, -amount, amount)
        prefix = _segment_cumsum(delta, off, counts)
        lowest = np.zeros(self.n_accounts, dtype=np.int64)
        nonempty = counts > 0
        if nonempty.any():
            lowest[nonempty] = np.minimum.reduceat(prefix, off[:-1][nonempty])
        needed = np.maximum(0, -lowest)
        if self.opening_given is not None:
            opening = np.maximum(self.opening_given, needed)
            self._basis = Basis("given", int((self.opening_given < needed).sum()), self.source)
        else:
            opening = needed
            self._basis = Basis("reconstructed", 0, self.source)
        self._opening = opening
        per_entry_opening = np.repeat(opening, counts)
        balance = per_entry_opening + prefix
        inflow = _segment_cumsum(np.where(side == 1, amount, 0), off, counts)
        outflow = _segment_cumsum(np.where(side == 0, amount, 0), off, counts)
        pos = np.where(side == 1, per_entry_opening + inflow - amount, outflow - amount)
        credit_entry = np.full(n, -1, dtype=np.int64)
        is_credit = side == 1
        credit_entry[key[is_credit] // 2] = np.flatnonzero(is_credit)
        self._credit_entry = credit_entry
        return View(key=key, amount=amount, side=side, balance=balance, pos=pos, off=off)

    @property
    def basis(self) -> Basis:
        self.index  # noqa: B018 - builds the index, which settles the balances
        assert self._basis is not None
        return self._basis

    @property
    def opening(self) -> np.ndarray:
        """Opening balance per account code (given, raised, or reconstructed: see ``basis``)."""
        self.index  # noqa: B018
        assert self._opening is not None
        return self._opening

    @property
    def credit_entry(self) -> np.ndarray:
        """Per row: the index (in ``index``) of its credit entry, or -1."""
        self.index  # noqa: B018
        assert self._credit_entry is not None
        return self._credit_entry

    @cached_property
    def debits(self) -> View:
        """Only the debit entries (what the LIBR, proportional and FIFO rules need), per account."""
        full = self.index
        chosen = np.flatnonzero(full.side == 0)
        account_of_entry = np.repeat(np.arange(self.n_accounts), np.diff(full.off))
        off = np.searchsorted(account_of_entry[chosen], np.arange(self.n_accounts + 1), side="left").astype(np.int64)
        return View(
            key=full.key[chosen],
            amount=full.amount[chosen],
            side=full.side[chosen],
            balance=full.balance[chosen],
            pos=full.pos[chosen],
            off=off,
        )

    @cached_property
    def sent(self) -> tuple[np.ndarray, np.ndarray]:
        """Transfers by payer (wallet or card funded): (rows sorted by payer then time, offsets per account)."""
        rows = np.flatnonzero((self.kind == TRANSFER) & (self.payer >= 0))
        order = np.argsort(self.payer[rows], kind="stable")
        rows = rows[order]
        off = np.searchsorted(self.payer[rows], np.arange(self.n_accounts + 1), side="left").astype(np.int64)
        return rows, off

    def balance_at(self, account: int, row: int) -> int:
        """The wallet balance of ``account`` after every entry up to and including ``row``."""
        view = self.index
        lo, hi = int(view.off[account]), int(view.off[account + 1])
        at = int(np.searchsorted(view.key[lo:hi], 2 * row + 2, side="left"))
        return int(view.balance[lo + at - 1]) if at else int(self.opening[account])

    def balances_at(self, accounts: np.ndarray, row: int) -> np.ndarray:
        return np.array([self.balance_at(int(a), row) for a in accounts], dtype=np.int64)


def _segment_cumsum(values: np.ndarray, off: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each segment."""
    total = np.cumsum(values)
    if not len(total):
        return total
    starts = off[:-1][counts > 0]
    before = np.zeros(len(counts), dtype=total.dtype)
    before[counts > 0] = total[starts] - values[starts]
    return total - np.repeat(before, counts)


def _time_order(ts: np.ndarray) -> np.ndarray:
    """Rows by time, ties in their given order (one unique integer key: quicksort, not a stable sort)."""
    if not len(ts):
        return np.zeros(0, dtype=np.int64)
    span = int(ts.max()) - int(ts.min()) + 1
    if span * len(ts) < 2**62:
        return np.argsort((ts - ts.min()) * len(ts) + np.arange(len(ts)))
    return np.argsort(ts, kind="stable")


def _hash(values: pl.Series) -> np.ndarray:
    return values.hash(seed=0x5EED).to_numpy()


def _encode(values: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Codes (-1 for null) and the distinct values, grouped by a 64-bit hash. A second, independent hash
    must agree within every group; if it does not (two values share the first hash: about one chance in
    10^6 for ten million accounts), the values are encoded exactly instead."""
    present = values.is_not_null().to_numpy()
    codes = np.full(len(values), -1, dtype=np.int32)
    kept = values.filter(pl.Series(present))
    first_hash, second_hash = _hash(kept), kept.hash(seed=0xC0DE).to_numpy()
    order = np.argsort(first_hash)
    ordered = first_hash[order]
    new_group = np.concatenate([[True], ordered[1:] != ordered[:-1]]) if len(order) else np.zeros(0, dtype=bool)
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.cumsum(new_group) - 1
    seconds = second_hash[order]
    collided = len(order) > 1 and bool(((seconds[1:] != seconds[:-1]) & ~new_group[1:]).any())
    names = kept.gather(pl.Series(order[new_group]))
    if collided:
        names = kept.unique().sort()
        inverse = (
            pl.DataFrame({"name": kept})
            .join(
                pl.DataFrame({"name": names, "code": np.arange(len(names), dtype=np.int64)}),
                on="name",
                how="left",
                maintain_order="left",
            )["code"]
            .to_numpy()
        )
    codes[present] = inverse
    return codes, names


def _find(wanted: pl.Series, hashes: np.ndarray, order: np.ndarray, values: pl.Series) -> np.ndarray:
    """Positions in ``values`` of each wanted string (-1 if absent), through its sorted hashes."""
    keys = _hash(wanted)
    low = np.searchsorted(hashes, keys, side="left")
    high = np.searchsorted(hashes, keys, side="right")
    out = np.full(len(wanted), -1, dtype=np.int64)
    single = np.flatnonzero(high - low == 1)
    if len(single):
        candidates = order[low[single]]
        same = (values.gather(pl.Series(candidates)) == wanted.gather(pl.Series(single))).fill_null(False).to_numpy()
        out[single[same]] = candidates[same]
    for i in np.flatnonzero(high - low > 1).tolist():  # a hash collision: compare each candidate
        for at in range(int(low[i]), int(high[i])):
            if values[int(order[at])] == wanted[i]:
                out[i] = int(order[at])
                break
    return out


def _normalise(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every column of ``FRAME_SCHEMA``, in its type (absent optional columns filled)."""
    required = ("ts", "kind", "account", "amount")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValidationFailed(
            [{"loc": ["ledger", c], "type": "missing", "msg": "column is required"} for c in missing]
        )
    defaults = {"wallet": pl.lit(True), "off_platform": pl.lit(False)}
    columns = []
    for name, dtype in FRAME_SCHEMA.items():
        if name in frame.columns:
            expr = pl.col(name).cast(dtype)
            if name in defaults:
                expr = expr.fill_null(defaults[name])
        else:
            expr = defaults.get(name, pl.lit(None)).cast(dtype)
        columns.append(expr.alias(name))
    return frame.select(columns)


def parse_amounts(text: pl.Series, event_ids: pl.Series, field_name: str = "amount") -> pl.Series:
    """Decimal strings → minor units, exactly; a clear error naming the first event whose amount is not
    a non-negative number with at most two decimals."""
    bad = ~text.str.contains(AMOUNT_TEXT.pattern).fill_null(False) & text.is_not_null()
    if bad.any():
        first = int(bad.arg_max() or 0)
        raise ValidationFailed(
            [
                {
                    "loc": ["ledger", field_name],
                    "type": "value_error",
                    "msg": f"event {event_ids[first]!r}: {text[first]!r} is not an amount with at most two decimals",
                }
            ]
        )
    whole = text.str.split_exact(".", 1).struct.field("field_0").cast(pl.Int64)
    frac = text.str.split_exact(".", 1).struct.field("field_1").fill_null("0").str.pad_end(2, "0").cast(pl.Int64)
    return (whole * 100 + frac).alias(field_name)
