"""The provider interface: verify one attestation statement for one registration challenge.

``verify(statement, challenge, now)`` returns an :class:`Attestation` (the key and what is proven about it)
or raises ``DeviceRefused`` with the reason. A provider never decides trust; it reports facts, and
``findings`` lists what makes the key worth less without refusing it (a software key, an unlocked
bootloader); reputation.py weighs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass
class Attestation:
    provider: str  # android | webauthn | apple | oem | software
    scheme: str  # how its transaction signatures are verified: raw | webauthn | appattest
    public_key: bytes  # SubjectPublicKeyInfo, DER (P-256)
    attested: bool  # a hardware attestation verified to a configured root
    security_level: str  # strongbox | secure_enclave | tee | hardware | software | none
    boot_state: str = "unknown"  # verified | self_signed | unverified | failed | unknown
    patch_level: int | None = None  # YYYYMMDD (a YYYYMM patch level is read as its first day)
    package: str | None = None
    signing_digest: str | None = None
    serials: list[str] = field(default_factory=list)  # the chain's certificate serials (revocation)
    findings: list[str] = field(default_factory=list)
    credential_id: bytes | None = None  # WebAuthn credential id / App Attest key id
    cose_key: bytes | None = None  # WebAuthn credential public key (COSE), for assertions
    counter: int = 0
    details: dict[str, Any] = field(default_factory=dict)


class AttestationProvider(Protocol):
    name: str
    formats: tuple[str, ...]

    def verify(self, statement: dict[str, Any], challenge: bytes, now: datetime) -> Attestation: ...


def require(statement: dict[str, Any], name: str, kind: type) -> Any:
    from riskguard.device import codes
    from riskguard.device.errors import DeviceRefused

    value = statement.get(name)
    if not isinstance(value, kind):
        raise DeviceRefused(codes.ATTESTATION_MALFORMED, f"attestation.{name} is missing or not a {kind.__name__}")
    return value
