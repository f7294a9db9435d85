"""Subject tokens from a verifiable oblivious PRF (RFC 9497, VOPRF mode, ristretto255-SHA512).

A member blinds its identifier, the token service evaluates it with a key only the service holds, and
the member unblinds the result and checks the service's proof against the public key pinned in the
log's genesis. The service never sees the identifier; the member never learns the key; without the key
nobody can compute tokens for a dictionary of phone numbers, which is exactly what breaks a plain or
keyed hash of a phone number (a few billion candidates are hashed in minutes). The service bounds how
many tokens each member may ask for in a window and keeps an audit row per request, so a member cannot
tokenise the numbering plan either.

The protocol is the ``voprf`` package (Python bindings of the Rust ``voprf`` crate that implements RFC
9497); the tests check it against the RFC's appendix vectors.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine, func, insert, select
from voprf import ristretto

from riskguard.consortium.tables import consortium_token_audit
from riskguard.store.tables import utcnow

INPUT_PREFIX = b"riskguard-consortium/subject/v1\x00"
BATCH = 1_000
TOKEN_BYTES = 32


class RateLimited(Exception):
    """The member asked for more tokens than its window allows."""


class TokenError(ValueError):
    """An identifier that cannot be tokenised, or an evaluation that does not verify."""


def normalise(kind: str, value: str, *, country_code: str = "86") -> str:
    """The one spelling of an identifier that every member tokenises, so the same person matches.

    Phones: digits only, with the country code (``+86 138-1234-5678`` and ``13812345678`` agree);
    cards, and accounts or payees written as grouped digits: digits only; other account, payee and device
    ids: trimmed and NFKC-normalised, case kept (ids are case-sensitive).
    """
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        raise TokenError(f"an empty {kind} cannot be tokenised")
    if kind == "phone":
        digits = re.sub(r"[\s\-().]", "", text)
        if digits.startswith("+"):
            digits = digits[1:]
        elif digits.startswith("00"):
            digits = digits[2:]
        elif not digits.startswith(country_code) or len(digits) <= 11:
            digits = country_code + digits.lstrip("0")
        if not digits.isdigit() or not 7 <= len(digits) <= 15:
            raise TokenError("a phone number is 7 to 15 digits with its country code")
        return "+" + digits
    if kind == "card":
        digits = re.sub(r"[\s\-]", "", text)
        if not digits.isdigit() or not 12 <= len(digits) <= 19:
            raise TokenError("a card number is 12 to 19 digits")
        return digits
    if kind in ("account", "payee", "device"):
        if kind != "device" and re.fullmatch(r"[\d\s\-]+", text):
            return re.sub(r"[\s\-]", "", text)  # a bank account number, however grouped
        if len(text) > 256:
            raise TokenError(f"a {kind} identifier is at most 256 characters")
        return text
    raise TokenError(f"unknown subject kind {kind!r}")


def oprf_input(kind: str, value: str) -> bytes:
    return INPUT_PREFIX + kind.encode() + b"\x00" + normalise(kind, value).encode()


def token_of(output: bytes) -> str:
    return output[:TOKEN_BYTES].hex()


class TokenService:
    """The evaluator: one VOPRF key, per-member rate limits, an audit row per request."""

    def __init__(self, engine: Engine, seed: bytes, *, limit: int = 100_000, window_s: int = 86_400) -> None:
        if len(seed) != 32:
            raise ValueError("the token service's key seed is 32 random bytes")
        self.engine = engine
        self._evaluator = ristretto.Evaluator(seed)
        self.limit = limit
        self.window = timedelta(seconds=window_s)
        self._lock = threading.Lock()

    @property
    def public_key(self) -> bytes:
        return self._evaluator.public_key.serialize()

    def used(self, member: str) -> int:
        since = utcnow() - self.window
        query = select(func.coalesce(func.sum(consortium_token_audit.c.count), 0)).where(
            consortium_token_audit.c.member == member,
            consortium_token_audit.c.allowed.is_(True),
            consortium_token_audit.c.at > since,
        )
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def evaluate(self, member: str, blinded: list[bytes]) -> bytes:
        """Evaluates a batch of blinded inputs for ``member``; the answer carries one proof for all."""
        if not 1 <= len(blinded) <= BATCH:
            raise TokenError(f"a request carries 1 to {BATCH} blinded inputs")
        try:
            inputs = [ristretto.BlindedInput.deserialize(b) for b in blinded]
        except (ValueError, TypeError):
            raise TokenError("a blinded input is not a ristretto255 element") from None
        with self._lock:
            allowed = self.used(member) + len(inputs) <= self.limit
            with self.engine.begin() as connection:
                connection.execute(
                    insert(consortium_token_audit).values(
                        member=member, count=len(inputs), allowed=allowed, at=utcnow()
                    )
                )
        if not allowed:
            raise RateLimited(
                f"{member} may ask for {self.limit} tokens per {int(self.window.total_seconds())} s; try later"
            )
        return self._evaluator.evaluate_batch(inputs).serialize()

    def audit(self, member: str | None = None, limit: int = 100) -> list[dict[str, object]]:
        query = select(consortium_token_audit).order_by(consortium_token_audit.c.id.desc()).limit(limit)
        if member is not None:
            query = query.where(consortium_token_audit.c.member == member)
        with self.engine.connect() as connection:
            return [row._asdict() for row in connection.execute(query)]


Transport = Callable[[list[bytes]], bytes]


class TokenClient:
    """A member's side: blinds, sends, verifies the proof against the pinned key, unblinds."""

    def __init__(self, public_key: bytes, transport: Transport) -> None:
        self.public_key = ristretto.PublicKey.deserialize(public_key)
        self.transport = transport

    def tokens(self, kind: str, values: list[str]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(values), BATCH):
            chunk = values[start : start + BATCH]
            clients, blinded = [], []
            for value in chunk:
                client, element = ristretto.Client.blind(oprf_input(kind, value))
                clients.append(client)
                blinded.append(element.serialize())
            answer = self.transport(blinded)
            try:
                outputs = ristretto.Client.finalize_batch(
                    clients, ristretto.VerifiableBatchOutput.deserialize(answer), self.public_key
                )
            except BaseException as exc:
                # voprf 0.2 raises a pyo3 PanicException (a BaseException) when a batch proof fails
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                raise TokenError("the token service's answer does not verify against the consortium's key") from None
            out.extend(token_of(output) for output in outputs)
        return out

    def token(self, kind: str, value: str) -> str:
        return self.tokens(kind, [value])[0]
