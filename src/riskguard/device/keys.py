"""Device public keys: P-256 only, identified by the SHA-256 of their SubjectPublicKeyInfo."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from riskguard.device import codes
from riskguard.device.errors import DeviceRefused


def b64(data: bytes) -> str:
    """base64url without padding (what every byte field of the device API uses)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str, *, field: str) -> bytes:
    if not isinstance(text, str):
        raise DeviceRefused(codes.ATTESTATION_MALFORMED, f"{field} must be a base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise DeviceRefused(codes.ATTESTATION_MALFORMED, f"{field} is not base64url") from None


def spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(spki_der: bytes) -> str:
    return b64(hashlib.sha256(spki_der).digest())


def p256(key: object) -> ec.EllipticCurvePublicKey:
    """The key, if it is an ECDSA P-256 public key; otherwise a refusal."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise DeviceRefused(codes.UNSUPPORTED_KEY)
    return key


def load_spki(der: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError):
        raise DeviceRefused(codes.ATTESTATION_MALFORMED, "public_key is not a DER SubjectPublicKeyInfo") from None
    return p256(key)
