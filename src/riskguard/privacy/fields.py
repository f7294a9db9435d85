"""Which values of a stored JSON document are personal, sealing them in place, and opening them again.

An event keeps its shape at rest: ``phone``, ``ip`` and ``card_id`` are sealed, and inside ``attributes``
every value under a personal key (phone, e-mail, card, ID number, name, address, IP, bank account, birth
date…) and every string that looks like an identifier wherever it is (an e-mail address, an IP address, a
run of seven or more digits — phones, card and ID numbers — or free text of several words, which may name
someone) is sealed. Everything else (type, amount, currency, channel, the pseudonymous account, merchant,
counterparty and device ids) stays readable.

Opening is process-wide (``open_document``): every cipher a RiskGuard instance builds registers its keys
here, so code that reads stored payloads (``events.schema.from_stored``, graph refresh, tracing sources)
opens them without being handed the cipher.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import msgspec

from riskguard.privacy.cipher import SEALED_PREFIX, FieldCipher, SealError

#: top-level event fields that are personal, and their kinds
EVENT_FIELDS = {"phone": "phone", "ip": "ip", "card_id": "card"}

_KEY_PARTS: dict[str, str] = {}
for _kind, _parts in {
    "phone": ("phone", "mobile", "tel", "msisdn", "cellphone", "telephone", "fax"),
    "email": ("email", "mail"),
    "card": ("card", "pan", "cardno"),
    "id_number": ("passport", "ssn", "idcard", "idno", "idnumber", "national", "identity", "license", "licence"),
    "name": ("name", "username", "fullname", "surname", "holder", "payee", "beneficiary", "nickname"),
    "ip": ("ip", "ipv4", "ipv6"),
    "address": ("address", "addr", "street", "postcode", "zipcode"),
    "bank_account": ("iban", "bankaccount", "accountnumber", "acctno", "swift", "bic"),
    "text": ("birth", "birthday", "dob", "birthdate", "contact", "wechat", "qq", "social"),
}.items():
    for _part in _parts:
        _KEY_PARTS[_part] = _kind

_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_IPV6 = re.compile(r"\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7}\b")
_DIGIT_RUN = re.compile(r"\d(?:[\s\-.]?\d){6,}")  # seven or more digits, separators allowed
_CJK = re.compile(r"[\u3400-\u9fff]")
_KEY_CACHE: dict[str, str | None] = {}


def kind_of_key(key: str) -> str | None:
    """The personal kind a JSON key names (``new_phone`` → phone, ``payeeName`` → name), or None."""
    cached = _KEY_CACHE.get(key, "")
    if cached != "":
        return cached
    lowered = _CAMEL.sub("_", key).lower()
    parts = [p for p in _SPLIT.split(lowered) if p]
    joined = "".join(parts)
    kind = None
    for part in [*parts, joined]:
        kind = _KEY_PARTS.get(part)
        if kind:
            break
    if kind is None and "id" in parts and any(p in ("number", "no", "num", "card") for p in parts):
        kind = "id_number"
    if len(_KEY_CACHE) < 10_000:
        _KEY_CACHE[key] = kind
    return kind


def kind_of_value(value: str) -> str | None:
    """The kind of a string that looks like an identifier wherever it appears, or None."""
    if len(value) < 7 and "." not in value and ":" not in value:
        return None
    if _EMAIL.search(value):
        return "email"
    if _DIGIT_RUN.search(value):
        return "text"
    if _IPV4.search(value) or (":" in value and _IPV6.search(value)):
        return "ip"
    if len(value) >= 24 and " " in value.strip():
        return "text"  # free text of several words may name someone
    if len(value) >= 8 and _CJK.search(value):
        return "text"  # the same in Chinese, written without spaces
    return None


def _seal_leaf(cipher: FieldCipher, kind: str | None, value: Any) -> Any:
    if isinstance(value, str):
        if value.startswith(SEALED_PREFIX):
            return value
        kind = kind or kind_of_value(value)
        return cipher.seal(kind, value) if kind else value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float) and (kind or abs(value) >= 1_000_000):
        return cipher.seal("json", json.dumps(value))  # a phone or card number sent as a number
    return value


def seal_tree(cipher: FieldCipher, value: Any, kind: str | None = None) -> Any:
    """``value`` with its personal parts sealed; ``kind``: the kind its key named (inherited by lists)."""
    if isinstance(value, dict):
        return {k: seal_tree(cipher, v, kind_of_key(k) or kind) for k, v in value.items()}
    if isinstance(value, list):
        return [seal_tree(cipher, v, kind) for v in value]
    return _seal_leaf(cipher, kind, value)


def seal_event(cipher: FieldCipher, event: dict[str, Any]) -> dict[str, Any]:
    """An event (as a JSON object) with its personal fields and attributes sealed."""
    out = dict(event)
    for name, kind in EVENT_FIELDS.items():
        value = out.get(name)
        if isinstance(value, str) and not value.startswith(SEALED_PREFIX):
            out[name] = cipher.seal(kind, value)
    attributes = out.get("attributes")
    if attributes:
        out["attributes"] = seal_tree(cipher, attributes)
    return out


# ---------------------------------------------------------------------- process-wide opening
_ciphers: dict[str, FieldCipher] = {}
_lock = threading.Lock()


def register(cipher: FieldCipher) -> None:
    """Makes ``cipher``'s keys available to ``open_value`` in this process."""
    with _lock:
        for key_id in cipher.keyring.keys:
            _ciphers[key_id] = cipher


def open_value(text: str) -> Any:
    """The plaintext of one sealed text (JSON-sealed numbers come back as numbers); plaintext as it is."""
    if not text.startswith(SEALED_PREFIX):
        return text
    key_id, kind, _ = FieldCipher.parts(text)
    cipher = _ciphers.get(key_id)
    if cipher is None:  # a key activated since the cipher was registered (rotation): look again
        with _lock:
            cipher = next((c for c in set(_ciphers.values()) if key_id in c.keyring.keys), None)
        if cipher is not None:
            register(cipher)
    if cipher is None:
        raise SealError(f"no cipher in this process holds key {key_id!r}")
    plain = cipher.open(text)
    return json.loads(plain) if kind == "json" else plain


def open_tree(value: Any) -> Any:
    if isinstance(value, str):
        return open_value(value) if value.startswith(SEALED_PREFIX) else value
    if isinstance(value, dict):
        return {k: open_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [open_tree(v) for v in value]
    return value


def has_sealed(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        return b'"enc1:' in text
    return '"enc1:' in text or text.startswith(SEALED_PREFIX)


def open_document(text: str | bytes) -> str | bytes:
    """A stored JSON text with every sealed value opened (returned unchanged when nothing is sealed).

    A document sealed whole (``document`` kind) opens to its JSON text."""
    if isinstance(text, str) and text.startswith(SEALED_PREFIX):
        return open_document(open_value(text))
    if not has_sealed(text):
        return text
    opened = msgspec.json.encode(open_tree(msgspec.json.decode(text)))
    return opened if isinstance(text, bytes) else opened.decode()


def open_parsed(text: str | bytes) -> Any:
    """A stored JSON text parsed, with every sealed value opened (one decode, no re-encoding)."""
    if isinstance(text, str) and text.startswith(SEALED_PREFIX):
        return open_parsed(open_value(text))
    return open_tree(msgspec.json.decode(text))
