"""The one event envelope shared by every event type, and the fields each type requires.

msgspec does the structural decoding (types, timestamps, unknown fields) in C; the per-type rules
that JSON Schema cannot say well (required-by-type fields, amounts, attribute depth) live in
``validate.py``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

EventType = Literal[
    "signup",
    "login",
    "password_change",
    "profile_change",
    "device_bind",
    "payment",
    "transfer",
    "withdrawal",
    "loan_application",
    "complaint",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]

#: Internal event types: made by riskguard itself (never accepted from clients) so that features can
#: count them like any other event. A ``challenge_outcome`` is built from a stored challenge result
#: (table challenge_outcomes) and the challenged event, when reported and when state is rebuilt.
INTERNAL_EVENT_TYPES = ("challenge_outcome", "label")  # label: features/label_events.py

Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]

#: Fields each type must carry beyond the common ones (event_id, type, occurred_at, account_id).
REQUIRED_BY_TYPE: dict[str, tuple[str, ...]] = {
    "signup": (),
    "login": (),
    "password_change": (),
    "profile_change": (),
    "device_bind": ("device_id",),
    "payment": ("amount", "currency", "merchant_id"),
    "transfer": ("amount", "currency", "counterparty_id"),
    "withdrawal": ("amount", "currency"),
    "loan_application": ("amount", "currency"),
    "complaint": (),
}

#: Types whose events move money; an amount on any other type is refused as a likely client bug.
MONETARY_TYPES = frozenset({"payment", "transfer", "withdrawal", "loan_application", "complaint"})

#: Identifier fields: the values lists are matched against and that logs mask.
IDENTIFIER_FIELDS = ("account_id", "counterparty_id", "merchant_id", "device_id", "ip", "phone", "card_id")


class Event(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """An event as a client sends it. ``event_id`` is the client's idempotency key."""

    event_id: Identifier
    type: EventType
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    account_id: Identifier
    amount: Decimal | None = None
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] | None = None
    counterparty_id: Identifier | None = None
    merchant_id: Identifier | None = None
    device_id: Identifier | None = None
    ip: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    phone: Annotated[str, msgspec.Meta(min_length=3, max_length=32)] | None = None
    card_id: Identifier | None = None
    channel: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    locale: Literal["en", "zh-CN"] | None = None
    attributes: dict[str, Any] = {}


class EventBatch(msgspec.Struct, forbid_unknown_fields=True):
    events: list[Event]


encode = msgspec.json.Encoder(decimal_format="string").encode


def to_json(event: Event) -> bytes:
    return encode(event)


def from_stored(payload: bytes | str) -> Event:
    """Decode an event the store wrote; it was validated on the way in. Sealed personal fields (field
    encryption at rest, riskguard.privacy) are opened first."""
    if (b'"enc1:' in payload) if isinstance(payload, bytes) else ('"enc1:' in payload):
        from riskguard.privacy.fields import open_parsed

        return msgspec.convert(open_parsed(payload), Event, strict=False)  # validated when it was stored
    return msgspec.json.decode(payload, type=Event)
