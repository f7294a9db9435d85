"""Opaque references to entities for the console's links and reveal buttons.

A phone or card number must not travel in a URL (browser history, proxies, access logs) nor sit in a page
unmasked, yet the entity view and the reveal button need to name it. The console hands out
``AES-GCM(kind, value)`` under a key derived from the installation's reference key (kept in the database
by the case service), so every worker of ``serve --workers N`` opens what another one wrote, and links
survive a restart; the page carries the reference and the masked text, the server opens the reference
when the analyst follows it.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from riskguard.errors import NotFound


class EntityRefs:
    def __init__(self, key: bytes | None = None) -> None:
        self._aead = AESGCM(key or AESGCM.generate_key(bit_length=128))

    def seal(self, kind: str, value: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, f"{kind}\x00{value}".encode(), b"entity")
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, ref: str) -> tuple[str, str]:
        try:
            raw = base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
            kind, value = self._aead.decrypt(raw[:12], raw[12:], b"entity").decode().split("\x00", 1)
        except (ValueError, InvalidTag, UnicodeDecodeError):
            raise NotFound("this entity link is not valid: open it again from the page that showed it") from None
        return kind, value
