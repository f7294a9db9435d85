"""What rules see of an event: CEL declarations of the envelope and the per-event variable bindings."""

from __future__ import annotations

from typing import Any

from riskguard.events.schema import Event

#: CEL type of each envelope field, as ``event.<field>``. Amounts are doubles inside CEL (write
#: ``event.amount > 5000.0``); the stored and returned amounts stay exact decimals.
EVENT_DECLARATIONS: dict[str, str] = {
    "event.event_id": "string",
    "event.type": "string",
    "event.occurred_at": "timestamp",
    "event.account_id": "string",
    "event.amount": "double",
    "event.currency": "string",
    "event.counterparty_id": "string",
    "event.merchant_id": "string",
    "event.device_id": "string",
    "event.ip": "string",
    "event.phone": "string",
    "event.card_id": "string",
    "event.channel": "string",
    "event.locale": "string",
    "event.attributes": "map",
}

_FIELDS = tuple((name, name.split(".", 1)[1]) for name in EVENT_DECLARATIONS if name != "event.amount")


def event_variables(event: Event) -> dict[str, Any]:
    """Bindings for the fields the event carries; absent fields stay unbound (see rules/cel.py)."""
    bindings: dict[str, Any] = {}
    for qualified, field in _FIELDS:
        value = getattr(event, field)
        if value is not None:
            bindings[qualified] = value
    if event.amount is not None:
        bindings["event.amount"] = float(event.amount)
    return bindings
