"""WebAuthn / FIDO2 registration, verified by the ``webauthn`` library (py_webauthn).

The registration ceremony's challenge is the server's ``nonce ‖ digest``. The library checks the client
data (type, challenge, origin), the RP id hash, user presence and the attestation statement, and validates
x5c chains against the roots configured under ``webauthn.roots``. A key counts as *attested* only when its
statement carried a certificate chain and roots were configured for it (the library skips chain validation
when none are given); "none" and self attestation register as unattested keys. Keys must be ES256.

Statement: ``{"format": "webauthn", "credential": <PublicKeyCredential JSON from navigator.credentials.create>}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from webauthn import verify_registration_response
from webauthn.helpers import (
    decode_credential_public_key,
    decoded_public_key_to_cryptography,
    parse_attestation_object,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import InvalidJSONStructure, InvalidRegistrationResponse
from webauthn.helpers.structs import AttestationFormat

from riskguard.device import codes
from riskguard.device.chain import serials
from riskguard.device.errors import DeviceRefused
from riskguard.device.keys import p256, spki
from riskguard.device.providers.base import Attestation, require
from riskguard.device.trust import TrustConfig

CHAINED = (
    AttestationFormat.PACKED,
    AttestationFormat.FIDO_U2F,
    AttestationFormat.TPM,
    AttestationFormat.APPLE,
    AttestationFormat.ANDROID_KEY,
)


def _refusal(exc: Exception) -> DeviceRefused:
    text = str(exc)
    if "challenge" in text.lower():
        return DeviceRefused(codes.CHALLENGE_MISMATCH, text)
    if "chain" in text.lower() or "root" in text.lower():
        return DeviceRefused(codes.CHAIN_UNTRUSTED, text)
    return DeviceRefused(codes.ATTESTATION_MALFORMED, text)


class WebAuthnProvider:
    name = "webauthn"
    formats = ("webauthn",)

    def __init__(self, trust: TrustConfig) -> None:
        self.trust = trust

    def verify(self, statement: dict[str, Any], challenge: bytes, now: datetime) -> Attestation:
        trust = self.trust
        if not trust.webauthn_rp_id or not trust.webauthn_origins:
            raise DeviceRefused(codes.ATTESTATION_UNSUPPORTED, "webauthn.rp_id and webauthn.origins are not configured")
        credential_json = require(statement, "credential", dict)
        roots = [c.public_bytes(serialization.Encoding.PEM) for c in trust.webauthn_roots]
        try:
            credential = parse_registration_credential_json(credential_json)
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=trust.webauthn_rp_id,
                expected_origin=trust.webauthn_origins,
                supported_pub_key_algs=[COSEAlgorithmIdentifier.ECDSA_SHA_256],
                pem_root_certs_bytes_by_fmt={fmt: roots for fmt in CHAINED} if roots else None,
            )
            statement_object = parse_attestation_object(verified.attestation_object)
        except (InvalidRegistrationResponse, InvalidJSONStructure, ValueError, KeyError, TypeError) as exc:
            raise _refusal(exc) from None
        x5c = statement_object.att_stmt.x5c or []
        chain = [x509.load_der_x509_certificate(bytes(c)) for c in x5c]
        for cert in chain:
            if trust.revocation.is_revoked(cert.serial_number):
                raise DeviceRefused(codes.CERT_REVOKED, f"serial {format(cert.serial_number, 'x')}")
        attested = bool(chain) and bool(roots) and verified.fmt in CHAINED
        key = p256(decoded_public_key_to_cryptography(decode_credential_public_key(verified.credential_public_key)))
        findings = [] if attested else [codes.NOT_ATTESTED]
        return Attestation(
            provider=self.name,
            scheme="webauthn",
            public_key=spki(key),
            attested=attested,
            security_level="hardware" if attested else "software",
            serials=serials(chain),
            findings=findings,
            credential_id=verified.credential_id,
            cose_key=verified.credential_public_key,
            counter=verified.sign_count,
            details={
                "fmt": str(getattr(verified.fmt, "value", verified.fmt)),
                "aaguid": verified.aaguid,
                "user_verified": verified.user_verified,
            },
        )
