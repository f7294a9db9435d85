"""Field encryption at rest (AES-256-GCM) and keyed tokens (HMAC-SHA256) for personal identifiers.

``seal(kind, value)`` returns ciphertext text ``enc1:<key id>:<kind>:<base64url(nonce | ciphertext | tag)>``:
a fresh 96-bit nonce per value, and the associated data binds the ciphertext to its kind (a sealed phone
moved into an e-mail column does not open as an e-mail). ``open(text)`` finds the key by its id, so values
sealed under an older key keep opening until ``riskguard keys rotate`` has re-encrypted them.

``token(kind, value)`` is ``tok1:<token key id>:<base64url(HMAC-SHA256(kind | normalised value))[:16 bytes]>``:
the same identifier always gives the same token (equality joins, list membership, unique keys) and
nothing about it can be learned without the token key. Normalisation (phone and card digits, lower-case
e-mail, canonical IP) makes ``+86 138-1234-5678`` and ``8613812345678`` one token.

The AEAD itself is the ``cryptography`` package's; only the text framing is written here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from riskguard.privacy.keyring import Keyring

SEALED_PREFIX = "enc1:"
TOKEN_PREFIX = "tok1:"
TOKEN_BYTES = 16
#: kinds of personal data; the kind is bound into the ciphertext and selects a token's normalisation
KINDS = (
    "phone",
    "email",
    "card",
    "id_number",
    "name",
    "ip",
    "address",
    "bank_account",
    "device",
    "value",  # an untyped identifier (list entries): exact match
    "text",  # free text that may contain identifiers
    "document",  # a whole JSON document (decision bodies, alert evidence, trace documents)
    "json",  # a non-string value (a phone sent as a number), sealed as its JSON text
)
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class SealError(ValueError):
    """A sealed value could not be opened: unknown key, wrong kind, or tampered text."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _phone(value: str) -> str:
    digits = _digits(value)
    if len(digits) == 13 and digits.startswith("86"):  # +86 mainland numbers: one token with or without
        return digits[2:]
    return digits or value.strip()


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return value.strip().lower()


NORMALISERS: dict[str, Callable[[str], str]] = {
    "phone": _phone,
    "email": lambda v: v.strip().lower(),
    "card": lambda v: _digits(v) or v.strip(),
    "bank_account": lambda v: re.sub(r"[\s-]", "", v).upper(),
    "id_number": lambda v: re.sub(r"[\s-]", "", v).upper(),
    "name": lambda v: " ".join(v.split()).casefold(),
    "ip": _ip,
    "address": lambda v: " ".join(v.split()).casefold(),
}


def normalise(kind: str, value: str) -> str:
    """The form of ``value`` that its token is computed from."""
    return NORMALISERS.get(kind, lambda v: v)(value)


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def is_token(value: object) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


class FieldCipher:
    """Seals, opens and tokenises with the keys of one keyring. Thread-safe.

    ``reload`` (a callable returning a fresh Keyring) is used when a value names a key this process does
    not hold yet (another process rotated the keys) and at most once per ``reload_every`` seconds on
    seal, so running servers start writing under a newly activated key without a restart.
    """

    def __init__(
        self, keyring: Keyring, *, reload: Callable[[], Keyring] | None = None, reload_every: float = 2.0
    ) -> None:
        self._lock = threading.Lock()
        self._reload = reload
        self._reload_every = reload_every
        self._checked = time.monotonic()
        self._apply(keyring)

    def _apply(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._aead = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}
        self._active = keyring.active
        self._active_aead = self._aead[keyring.active]
        self._token_id = keyring.active_token
        self._token_key = keyring.token_keys[keyring.active_token]

    @property
    def active_key(self) -> str:
        return self._active

    @property
    def active_token_key(self) -> str:
        return self._token_id

    def refresh(self, *, force: bool = False) -> bool:
        """Reloads the keyring (another process may have rotated it); True when it changed."""
        if self._reload is None:
            return False
        now = time.monotonic()
        if not force and now - self._checked < self._reload_every:
            return False
        with self._lock:
            self._checked = now
            fresh = self._reload()
            if fresh == self.keyring:
                return False
            self._apply(fresh)
            return True

    # ------------------------------------------------------------------ sealing
    def seal(self, kind: str, value: str) -> str:
        """Ciphertext text of ``value`` under the active key, bound to ``kind``."""
        if not _KIND_RE.match(kind):
            raise ValueError(f"not a field kind: {kind!r}")
        if self._reload is not None and time.monotonic() - self._checked >= self._reload_every:
            self.refresh()
        key_id, aead = self._active, self._active_aead
        nonce = os.urandom(12)
        sealed = aead.encrypt(nonce, value.encode("utf-8"), f"riskguard|{kind}".encode())
        return f"{SEALED_PREFIX}{key_id}:{kind}:{_b64(nonce + sealed)}"

    def open(self, text: str, kind: str | None = None) -> str:
        """The plaintext of a sealed value; plaintext (an older installation's row) is returned as it is.

        With ``kind``, the value must have been sealed as that kind."""
        if not text.startswith(SEALED_PREFIX):
            return text
        key_id, sealed_kind, body = self.parts(text)
        if kind is not None and kind != sealed_kind:
            raise SealError(f"a sealed {sealed_kind!r} value was read where {kind!r} was expected")
        aead = self._aead.get(key_id)
        if aead is None and self.refresh(force=True):
            aead = self._aead.get(key_id)
        if aead is None:
            raise SealError(
                f"no key {key_id!r} in the keyring (was it retired too early, or is it another installation's?)"
            )
        raw = _unb64(body)
        try:
            return aead.decrypt(raw[:12], raw[12:], f"riskguard|{sealed_kind}".encode()).decode("utf-8")
        except InvalidTag:
            raise SealError("a sealed value failed authentication (tampered, or sealed as another kind)") from None

    @staticmethod
    def parts(text: str) -> tuple[str, str, str]:
        """(key id, kind, body) of a sealed text."""
        try:
            key_id, kind, body = text[len(SEALED_PREFIX) :].split(":", 2)
        except ValueError:
            raise SealError("malformed sealed value") from None
        return key_id, kind, body

    @staticmethod
    def key_of(text: str) -> str | None:
        """The key id a sealed text is under (None for plaintext)."""
        if not text.startswith(SEALED_PREFIX):
            return None
        return text[len(SEALED_PREFIX) :].split(":", 1)[0]

    # ------------------------------------------------------------------ tokens
    def token(self, kind: str, value: str) -> str:
        """A keyed, deterministic token of ``value`` (equality joins); computed from its normalised form."""
        return self.token_with(self._token_id, kind, value)

    def token_with(self, token_key_id: str, kind: str, value: str) -> str:
        key = self._token_key if token_key_id == self._token_id else self.keyring.token_keys[token_key_id]
        message = f"{kind}\x1f{normalise(kind, value)}".encode()
        digest = hmac.new(key, message, hashlib.sha256).digest()[:TOKEN_BYTES]
        return f"{TOKEN_PREFIX}{token_key_id}:{_b64(digest)}"

    @staticmethod
    def token_key_of(token: str) -> str | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        return token[len(TOKEN_PREFIX) :].split(":", 1)[0]
