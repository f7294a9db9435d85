"""X.509 chain verification to configured roots, with revocation by serial number.

The signature checks are cryptography's (``verify_directly_issued_by``). The walk around them is written
here because cryptography's own verifier (``cryptography.x509.verification``) implements the RFC 5280 *Web
PKI* profiles for TLS servers and clients, which attestation chains do not follow (Android leaf
certificates carry no subject alternative names or extended key usage, and key attestation roots predate
those profiles). What is checked: each certificate is signed by the next; every issuer is a CA; every
certificate is within its validity at ``now``; the last one is a configured root or is signed by one; no
serial number is revoked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from riskguard.device import codes
from riskguard.device.errors import DeviceRefused
from riskguard.device.trust import RevocationList, serial_key


def load_chain(items: Sequence[bytes]) -> list[x509.Certificate]:
    if not items:
        raise DeviceRefused(codes.ATTESTATION_MALFORMED, "the certificate chain is empty")
    try:
        return [x509.load_der_x509_certificate(bytes(item)) for item in items]
    except ValueError as exc:
        raise DeviceRefused(codes.ATTESTATION_MALFORMED, f"a certificate is not DER: {exc}") from None


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def verify_chain(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    revocation: RevocationList,
    now: datetime,
) -> x509.Certificate:
    """Checks ``chain`` (leaf first) and returns the configured root it ends at; raises ``DeviceRefused``."""
    if not roots:
        raise DeviceRefused(codes.CHAIN_UNTRUSTED, "no roots are configured for this provider")
    for cert in chain:
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise DeviceRefused(codes.CERT_EXPIRED, f"serial {serial_key(cert.serial_number)}")
    for child, issuer in pairwise(chain):
        if not _issued_by(child, issuer):
            raise DeviceRefused(codes.CHAIN_BROKEN, f"serial {serial_key(child.serial_number)}")
        if not _is_ca(issuer):
            raise DeviceRefused(codes.CHAIN_BROKEN, f"issuer {serial_key(issuer.serial_number)} is not a CA")
    last = chain[-1]
    anchor = None
    for root in roots:
        if last == root or (last.subject == root.subject and last.public_key() == root.public_key()):
            anchor = root
            break
        if _issued_by(last, root):
            anchor = root
            break
    if anchor is None:
        raise DeviceRefused(codes.CHAIN_UNTRUSTED)
    for cert in [*chain, anchor]:
        if revocation.is_revoked(cert.serial_number):
            raise DeviceRefused(codes.CERT_REVOKED, f"serial {serial_key(cert.serial_number)}")
    return anchor


def serials(chain: Sequence[x509.Certificate]) -> list[str]:
    return [serial_key(cert.serial_number) for cert in chain]
