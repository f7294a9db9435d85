"""The bytes a device signs: a canonical digest of the transaction's payment fields, and the framing.

The digest covers what the customer approves — type, paying account, amount, currency, payee (account,
merchant or card) — and nothing the platform may add after the app signs (event id, time, IP,
attributes). Amounts are compared as numbers: ``6000``, ``6000.0`` and ``6000.00`` give one digest.

A raw (Android Keystore, OEM, software) key signs ``b"riskguard-tx-v1\\0" ‖ nonce ‖ digest ‖ counter`` with
ECDSA P-256 / SHA-256; the counter is inside the signed bytes, or it could be rewritten in transit.
WebAuthn and App Attest keys sign their own assertion formats over the challenge ``nonce ‖ digest``
(signing.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

DIGEST_FIELDS = ("type", "account_id", "amount", "currency", "counterparty_id", "merchant_id", "card_id")
TX_PREFIX = b"riskguard-tx-v1\x00"
REGISTER_PREFIX = b"riskguard-register-v1\x00"


def _amount(value: Any) -> str:
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not number.is_finite():
        return str(value)
    return format(number.normalize(), "f")


def digest_of_fields(fields: Mapping[str, Any]) -> bytes:
    """SHA-256 of the canonical payment fields of an event body (a dict, as a client holds it)."""
    lines = []
    for name in DIGEST_FIELDS:
        value = fields.get(name)
        text = _amount(value) if name == "amount" else ("" if value is None else str(value))
        lines.append(f"{name}={text}")
    return hashlib.sha256(("\n".join(lines)).encode("utf-8")).digest()


def transaction_digest(event: Any) -> bytes:
    """The same digest from a decoded ``Event``."""
    return digest_of_fields({name: getattr(event, name) for name in DIGEST_FIELDS})


def registration_digest(account_id: str, device_id: str) -> bytes:
    """What a registration challenge is bound to: the account and the device being enrolled."""
    return hashlib.sha256(REGISTER_PREFIX + account_id.encode() + b"\x00" + device_id.encode()).digest()


def challenge_bytes(nonce: bytes, digest: bytes) -> bytes:
    """The challenge an attestation or assertion covers: the nonce, then the digest it is bound to."""
    return nonce + digest


def signed_message(nonce: bytes, digest: bytes, counter: int) -> bytes:
    """What a raw device key signs for one transaction."""
    return TX_PREFIX + nonce + digest + counter.to_bytes(8, "big")
