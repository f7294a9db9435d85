"""The exact arithmetic every feature back end shares, so that memory, Redis and the offline path give
identical values: event times as integer microseconds, amounts as integer 1/10,000 units, buckets by
integer division, and one conversion of each result back to what rules read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from riskguard.events.schema import Event
from riskguard.features.spec import AMOUNT_SCALE

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MICROS = 1_000_000
_QUANTUM = Decimal(1) / AMOUNT_SCALE


def micros(moment: datetime) -> int:
    """A timezone-aware time as integer microseconds since the epoch (exact, unlike ``timestamp()``)."""
    return (moment - EPOCH) // MICROSECOND


def amount_units(amount: Decimal) -> int:
    """An amount in integer 1/10,000 units (half-even below that; currencies have at most 4 places)."""
    return int(amount.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN) * AMOUNT_SCALE)


def units_amount(units: int) -> Decimal:
    return Decimal(units) / AMOUNT_SCALE


def average(total_units: int, count: int) -> Decimal:
    return Decimal(total_units) / (count * AMOUNT_SCALE)


def seconds_between(later_us: int, earlier_us: int) -> float:
    """Seconds from ``earlier_us`` to ``later_us``, never negative (an earlier-arrived event of the same
    bucket may carry a later time than the event being decided)."""
    return max(0, later_us - earlier_us) / MICROS


def field_token(event: Event, field: str) -> str | None:
    """The value ``distinct`` counts, as a string on every back end (None when the event lacks it)."""
    if field.startswith("attributes."):
        value: Any = event.attributes.get(field[len("attributes.") :])
    else:
        value = getattr(event, field)
    if value is None or isinstance(value, (dict, list)):
        return None if value is None else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def entity_key(event: Event, fields: tuple[str, ...]) -> str | None:
    """The state key of an event for a feature's entity fields; None when the event lacks any of them.

    Composite keys join their parts with U+001F (unit separator), which identifiers never contain.
    """
    if len(fields) == 1:
        value = getattr(event, fields[0])
        return None if value is None else str(value)
    parts = []
    for field in fields:
        value = getattr(event, field)
        if value is None:
            return None
        parts.append(str(value))
    return "\x1f".join(parts)
