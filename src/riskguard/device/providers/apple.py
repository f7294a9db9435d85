"""Apple App Attest: a Secure Enclave key, certified by Apple for one app (team id + bundle id).

Verification follows Apple's "Validating apps that connect to your server": the x5c chain to the App
Attest root (configured), the nonce ``SHA256(authData ‖ SHA256(challenge))`` in the credential
certificate's extension 1.2.840.113635.100.8.2 (decoded with pyasn1), the key id (SHA-256 of the public
key point) as credential id, the RP id hash of a configured app id, a zero counter, and the AAGUID
(production, or development when ``apple.allow_development``). CBOR is decoded with cbor2 and the
authenticator data by the ``webauthn`` library. The fraud-metric receipt needs Apple's server and is
stored only in ``details`` (not checked here).

Statement: ``{"format": "apple-appattest", "key_id": base64url, "attestation": base64url CBOR}``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyasn1.codec.der.decoder import decode as der_decode
from pyasn1.error import PyAsn1Error
from pyasn1.type import namedtype, tag, univ
from webauthn.helpers import parse_authenticator_data

from riskguard.device import codes
from riskguard.device.chain import load_chain, serials, verify_chain
from riskguard.device.errors import DeviceRefused
from riskguard.device.keys import p256, spki, unb64
from riskguard.device.providers.base import Attestation, require
from riskguard.device.trust import TrustConfig

NONCE_OID = x509.ObjectIdentifier("1.2.840.113635.100.8.2")
AAGUID_PRODUCTION = b"appattest" + b"\x00" * 7
AAGUID_DEVELOPMENT = b"appattestdevelop"


class AppAttestNonce(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType(
            "nonce", univ.OctetString().subtype(explicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 1))
        )
    )


def point_of(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def decode_authenticator_data(data: bytes) -> Any:
    try:
        return parse_authenticator_data(data)
    except Exception as exc:
        raise DeviceRefused(codes.ATTESTATION_MALFORMED, f"authenticator data: {exc}") from None


class AppAttestProvider:
    name = "apple"
    formats = ("apple-appattest",)

    def __init__(self, trust: TrustConfig) -> None:
        self.trust = trust

    def verify(self, statement: dict[str, Any], challenge: bytes, now: datetime) -> Attestation:
        key_id = unb64(require(statement, "key_id", str), field="attestation.key_id")
        try:
            document = cbor2.loads(unb64(require(statement, "attestation", str), field="attestation.attestation"))
            if document["fmt"] != "apple-appattest":
                raise ValueError(f"fmt is {document['fmt']!r}")
            x5c, auth_bytes = document["attStmt"]["x5c"], document["authData"]
        except (cbor2.CBORDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DeviceRefused(codes.ATTESTATION_MALFORMED, f"attestation object: {exc}") from None
        chain = load_chain(list(x5c))
        verify_chain(chain, self.trust.apple_roots, self.trust.revocation, now)
        credential = chain[0]
        expected = hashlib.sha256(auth_bytes + hashlib.sha256(challenge).digest()).digest()
        try:
            extension = credential.extensions.get_extension_for_oid(NONCE_OID).value
            parsed, _ = der_decode(extension.value, asn1Spec=AppAttestNonce())
            nonce = bytes(parsed["nonce"])
        except (x509.ExtensionNotFound, AttributeError, PyAsn1Error):
            raise DeviceRefused(codes.ATTESTATION_MALFORMED, "no App Attest nonce extension") from None
        if nonce != expected:
            raise DeviceRefused(codes.CHALLENGE_MISMATCH)
        key = p256(credential.public_key())
        if hashlib.sha256(point_of(key)).digest() != key_id:
            raise DeviceRefused(codes.KEY_MISMATCH, "key_id is not the hash of the certified key")
        auth = decode_authenticator_data(auth_bytes)
        app_id = next(
            (a for a in self.trust.apple_app_ids if hashlib.sha256(a.encode()).digest() == auth.rp_id_hash), None
        )
        if app_id is None:
            raise DeviceRefused(codes.WRONG_APP_ID)
        attested_data = auth.attested_credential_data
        if auth.sign_count != 0 or attested_data is None or attested_data.credential_id != key_id:
            raise DeviceRefused(codes.ATTESTATION_MALFORMED, "counter must be 0 and credential id the key id")
        if attested_data.aaguid == AAGUID_DEVELOPMENT:
            if not self.trust.apple_allow_development:
                raise DeviceRefused(codes.DEVELOPMENT_ENVIRONMENT)
        elif attested_data.aaguid != AAGUID_PRODUCTION:
            raise DeviceRefused(codes.ATTESTATION_MALFORMED, "unknown App Attest AAGUID")
        return Attestation(
            provider=self.name,
            scheme="appattest",
            public_key=spki(key),
            attested=True,
            security_level="secure_enclave",
            package=app_id,
            serials=serials(chain),
            credential_id=key_id,
            details={"receipt_bytes": len(document["attStmt"].get("receipt") or b"")},
        )
