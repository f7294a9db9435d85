"""Transaction signatures as a decision carries them, and their verification per key scheme.

A decision request carries ``attributes.device_signature``::

    {"key_id": "...", "nonce": "<base64url>", "signature": "<base64url>", "counter": 7}           # raw keys
    {"key_id": "...", "nonce": "...", "signature": "...", "authenticator_data": "...",
     "client_data_json": "..."}                                                                   # WebAuthn
    {"key_id": "...", "nonce": "...", "signature": "...", "authenticator_data": "..."}              # App Attest

- raw (Android Keystore, OEM, software keys): ECDSA P-256/SHA-256 over ``digest.signed_message``;
- webauthn: an assertion over the challenge ``nonce ‖ digest``, verified by the ``webauthn`` library; the
  counter is the authenticator's sign count;
- appattest: Apple's assertion — ECDSA over ``SHA256(authenticatorData ‖ SHA256(nonce ‖ digest))``, the
  RP id hash of the registered app id, the counter from the authenticator data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn import verify_authentication_response
from webauthn.helpers import parse_authenticator_data

from riskguard.device import codes
from riskguard.device.digest import challenge_bytes, signed_message
from riskguard.device.errors import DeviceRefused
from riskguard.device.keys import b64, unb64
from riskguard.device.registry import KeyRecord
from riskguard.device.trust import TrustConfig

_ECDSA = ec.ECDSA(hashes.SHA256())
MAX_COUNTER = 2**63 - 1


@dataclass(frozen=True)
class Claim:
    key_id: str
    nonce: bytes
    signature: bytes
    counter: int | None = None
    authenticator_data: bytes | None = None
    client_data_json: bytes | None = None


def parse_claim(value: Any) -> Claim | None:
    """The signature object, or None when it is malformed."""
    if not isinstance(value, dict):
        return None
    key_id, nonce, signature = value.get("key_id"), value.get("nonce"), value.get("signature")
    counter = value.get("counter")
    if not (isinstance(key_id, str) and isinstance(nonce, str) and isinstance(signature, str)):
        return None
    if counter is not None and (isinstance(counter, bool) or not isinstance(counter, int)):
        return None
    if counter is not None and not 0 <= counter <= MAX_COUNTER:
        return None
    try:
        return Claim(
            key_id=key_id,
            nonce=unb64(nonce, field="nonce"),
            signature=unb64(signature, field="signature"),
            counter=counter,
            authenticator_data=_optional(value, "authenticator_data"),
            client_data_json=_optional(value, "client_data_json"),
        )
    except DeviceRefused:
        return None


def _optional(value: dict[str, Any], name: str) -> bytes | None:
    item = value.get(name)
    if item is None:
        return None
    return unb64(item, field=name)


def _key(record: KeyRecord) -> ec.EllipticCurvePublicKey:
    if record.key is None:
        record.key = serialization.load_der_public_key(record.public_key)
    return record.key  # type: ignore[no-any-return]


def verify(record: KeyRecord, claim: Claim, digest: bytes, trust: TrustConfig) -> tuple[str | None, int]:
    """(failure code or None, the signature's counter)."""
    if record.scheme == "raw":
        if claim.counter is None:
            return codes.MALFORMED_SIGNATURE, 0
        try:
            _key(record).verify(claim.signature, signed_message(claim.nonce, digest, claim.counter), _ECDSA)
        except InvalidSignature:
            return codes.BAD_SIGNATURE, claim.counter
        return None, claim.counter
    if claim.authenticator_data is None:
        return codes.MALFORMED_SIGNATURE, 0
    if record.scheme == "appattest":
        return _app_attest(record, claim, digest)
    if record.scheme == "webauthn":
        return _webauthn(record, claim, digest, trust)
    return codes.MALFORMED_SIGNATURE, 0


def _app_attest(record: KeyRecord, claim: Claim, digest: bytes) -> tuple[str | None, int]:
    assert claim.authenticator_data is not None
    try:
        auth = parse_authenticator_data(claim.authenticator_data)
    except Exception:
        return codes.MALFORMED_SIGNATURE, 0
    if record.package is None or auth.rp_id_hash != hashlib.sha256(record.package.encode()).digest():
        return codes.BAD_SIGNATURE, auth.sign_count
    client_hash = hashlib.sha256(challenge_bytes(claim.nonce, digest)).digest()
    nonce = hashlib.sha256(claim.authenticator_data + client_hash).digest()
    try:
        _key(record).verify(claim.signature, nonce, _ECDSA)
    except InvalidSignature:
        return codes.BAD_SIGNATURE, auth.sign_count
    return None, auth.sign_count


def _webauthn(record: KeyRecord, claim: Claim, digest: bytes, trust: TrustConfig) -> tuple[str | None, int]:
    if claim.client_data_json is None or record.cose_key is None or record.credential_id is None:
        return codes.MALFORMED_SIGNATURE, 0
    if not trust.webauthn_rp_id or not trust.webauthn_origins:
        return codes.BAD_SIGNATURE, 0
    credential = {
        "id": b64(record.credential_id),
        "rawId": b64(record.credential_id),
        "type": "public-key",
        "response": {
            "authenticatorData": b64(claim.authenticator_data or b""),
            "clientDataJSON": b64(claim.client_data_json),
            "signature": b64(claim.signature),
        },
    }
    try:
        verified = verify_authentication_response(
            credential=json.dumps(credential),
            expected_challenge=challenge_bytes(claim.nonce, digest),
            expected_rp_id=trust.webauthn_rp_id,
            expected_origin=trust.webauthn_origins,
            credential_public_key=record.cose_key,
            credential_current_sign_count=0,
        )
    except Exception as exc:  # the library raises its own exception per failed check
        return (codes.DIGEST_MISMATCH if "challenge" in str(exc).lower() else codes.BAD_SIGNATURE), 0
    return None, verified.new_sign_count
