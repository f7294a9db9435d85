"""Unattested keys: a P-256 key the app made in software (emulators, phones without a keystore that
attests). Registration proves possession — a signature over the challenge — and nothing else.

Statement: ``{"format": "none", "public_key": base64url SPKI, "signature": base64url ECDSA(challenge)}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from riskguard.device import codes
from riskguard.device.errors import DeviceRefused
from riskguard.device.keys import load_spki, spki, unb64
from riskguard.device.providers.base import Attestation, require


def proof_of_possession(key: ec.EllipticCurvePublicKey, signature: bytes, challenge: bytes) -> None:
    try:
        key.verify(signature, challenge, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise DeviceRefused(codes.PROOF_OF_POSSESSION_FAILED) from None


class SoftwareKeyProvider:
    name = "software"
    formats = ("none",)

    def verify(self, statement: dict[str, Any], challenge: bytes, now: datetime) -> Attestation:
        key = load_spki(unb64(require(statement, "public_key", str), field="attestation.public_key"))
        proof_of_possession(key, unb64(require(statement, "signature", str), field="attestation.signature"), challenge)
        return Attestation(
            provider=self.name,
            scheme="raw",
            public_key=spki(key),
            attested=False,
            security_level="software",
            findings=[codes.NOT_ATTESTED],
        )
