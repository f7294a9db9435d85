"""The entities an alert or a case is about — accounts, devices, phones, cards, addresses, merchants — as
``(kind, value)`` pairs: taken from events, from graph and complaint evidence, and masked for display.

``MERGE_KINDS`` are the kinds that identify one party (an account, a phone, a device, a card, the staff
``actor`` of an access alert): two alerts sharing one of them describe the same people. Addresses and
merchants are shared by strangers (a carrier's NAT, a popular shop), so they never merge alerts on their own.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

from riskguard.masking import mask

KINDS = ("account", "device", "phone", "card", "ip", "merchant")
#: the kind of the entity an access alert is about: the riskguard user or API key that revealed data
#: (not a customer; only the ``access`` source names it, so manual alerts and list actions do not take it)
ACTOR = "actor"
MERGE_KINDS = frozenset({"account", "device", "phone", "card", ACTOR})
#: event field → entity kind (the counterparty of a transfer is an account)
EVENT_FIELDS = {
    "account_id": "account",
    "counterparty_id": "account",
    "device_id": "device",
    "phone": "phone",
    "card_id": "card",
    "ip": "ip",
    "merchant_id": "merchant",
}
#: the list each kind goes to by default from a case (the starter strategy reads these lists)
DEFAULT_LISTS = {
    "account": "blocked_accounts",
    "device": "blocked_devices",
    "card": "blocked_cards",
    "ip": "blocked_ips",
    "merchant": "blocked_merchants",
    "phone": "watch_phones",
}
#: keys of evidence documents whose values are personal identifiers (masked for display)
IDENTIFIER_KEYS = frozenset(
    {
        "account",
        "account_id",
        "counterparty_id",
        "device_id",
        "phone",
        "card_id",
        "ip",
        "merchant_id",
        "contact_phone",
        "agent_phone",
        "agent_id_number",
        "address",
        "value",
        "victim_account",
        "from",
        "to",
        "members",
        "accounts",
    }
)

Entity = tuple[str, str]


def of_event(payload: dict[str, Any]) -> list[Entity]:
    """The entities an event names, in field order, without duplicates."""
    found: dict[Entity, None] = {}
    for field, kind in EVENT_FIELDS.items():
        value = payload.get(field)
        if isinstance(value, str) and value:
            found[(kind, value[:256])] = None
    return list(found)


def of_members(accounts: Iterable[str], identifiers: Iterable[dict[str, Any]] = ()) -> list[Entity]:
    """Accounts plus ``{kind, value}`` identifiers (a ring's binding devices, phones, cards)."""
    found: dict[Entity, None] = {("account", a[:256]): None for a in accounts if a}
    for item in identifiers:
        kind, value = item.get("kind"), item.get("value")
        if kind in KINDS and isinstance(value, str) and value:
            found[(kind, value[:256])] = None
    return list(found)


def masked_evidence(value: Any, key: str | None = None) -> Any:
    """A copy of an evidence document with every identifier value masked (free texts are dropped to their
    length: a complaint text can carry names and numbers)."""
    if isinstance(value, dict):
        return {k: masked_evidence(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [masked_evidence(v, key) for v in value]
    if isinstance(value, str):
        if key == "text":
            return f"[{len(value)} characters]"
        if key in IDENTIFIER_KEYS:
            return mask(value)
    return value


def entity_dict(kind: str, value: str, *, revealed: bool) -> dict[str, str]:
    return {"kind": kind, "value": value if revealed else mask(value) or ""}


class EntityRefs:
    """Opaque references to entities (``kind`` + keyed hash of the value), so that a masked page can name an
    entity in an action — "put this device on a list" — without ever holding its value. The key is the
    installation's (``case_sync`` row ``ref_key``), so every worker gives the same reference."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def ref(self, kind: str, value: str) -> str:
        digest = hmac.new(self._key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind}:{digest[:24]}"

    def describe(self, kind: str, value: str, *, revealed: bool) -> dict[str, str]:
        return {**entity_dict(kind, value, revealed=revealed), "ref": self.ref(kind, value)}
