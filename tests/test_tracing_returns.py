"""The return plan and the exact-money helpers, under hypothesis: never more than frozen, reconciled to the
cent, direct where one victim, pro rata by loss where mixed, rising tide equalises recovery."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskguard.tracing.money import AmountError, money, split, to_decimal, to_minor
from riskguard.tracing.returns import Claim, plan_returns


@given(total=st.integers(0, 10**9), weights=st.dictionaries(st.integers(0, 20), st.integers(0, 10**6), max_size=8))
def test_split_is_exact_and_never_exceeds_a_rounded_up_share(total: int, weights: dict[int, int]) -> None:
    parts = split(total, weights)
    weight = sum(weights.values())
    if weight == 0 or total == 0:
        assert parts == {}
        return
    assert sum(parts.values()) == total
    for key, part in parts.items():
        assert 0 < part <= -(-total * weights[key] // weight)
        if total <= weight:
            assert part <= weights[key]


def test_amounts_are_exact() -> None:
    assert to_minor("1234.5") == 123450
    assert to_minor(Decimal("0.01")) == 1
    assert money(123450) == "1234.50"
    assert to_decimal(7) == Decimal("0.07")
    for bad in ("1.234", "-1", "abc", "NaN"):
        with pytest.raises(AmountError):
            to_minor(bad)


@st.composite
def cases(draw: Any) -> tuple[list[tuple[int, int, dict[int, int]]], list[Claim]]:
    n_victims = draw(st.integers(1, 6))
    claims = []
    for v in range(n_victims):
        loss = draw(st.integers(1, 10**7))
        claims.append(Claim(v, loss, draw(st.integers(0, loss))))
    frozen = []
    for account in range(draw(st.integers(0, 8))):
        victims = draw(st.lists(st.integers(0, n_victims - 1), min_size=1, max_size=n_victims, unique=True))
        attribution = {v: draw(st.integers(1, 10**7)) for v in victims}
        amount = draw(st.integers(1, sum(attribution.values())))
        frozen.append((100 + account, amount, attribution))
    return frozen, claims


@settings(max_examples=300, deadline=None)
@given(case=cases(), tide=st.booleans())
def test_the_plan_never_allocates_more_than_frozen_and_reconciles_to_the_cent(case: Any, tide: bool) -> None:
    frozen, claims = case
    plan = plan_returns(frozen, claims, rising_tide=tide)
    assert plan.frozen == sum(f[1] for f in frozen)
    assert plan.allocated + plan.unallocated == plan.frozen
    by_account = {a.account: a for a in plan.accounts}
    for account, amount, attribution in frozen:
        result = by_account[account]
        assert result.frozen == amount
        assert 0 <= result.unallocated <= amount
        assert set(result.allocations) <= {v for v, a in attribution.items() if a > 0}
        assert all(x > 0 for x in result.allocations.values())
        assert result.method == ("direct" if len(attribution) == 1 else ("rising_tide" if tide else "pari_passu"))
    for claim in claims:
        received = plan.direct.get(claim.victim, 0) + plan.pooled.get(claim.victim, 0)
        assert claim.recovered + received <= claim.loss  # nobody is paid twice
    # money stays unallocated only when every victim of that account is fully paid
    for result in plan.accounts:
        if result.unallocated:
            victims = next(f[2] for f in frozen if f[0] == result.account)
            for victim in victims:
                claim = claims[victim]
                assert claim.recovered + plan.direct.get(victim, 0) + plan.pooled.get(victim, 0) == claim.loss


def test_direct_return_goes_to_the_one_victim_and_mixed_money_is_shared_by_loss() -> None:
    claims = [Claim(0, 60_000, 0), Claim(1, 30_000, 0), Claim(2, 10_000, 0)]
    plan = plan_returns([(7, 5_000, {2: 5_000}), (8, 9_000, {0: 4_000, 1: 5_000})], claims)
    assert plan.direct == {2: 5_000}
    # pari passu by loss (60,000 : 30,000), not by what was traced there (4,000 : 5,000)
    assert plan.pooled == {0: 6_000, 1: 3_000}
    assert plan.unallocated == 0


def test_pari_passu_caps_a_victim_at_the_claim_and_shares_the_rest() -> None:
    claims = [Claim(0, 100_000, 99_000), Claim(1, 100_000, 0)]
    plan = plan_returns([(1, 10_000, {0: 5_000, 1: 5_000})], claims)
    assert plan.pooled == {0: 1_000, 1: 9_000}


def test_rising_tide_lifts_the_least_recovered_first_to_one_level() -> None:
    # victim 0 already recovered half elsewhere; victim 1 nothing
    claims = [Claim(0, 10_000, 5_000), Claim(1, 10_000, 0)]
    plan = plan_returns([(1, 6_000, {0: 1, 1: 1})], claims, rising_tide=True)
    # level λ: 10,000 λ − 5,000 + 10,000 λ = 6,000 → λ = 0.55: victim 0 gets 500, victim 1 5,500
    assert plan.pooled == {0: 500, 1: 5_500}
    pari = plan_returns([(1, 6_000, {0: 1, 1: 1})], claims)
    assert pari.pooled == {0: 3_000, 1: 3_000}


@settings(max_examples=200, deadline=None)
@given(case=cases())
def test_rising_tide_pays_each_victim_within_a_cent_of_one_common_level(case: Any) -> None:
    frozen, claims = case
    if not frozen:
        return
    account, amount, attribution = frozen[0]
    victims = sorted(attribution)
    plan = plan_returns([(account, amount, attribution)], claims, rising_tide=True)
    paid = plan.accounts[0].allocations if len(victims) > 1 else {}
    if len(victims) == 1:
        return
    prior = {v: claims[v].recovered for v in victims}
    loss = {v: claims[v].loss for v in victims}

    def filled(level: Fraction) -> Fraction:
        return sum((min(max(level * loss[v] - prior[v], 0), loss[v] - prior[v]) for v in victims), Fraction(0))

    pool = min(amount, sum(loss[v] - prior[v] for v in victims))
    low, high = Fraction(0), Fraction(1)
    for _ in range(60):  # bisection, independent of the plan's breakpoint search
        middle = (low + high) / 2
        low, high = (middle, high) if filled(middle) < pool else (low, middle)
    for victim in victims:
        exact = min(max(high * loss[victim] - prior[victim], 0), loss[victim] - prior[victim])
        assert abs(paid.get(victim, 0) - exact) <= 1 + Fraction(1, 10**6)
