"""Masking of personal identifiers wherever they leave the core (logs, CLI output, exports)."""

from __future__ import annotations

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
