"""The return plan: who gets how much of the frozen money back.

Following the 2016 rules on returning frozen funds in telecom-fraud cases (return by tracing the source;
directly where one victim's money can be told apart; pro rata by loss where it cannot):

1. **Direct return.** Money frozen on an account that holds traced money of one victim only goes to that
   victim, up to what the victim can still claim (reported loss − already recovered − returned so far).
2. **Pari passu.** Money frozen on an account that mixes several victims' money is shared among those
   victims in proportion to their reported losses, each capped at what they can still claim (what a
   capped victim cannot take is shared again among the others).
3. **Rising tide** (optional, instead of 2). Victims who already recovered money — elsewhere
   (``recovered`` in the report) or from earlier accounts of this plan — are not paid twice: the pool
   lifts the victims with the lowest recovery ratio first, until all reach the same ratio of
   (recovered + returned) / loss, or the pool runs out.

Accounts are taken in freeze-order priority, direct ones first. The plan never allocates more than is
frozen: for every account, allocated + unallocated = frozen, to the cent (integer minor units, with
largest-remainder rounding); money nobody can claim stays ``unallocated`` (for the holder, after the
public notice period, or for claims not yet reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from riskguard.tracing.money import split


@dataclass
class Claim:
    victim: int
    loss: int
    recovered: int  # before this plan


@dataclass
class AccountReturn:
    account: int
    frozen: int
    method: str  # direct | pari_passu | rising_tide
    allocations: dict[int, int] = field(default_factory=dict)

    @property
    def unallocated(self) -> int:
        return self.frozen - sum(self.allocations.values())


@dataclass
class ReturnPlan:
    method: str
    accounts: list[AccountReturn]
    direct: dict[int, int]
    pooled: dict[int, int]

    @property
    def frozen(self) -> int:
        return sum(a.frozen for a in self.accounts)

    @property
    def allocated(self) -> int:
        return sum(self.direct.values()) + sum(self.pooled.values())

    @property
    def unallocated(self) -> int:
        return sum(a.unallocated for a in self.accounts)


def plan_returns(
    frozen: list[tuple[int, int, dict[int, int]]], claims: list[Claim], *, rising_tide: bool = False
) -> ReturnPlan:
    """``frozen``: (account, amount frozen, traced money there per victim), in priority order."""
    by_victim = {c.victim: c for c in claims}
    returned = {c.victim: 0 for c in claims}

    def room(victim: int) -> int:
        claim = by_victim[victim]
        return max(0, claim.loss - claim.recovered - returned[victim])

    direct: dict[int, int] = {}
    pooled: dict[int, int] = {}
    results: list[AccountReturn] = []
    single = [f for f in frozen if len([v for v, a in f[2].items() if a > 0]) == 1]
    mixed = [f for f in frozen if len([v for v, a in f[2].items() if a > 0]) > 1]
    for account, amount, attribution in single:
        (victim,) = [v for v, a in attribution.items() if a > 0]
        give = min(amount, room(victim))
        result = AccountReturn(account, amount, "direct")
        if give > 0:
            result.allocations[victim] = give
            returned[victim] += give
            direct[victim] = direct.get(victim, 0) + give
        results.append(result)
    method = "rising_tide" if rising_tide else "pari_passu"
    for account, amount, attribution in mixed:
        victims = sorted(v for v, a in attribution.items() if a > 0)
        if rising_tide:
            allocations = _rising_tide(amount, victims, by_victim, returned)
        else:
            allocations = _pari_passu(amount, victims, by_victim, room)
        result = AccountReturn(account, amount, method, allocations)
        for victim, give in allocations.items():
            returned[victim] += give
            pooled[victim] = pooled.get(victim, 0) + give
        results.append(result)
    return ReturnPlan(method=f"direct + {method}", accounts=results, direct=direct, pooled=pooled)


def _pari_passu(amount: int, victims: list[int], claims: dict[int, Claim], room: object) -> dict[int, int]:
    left = {v: room(v) for v in victims}  # type: ignore[operator]
    allocations: dict[int, int] = {}
    pool = amount
    open_victims = [v for v in victims if left[v] > 0]
    while pool > 0 and open_victims:
        parts = split(pool, {v: claims[v].loss for v in open_victims})
        capped = False
        for victim, part in parts.items():
            give = min(part, left[victim])
            if give < part:
                capped = True
            allocations[victim] = allocations.get(victim, 0) + give
            left[victim] -= give
            pool -= give
        open_victims = [v for v in open_victims if left[v] > 0]
        if not capped:
            break
    return {v: a for v, a in allocations.items() if a > 0}


def _rising_tide(amount: int, victims: list[int], claims: dict[int, Claim], returned: dict[int, int]) -> dict[int, int]:
    """Water-filling: the level λ such that Σ clamp(λ·loss − prior, 0, loss − prior) = pool (λ ≤ 1)."""
    loss = {v: claims[v].loss for v in victims}
    prior = {v: min(loss[v], claims[v].recovered + returned[v]) for v in victims}
    capacity = sum(loss[v] - prior[v] for v in victims)
    pool = min(amount, capacity)
    if pool <= 0:
        return {}

    def filled(level: Fraction) -> Fraction:
        return sum(
            (max(Fraction(0), min(level * loss[v] - prior[v], Fraction(loss[v] - prior[v]))) for v in victims),
            Fraction(0),
        )

    breakpoints = sorted({Fraction(prior[v], loss[v]) for v in victims} | {Fraction(1)})
    low = breakpoints[0]
    level = Fraction(1)
    for point in breakpoints:
        if filled(point) >= pool:
            # linear between low and point: the receiving victims are those with prior/loss < point
            rising = [v for v in victims if Fraction(prior[v], loss[v]) < point]
            slope = sum(loss[v] for v in rising)
            level = low + (pool - filled(low)) / slope
            break
        low = point
    exact = {v: max(Fraction(0), level * loss[v] - prior[v]) for v in victims}
    floors = {v: int(x) for v, x in exact.items()}
    left = pool - sum(floors.values())
    order = sorted(victims, key=lambda v: (-(exact[v] - floors[v]), v))
    for v in order[:left]:
        floors[v] += 1
    return {v: a for v, a in floors.items() if a > 0}
