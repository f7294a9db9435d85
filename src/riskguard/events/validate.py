"""Turns request bytes into validated events, or a list of errors that name the field and the fix."""

from __future__ import annotations

import ipaddress
import re
import time
from decimal import Decimal
from typing import Any

import msgspec

from riskguard.errors import ValidationFailed
from riskguard.events.schema import (
    EVENT_TYPES,
    MONETARY_TYPES,
    REQUIRED_BY_TYPE,
    Event,
    EventBatch,
)

MAX_AMOUNT = Decimal("1e15")  # a quadrillion in any currency is a client bug, not a payment
MAX_AMOUNT_DECIMALS = 8

_event_decoder = msgspec.json.Decoder(Event)
_batch_decoder = msgspec.json.Decoder(EventBatch)
_attr_encoder = msgspec.json.Encoder()
_PATH = re.compile(r" - at `\$(.*)`$")
_FIELD = re.compile(r"field `([^`]+)`")
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _loc_of(message: str) -> tuple[list[str | int], str]:
    """Splits msgspec's "Expected `str`, got `int` - at `$.a[0].b`" into a location and a reason."""
    loc: list[str | int] = ["body"]
    match = _PATH.search(message)
    reason = message
    if match:
        reason = message[: match.start()]
        for name, index in _PATH_PART.findall(match.group(1)):
            loc.append(int(index) if index else name)
    field = _FIELD.search(reason)
    if field and ("missing required field" in reason or "unknown field" in reason):
        loc.append(field.group(1))
    if reason.startswith(("Invalid enum value", "Invalid value")) and loc[-1] == "type":
        reason += f" (expected one of: {', '.join(EVENT_TYPES)})"
    return loc, reason


def decode_body(body: bytes, type_: Any) -> Any:
    """Decodes a JSON request body into ``type_``; errors name the field (HTTP 422)."""
    return _decode(msgspec.json.Decoder(type_), body)


def _decode(decoder: msgspec.json.Decoder, body: bytes) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        loc, reason = _loc_of(str(exc))
        raise ValidationFailed([{"loc": loc, "msg": reason, "type": "value_error"}]) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed([{"loc": ["body"], "msg": f"malformed JSON: {exc}", "type": "json_invalid"}]) from None


def _depth(value: Any, limit: int, level: int = 1) -> int:
    if level > limit:
        return level
    deepest = level
    if isinstance(value, dict):
        for item in value.values():
            if isinstance(item, (dict, list)):
                deepest = max(deepest, _depth(item, limit, level + 1))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                deepest = max(deepest, _depth(item, limit, level + 1))
    return deepest


def check_event(
    event: Event,
    *,
    max_attributes_bytes: int,
    max_attributes_depth: int,
    prefix: list[str | int],
    max_future_skew_s: float | None = 300.0,
) -> list[dict[str, Any]]:
    """The checks JSON decoding cannot make; returns the errors found (empty when the event is good)."""
    errors: list[dict[str, Any]] = []

    def fail(field: str, msg: str) -> None:
        errors.append({"loc": [*prefix, field], "msg": msg, "type": "value_error"})

    if max_future_skew_s is not None:
        ahead = event.occurred_at.timestamp() - time.time()
        if ahead > max_future_skew_s:
            fail("occurred_at", f"is {ahead:,.0f} s in the future (clock skew allowed: {max_future_skew_s:g} s)")
    for name in REQUIRED_BY_TYPE[event.type]:
        if getattr(event, name) is None:
            fail(name, f"required for events of type {event.type!r}")
    amount = event.amount
    if amount is not None:
        if event.type not in MONETARY_TYPES:
            fail("amount", f"events of type {event.type!r} carry no amount")
        elif not amount.is_finite():
            fail("amount", "must be a finite number")
        elif amount < 0:
            fail("amount", "must not be negative")
        elif amount >= MAX_AMOUNT:
            fail("amount", f"must be below {MAX_AMOUNT:,.0f}")
        elif -amount.as_tuple().exponent > MAX_AMOUNT_DECIMALS:  # type: ignore[operator]
            fail("amount", f"at most {MAX_AMOUNT_DECIMALS} decimal places")
        if event.currency is None and "currency" not in REQUIRED_BY_TYPE[event.type]:
            fail("currency", "required when an amount is given")
    if event.ip is not None:
        try:
            ipaddress.ip_address(event.ip)
        except ValueError:
            fail("ip", f"{event.ip!r} is not an IPv4 or IPv6 address")
    if event.attributes:
        if _depth(event.attributes, max_attributes_depth) > max_attributes_depth:
            fail("attributes", f"nested deeper than {max_attributes_depth} levels")
        else:
            size = len(_attr_encoder.encode(event.attributes))
            if size > max_attributes_bytes:
                fail("attributes", f"{size} bytes encoded; the limit is {max_attributes_bytes}")
    return errors


def parse_event(
    body: bytes,
    *,
    max_attributes_bytes: int = 16384,
    max_attributes_depth: int = 5,
    max_future_skew_s: float | None = 300.0,
) -> Event:
    event = _decode(_event_decoder, body)
    errors = check_event(
        event,
        max_attributes_bytes=max_attributes_bytes,
        max_attributes_depth=max_attributes_depth,
        prefix=["body"],
        max_future_skew_s=max_future_skew_s,
    )
    if errors:
        raise ValidationFailed(errors)
    return event


def parse_batch(
    body: bytes,
    *,
    max_events: int,
    max_attributes_bytes: int = 16384,
    max_attributes_depth: int = 5,
    max_future_skew_s: float | None = 300.0,
) -> list[Event]:
    batch = _decode(_batch_decoder, body)
    if not batch.events:
        raise ValidationFailed(
            [{"loc": ["body", "events"], "msg": "must hold at least one event", "type": "value_error"}]
        )
    if len(batch.events) > max_events:
        raise ValidationFailed(
            [
                {
                    "loc": ["body", "events"],
                    "msg": f"{len(batch.events)} events; at most {max_events} per request",
                    "type": "value_error",
                }
            ]
        )
    errors: list[dict[str, Any]] = []
    for index, event in enumerate(batch.events):
        errors.extend(
            check_event(
                event,
                max_attributes_bytes=max_attributes_bytes,
                max_attributes_depth=max_attributes_depth,
                prefix=["body", "events", index],
                max_future_skew_s=max_future_skew_s,
            )
        )
    if errors:
        raise ValidationFailed(errors)
    return batch.events


def parse_event_obj(obj: dict[str, Any], **limits: Any) -> Event:
    """Validate an event given as a Python mapping (the in-process library and the CLI)."""
    return parse_event(msgspec.json.encode(obj), **limits)
