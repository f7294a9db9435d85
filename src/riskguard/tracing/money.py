"""Exact money for tracing: integer minor units (1/100 of the currency unit) inside, ``Decimal`` outside.

Splitting an amount among several holders uses the largest-remainder method (Hamilton's method): each
holder gets the floor of its exact share, and the few minor units left over go to the largest fractional
parts (ties to the holder listed first). The parts always add up to the total exactly, and no part ever
exceeds its exact share rounded up, so a part never exceeds the holder's weight when the total does not
exceed the sum of the weights. Written here because it must run on plain ``int`` in the tracer's inner
loop; ``fractions``/``decimal`` would be ten times slower.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

CENT = Decimal("0.01")


class AmountError(ValueError):
    """An amount that is not a non-negative number with at most two decimals."""


def to_minor(value: Decimal | str | int) -> int:
    """``"1234.5"`` → ``123450``; refuses negative numbers and more than two decimals."""
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise AmountError(f"{value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise AmountError(f"{value!r} must be a non-negative amount")
    scaled = number * 100
    if scaled != scaled.to_integral_value():
        raise AmountError(f"{value!r} has more than two decimals")
    return int(scaled)


def to_decimal(minor: int) -> Decimal:
    """``123450`` → ``Decimal("1234.50")``."""
    return (Decimal(minor) / 100).quantize(CENT)


def money(minor: int) -> str:
    """The decimal string of an amount in minor units (what JSON documents carry): ``123450`` → ``"1234.50"``."""
    sign, value = ("-", -minor) if minor < 0 else ("", minor)
    return f"{sign}{value // 100}.{value % 100:02d}"


def split(total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """``total`` divided in proportion to ``weights`` (non-negative integers), exactly, largest remainder.

    Keys of zero weight get nothing; the result has only positive parts."""
    weight = sum(weights.values())
    if total <= 0 or weight <= 0:
        return {}
    if total == weight:
        return {k: w for k, w in weights.items() if w > 0}
    if len(weights) == 1:
        (key,) = weights
        return {key: total}
    parts: dict[K, int] = {}
    rests: list[tuple[int, K]] = []
    given = 0
    for key, w in weights.items():
        part, rest = divmod(total * w, weight)
        if part:
            parts[key] = part
            given += part
        if rest:
            rests.append((rest, key))
    left = total - given
    if left == 1:
        key = max(rests, key=_first)[1]  # max keeps the first of equal remainders
        parts[key] = parts.get(key, 0) + 1
    elif left:
        rests.sort(key=_first, reverse=True)  # stable: equal remainders keep their order
        for _, key in rests[:left]:
            parts[key] = parts.get(key, 0) + 1
    return parts


def _first(item: tuple[int, object]) -> int:
    return item[0]


def share(total: int, part: int, whole: int) -> int:
    """``total × part / whole`` rounded down (``total`` itself when ``part == whole``)."""
    if part >= whole:
        return total
    return total * part // whole
