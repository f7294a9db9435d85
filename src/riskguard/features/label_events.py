"""Label events: confirmed outcomes folded into feature state at the time each became known.

A label (``POST /v1/labels``, a world's ``labels.parquet``) becomes an internal ``label`` event — never
decided, never sent by clients — whose ``occurred_at`` is the label's ``labelled_at`` and whose identifier
fields are those of the labelled event (or the labelled entity). Features count them like any other event,
so "confirmed frauds at this merchant in 30 days" is an ordinary declaration::

    - {name: merchant_frauds_30d, entity: merchant_id, aggregate: count, window: 30d,
       when: 'event.type == "label" && event.attributes.label == "fraud"'}

Because the event is folded when the label is known (online: when it is recorded; in replay and offline:
at ``labelled_at`` in the stream), a decision never sees a label from its future.

**Opt-in.** A label event counts only in features whose ``when`` names it with a guard on ``event.type``
(``event.type == "label"`` or ``event.type in [..., "label"]``); every other feature ignores it, so adding
labels never changes the value of a feature that does not ask for them (``account_amount_24h`` does not
count a labelled payment twice). The memory, Redis and offline back ends and the reference definition all
apply this one rule (``admits_labels``).
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import msgspec

from riskguard.events.schema import Event
from riskguard.rules.activation import EVENT_DECLARATIONS
from riskguard.rules.static import analyse

LABEL_TYPE = "label"
#: label entity kinds → the event field a label event carries the value in
ENTITY_FIELDS = {
    "account": "account_id",
    "counterparty": "counterparty_id",
    "merchant": "merchant_id",
    "device": "device_id",
    "ip": "ip",
    "phone": "phone",
    "card": "card_id",
}


@functools.lru_cache(maxsize=4096)
def admits_labels(when: str | None) -> bool:
    """Whether a feature with this ``when`` filter counts label events (its guard names ``"label"``)."""
    if not when:
        return False
    facts = analyse(when, EVENT_DECLARATIONS)
    return any(name == "event.type" and LABEL_TYPE in allowed for name, allowed in facts.guards)


def label_attributes(label: str, typology: str | None, labelled_type: str | None) -> dict[str, Any]:
    """What a label event carries for filters: few distinct values, so bulk filters stay cheap."""
    attributes: dict[str, Any] = {"label": label}
    if typology:
        attributes["typology"] = typology
    if labelled_type:
        attributes["event_type"] = labelled_type
    return attributes


def label_event(
    *,
    label_id: str,
    label: str,
    labelled_at: datetime,
    typology: str | None = None,
    original: Event | None = None,
    entity_kind: str | None = None,
    entity_value: str | None = None,
) -> Event | None:
    """The internal event of one label: of an event (``original``) or of an entity. None when the label
    names an entity kind that no event field holds."""
    if original is not None:
        return msgspec.structs.replace(
            original,
            event_id=f"{original.event_id}#label",
            type=LABEL_TYPE,  # type: ignore[arg-type]
            occurred_at=labelled_at,
            attributes=label_attributes(label, typology, original.type),
        )
    field = ENTITY_FIELDS.get(entity_kind or "")
    if field is None or not entity_value:
        return None
    values: dict[str, Any] = {"account_id": entity_value if field == "account_id" else f"label:{entity_kind}"}
    values[field] = entity_value
    return Event(
        event_id=f"label-{label_id}",
        type=LABEL_TYPE,  # type: ignore[arg-type]
        occurred_at=labelled_at,
        attributes=label_attributes(label, typology, None),
        **values,
    )
