"""Alert and case priority — expected loss: score (0..1) × amount at risk, exactly — and SLA clocks.

Each source scores on its own scale, so the score is mapped to 0..1 first:

- review decisions: the decision's score / 100 (the strategy's 0..100 scale, capped);
- graph rings and dense blocks, complaint rings: ``s / (s + HALF)`` with the source's half-saturation
  constant (a ring scoring ``HALF`` counts 0.5, larger rings approach 1);
- fund traces: 1 (a victim reported the loss);
- leak-outreach alerts: the leak alert's score / 100 (account security's 40..100 scale);
- access alerts (privacy): their own 0..1 score (canary 1, bulk 0.9, volume 0.8, off-hours 0.7);
- manual alerts: the score the analyst gives (0..1).

Scores are kept as basis points (integers 0..10,000) and amounts as integers of minor units (cents), so
``priority = score_bp × amount_minor / 10,000`` is computed in integers, rounded half up to the cent, and
shown as a ``Decimal`` string — never a float.

SLA: a case is due ``hours`` after it was opened, by the first tier its priority reaches
(``RISKGUARD_CASE_SLA``, default ``10000:4,1000:24,0:72``: priority ≥ 10,000 → 4 hours, ≥ 1,000 → 24 hours,
otherwise 72); it is *breached* when it is still open past its due time, or was closed after it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from riskguard.errors import ConfigError

BP = 10_000
#: half-saturation constants of the sources whose scores are unbounded
HALF = {"ring": 10.0, "block": 4.0, "agent_ring": 8.0, "loan_ring": 8.0}
DEFAULT_SLA = "10000:4,1000:24,0:72"


def score_bp(source: str, kind: str, score: float | int | Decimal) -> int:
    """The source's score as basis points of 0..1 (see the module docstring)."""
    value = Decimal(str(score))
    if not value.is_finite() or value < 0:
        value = Decimal(0)
    if source in ("review", "leak"):
        unit = min(value, Decimal(100)) / 100
    elif source == "trace":
        unit = Decimal(1)
    elif source in ("manual", "access"):
        unit = min(value, Decimal(1))
    else:
        half = Decimal(str(HALF.get(kind, 10.0)))
        unit = value / (value + half) if value > 0 else Decimal(0)
    return int((unit * BP).to_integral_value(ROUND_HALF_UP))


def minor_of(amount: Decimal | str | int | float | None) -> int:
    """An amount as minor units (cents), rounded half up; 0 for none or for something that is not a number."""
    if amount is None:
        return 0
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return 0
    if not value.is_finite() or value <= 0:
        return 0
    return int((value * 100).to_integral_value(ROUND_HALF_UP))


def priority_minor(score: int, amount_minor: int) -> int:
    """score (basis points) × amount (minor units), in minor units, rounded half up."""
    return (score * amount_minor + BP // 2) // BP


def decimal_of(minor: int) -> Decimal:
    """Minor units as an exact two-decimal ``Decimal``: ``123450`` → ``Decimal("1234.50")``."""
    return (Decimal(minor) / 100).quantize(Decimal("0.01"))


def unit_of(bp: int) -> Decimal:
    return (Decimal(bp) / BP).quantize(Decimal("0.0001"))


def parse_sla(text: str) -> list[tuple[int, float]]:
    """``"10000:4,1000:24,0:72"`` → ``[(1000000, 4.0), (100000, 24.0), (0, 72.0)]`` (threshold in minor
    units, hours), highest threshold first; the last tier must start at 0 so every case has a due time."""
    tiers = []
    for part in text.split(","):
        threshold, sep, hours = part.strip().partition(":")
        try:
            minor = minor_of(threshold) if Decimal(threshold) > 0 else 0
            value = float(hours)
        except (InvalidOperation, ValueError):
            raise ConfigError(f"RISKGUARD_CASE_SLA: {part.strip()!r} is not PRIORITY:HOURS") from None
        if not sep or value <= 0 or Decimal(threshold) < 0:
            raise ConfigError(f"RISKGUARD_CASE_SLA: {part.strip()!r} is not PRIORITY:HOURS with positive hours")
        tiers.append((minor, value))
    tiers.sort(key=lambda t: -t[0])
    if not tiers or tiers[-1][0] != 0:
        raise ConfigError("RISKGUARD_CASE_SLA needs a tier starting at 0 (e.g. 0:72)")
    return tiers


def sla_hours(tiers: list[tuple[int, float]], priority: int) -> float:
    for threshold, hours in tiers:
        if priority >= threshold:
            return hours
    return tiers[-1][1]


def due_at(tiers: list[tuple[int, float]], priority: int, opened: datetime) -> datetime:
    return opened + timedelta(hours=sla_hours(tiers, priority))


def breached(due: datetime, closed_at: datetime | None, now: datetime) -> bool:
    return (closed_at or now) > due
