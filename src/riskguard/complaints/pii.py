"""Masking of personal data written inside complaint texts: phone numbers, ID numbers, bank card numbers
and e-mail addresses. Every output of this package shows texts through :func:`mask_text`, except the
audited evidence view (admin scope, ``unmask=true``)."""

from __future__ import annotations

import re
from typing import Any

from riskguard.masking import mask

# longest first: an 18-character ID number, a 13-19 digit card number, an 11-digit mainland mobile number
# (optionally +86), then other long digit runs that look like phone numbers with an area code
_PII = re.compile(
    r"(?<![0-9A-Za-z])("
    r"[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"  # resident ID number
    r"|(?:\d[ -]?){12,18}\d"  # bank card
    r"|(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}"  # mobile phone
    r"|0\d{2,3}-?\d{7,8}"  # landline with area code
    r"|[\w.+-]+@[\w-]+\.[\w.-]+"  # e-mail
    r")(?![0-9A-Za-z])"
)


def mask_text(text: str | None) -> str | None:
    """``"我的电话13812345678"`` → ``"我的电话13*******78"``; other text unchanged."""
    if text is None:
        return None
    return _PII.sub(lambda m: mask(m.group(1)) or "", text)


def masked(value: Any) -> Any:
    """An identifier masked (strings), anything else as it is."""
    return mask(value) if isinstance(value, str) else value
