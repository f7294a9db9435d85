"""Screening of the free text members put on the log, so that no raw identifier reaches it.

Subjects are OPRF tokens (see ``tokens``); the only other text on the log is short prose (a legal basis,
a reason, appeal grounds, a member's own case reference). A phone, card or account number, an ID-card
number or an e-mail address in such a field is refused before the entry is signed, and again by the log.
"""

from __future__ import annotations

import re

_DIGIT_RUN = re.compile(r"\d(?:[\s\-./]?\d){6,}")  # seven or more digits, however separated
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
_ID_CARD = re.compile(r"\d{6,}[0-9Xx]")
_CONTROL = re.compile(r"[\x00-\x1f]")


class PrivacyError(ValueError):
    """A field that could carry a raw personal identifier."""


def check_text(field: str, text: str, *, max_length: int = 200, required: bool = False) -> str:
    if not isinstance(text, str):
        raise PrivacyError(f"{field}: text expected")
    if required and not text.strip():
        raise PrivacyError(f"{field}: required")
    if len(text) > max_length:
        raise PrivacyError(f"{field}: at most {max_length} characters")
    if _CONTROL.search(text):
        raise PrivacyError(f"{field}: no control characters or line breaks")
    if _DIGIT_RUN.search(text) or _ID_CARD.search(text):
        raise PrivacyError(
            f"{field}: looks like it holds a phone, card, account or ID number; "
            "raw identifiers never go on the log (the subject is a token)"
        )
    if _EMAIL.search(text):
        raise PrivacyError(f"{field}: looks like an e-mail address; raw identifiers never go on the log")
    return text
