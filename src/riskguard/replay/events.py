"""One history row as the ``Event`` the API would have decoded from it (for the stages that take one)."""

from __future__ import annotations

from typing import Any

import msgspec

from riskguard.events.schema import Event
from riskguard.features.offline_input import Events

_decode = msgspec.json.Decoder(Event).decode


def row_body(events: Events, row: int) -> dict[str, Any]:
    """The row as an API request body: absent fields left out, attributes as an object."""
    body: dict[str, Any] = {}
    for name, value in events.frame.row(row, named=True).items():
        if value is None:
            continue
        body[name] = msgspec.json.decode(value) if name == "attributes" else value
    return body


def event_at(events: Events, row: int) -> Event:
    """The Event of a history row, decoded as ``POST /v1/decisions`` decodes its body."""
    return _decode(msgspec.json.encode(row_body(events, row)))
