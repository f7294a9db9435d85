"""Masking of personal identifiers wherever they leave the core (logs, CLI output, exports)."""

from __future__ import annotations

import re
from typing import Any

from riskguard.events.schema import IDENTIFIER_FIELDS


def mask(value: str | None) -> str | None:
    """Keeps enough of an identifier to tell two apart in a log, never enough to use it.

    ``13812345678`` → ``13*******78``; values of four characters or fewer become ``****``.
    """
    if value is None:
        return None
    if len(value) <= 4:
        return "****"
    keep = 2 if len(value) < 12 else 3
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


def mask_event_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (mask(v) if k in IDENTIFIER_FIELDS and isinstance(v, str) else v) for k, v in fields.items()}


_IN_TEXT = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+|\d(?:[\s\-.]?\d){6,}|\b\d{1,3}(?:\.\d{1,3}){3}\b")


def mask_text(text: str | None) -> str | None:
    """Free text with the identifiers in it (e-mail addresses, runs of seven or more digits, IPv4
    addresses) masked, for logs and the audit log."""
    if not text:
        return text
    return _IN_TEXT.sub(lambda m: mask(m.group(0)) or "", text)
