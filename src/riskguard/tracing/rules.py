"""Allocation rules: which part of the money leaving an account is the traced (victims') money.

An account that holds traced money of several victims also holds its own (clean) money. When money
leaves, a rule says how much of it is traced money, and whose. Every rule keeps two invariants: the
traced money an account holds never exceeds its wallet balance, and money is conserved (what leaves
traced is exactly what the account's traced holdings lose). Amounts are integer minor units; where a
rule divides an amount among victims it uses the largest-remainder split (``money.split``), so parts add
up to the cent. The definitions, as courts and forensic accountants use them:

- ``libr`` — **lowest intermediate balance rule**. The holder is presumed to spend their own money first:
  an outflow is traced money only for the part that exceeds the clean money then in the account, so the
  traced money held never exceeds the lowest balance the account reached since it arrived, and later
  clean deposits never refill it. Where several victims' money is held, the traced part of an outflow is
  shared among them in proportion to what each holds. The default, and the rule for freezing.
- ``proportional`` — **haircut**. Every outflow carries the account's traced share at that moment:
  traced money out = outflow × traced held / balance, shared among victims in proportion.
- ``fifo`` — **first in, first out** (Clayton's case). Money leaves in the order it arrived (the opening
  balance first). Each arrival is a lot; an outflow consumes the oldest lots; a lot partly consumed
  gives up its traced money in proportion to the part consumed.
- ``lifo`` — **last in, first out**. Money leaves in the reverse order of arrival: the newest lots first.

``poison`` (any taint taints all) is not an allocation rule: it cannot say how much, only where money
may have gone, so riskguard uses it for alerts only (``alerts.py``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from riskguard.tracing.money import share, split

RULES: tuple[str, ...] = ("libr", "proportional", "fifo", "lifo")
DEFAULT_RULE = "libr"


class Holding:
    """The traced money one account holds, per victim, and the rule's bookkeeping."""

    __slots__ = (
        "active",
        "escaped",
        "first",
        "hop",
        "in_by",
        "lots",
        "pending",
        "taint",
        "total",
        "traced_in",
        "traced_out",
    )

    def __init__(self) -> None:
        self.taint: dict[int, int] = {}  # victim → traced money held
        self.total = 0
        self.hop: dict[int, int] = {}  # victim → fewest hops at which their money arrived
        self.first: dict[int, int] = {}  # victim → row of first arrival
        self.in_by: dict[int, int] = {}  # victim → traced money received
        self.traced_in = 0
        self.traced_out = 0
        self.escaped = 0
        self.active = False
        self.lots: Any = None  # fifo: deque of [start, end, taint, total]; lifo: list (stack) of [amount, taint, total]
        self.pending: dict[int, dict[int, int]] | None = None  # lifo: credit entry → traced money arriving

    def take(self, carried: dict[int, int]) -> None:
        """Removes ``carried`` from the holdings."""
        taint = self.taint
        for victim, amount in carried.items():
            left = taint[victim] - amount
            if left:
                taint[victim] = left
            else:
                del taint[victim]
            self.total -= amount

    def take_all(self) -> dict[int, int]:
        carried = self.taint
        self.taint = {}
        self.total = 0
        return carried


def libr_out(holding: Holding, amount: int, balance_before: int) -> dict[int, int] | None:
    clean = balance_before - holding.total
    out = amount - clean
    if out <= 0:
        return None
    if out >= holding.total:
        return holding.take_all()
    carried = split(out, holding.taint)
    holding.take(carried)
    return carried


def proportional_out(holding: Holding, amount: int, balance_before: int) -> dict[int, int] | None:
    if amount >= balance_before:
        return holding.take_all()
    out = share(holding.total, amount, balance_before)
    if out <= 0:
        return None
    carried = split(out, holding.taint)
    holding.take(carried)
    return carried


def _add(into: dict[int, int], part: dict[int, int]) -> None:
    for victim, amount in part.items():
        into[victim] = into.get(victim, 0) + amount


def _take_part(taint: dict[int, int], total: int, used: int, length: int) -> tuple[dict[int, int], int]:
    """Takes the traced money of ``used`` of ``length`` units holding ``taint`` (mutated); returns the
    part taken and its total."""
    out = share(total, used, length)
    part = split(out, taint)
    for victim, amount in part.items():
        left = taint[victim] - amount
        if left:
            taint[victim] = left
        else:
            del taint[victim]
    return part, out


def fifo_receive(holding: Holding, position: int, amount: int, part: dict[int, int]) -> None:
    if holding.lots is None:
        holding.lots = deque()
    holding.lots.append([position, position + amount, dict(part), sum(part.values())])


def fifo_out(holding: Holding, amount: int, position: int) -> dict[int, int] | None:
    """Consumes the inflow axis from ``position`` (the account's outflow so far) for ``amount``."""
    lots = holding.lots
    if not lots:
        return None
    end = position + amount
    carried: dict[int, int] = {}
    while lots:
        lot = lots[0]
        start, stop = lot[0], lot[1]
        if start >= end:
            break
        used = min(stop, end) - start
        if used >= stop - start:
            _add(carried, lot[2])
            lot[2], lot[3] = {}, 0
        else:
            part, out = _take_part(lot[2], lot[3], used, stop - start)
            _add(carried, part)
            lot[3] -= out
        lot[0] = start + used
        if lot[0] >= stop or lot[3] == 0:
            lots.popleft()
        else:
            break
    if not carried:
        return None
    holding.take(carried)
    return carried


def lifo_start(holding: Holding, balance_before: int) -> None:
    """The stack of an account that starts holding traced money: its balance so far is one clean lot."""
    holding.lots = [[balance_before, None, 0]] if balance_before > 0 else []
    holding.pending = {}


def lifo_credit(holding: Holding, entry: int, amount: int) -> None:
    stack = holding.lots
    part = holding.pending.pop(entry, None) if holding.pending else None
    if part:
        stack.append([amount, dict(part), sum(part.values())])
    elif stack and stack[-1][1] is None:
        stack[-1][0] += amount
    else:
        stack.append([amount, None, 0])


def lifo_out(holding: Holding, amount: int) -> dict[int, int] | None:
    stack = holding.lots
    carried: dict[int, int] = {}
    while amount > 0 and stack:
        lot = stack[-1]
        size = lot[0]
        if size <= amount:
            if lot[1]:
                _add(carried, lot[1])
            stack.pop()
            amount -= size
        else:
            if lot[1]:
                part, out = _take_part(lot[1], lot[2], amount, size)
                lot[2] -= out
                _add(carried, part)
            lot[0] = size - amount
            amount = 0
    if not carried:
        return None
    holding.take(carried)
    return carried
