"""Throwaway attestation authorities: what tests, the demo and the reference client use instead of phones.

``TestAuthority()`` makes a root and an intermediate CA (P-256) at run time with ``cryptography`` and
issues the certificates each provider checks: an Android Key Attestation leaf with a KeyDescription
extension (encoded with pyasn1), an OEM leaf, an App Attest credential certificate with its nonce
extension, and a WebAuthn "packed" batch certificate. Configure its ``root_pem`` as a root (see
``trust_config``) and the service treats its certificates as genuine. Never configure one in production.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyasn1.codec.der.encoder import encode as der_encode
from webauthn.helpers.asn1.android_key import KeyDescription

from riskguard.device.providers.android import (
    KEY_DESCRIPTION_OID,
    AttestationApplicationId,
    AttestationPackageInfo,
)
from riskguard.device.providers.apple import NONCE_OID, AppAttestNonce
from riskguard.device.trust import OemRoot, TrustConfig

LEVELS = {"software": 0, "tee": 1, "strongbox": 2}
BOOT = {"verified": 0, "self_signed": 1, "unverified": 2, "failed": 3}
TEST_PACKAGE = "com.example.wallet"
TEST_SIGNING_DIGEST = hashlib.sha256(b"riskguard test app signing certificate").hexdigest()
TEST_APP_ID = "TEAMID1234.com.example.wallet"
TEST_RP_ID = "wallet.example"
TEST_ORIGIN = "https://wallet.example"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _builder(
    subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
    )


def _current_patch_level() -> int:
    """This month's patch level (YYYYMM): a healthy phone is up to date whenever the tests run."""
    today = datetime.now(UTC)
    return today.year * 100 + today.month


@dataclass
class AndroidFacts:
    """What an Android attestation leaf says (the defaults: a healthy phone running the test app)."""

    security_level: str = "tee"
    boot_state: str = "verified"
    device_locked: bool = True
    os_patch_level: int = field(default_factory=lambda: _current_patch_level())  # YYYYMM
    packages: list[tuple[str, int]] = field(default_factory=lambda: [(TEST_PACKAGE, 42)])
    signing_digests: list[str] = field(default_factory=lambda: [TEST_SIGNING_DIGEST])


def key_description(challenge: bytes, facts: AndroidFacts) -> bytes:
    """A DER KeyDescription for ``challenge`` saying ``facts``."""
    description = KeyDescription()
    level = LEVELS[facts.security_level]
    description["attestationVersion"] = 200
    description["attestationSecurityLevel"] = level
    description["keymasterVersion"] = 200
    description["keymasterSecurityLevel"] = level
    description["attestationChallenge"] = challenge
    description["uniqueId"] = b""
    app = AttestationApplicationId()
    infos = app.setComponentByName("packageInfos").getComponentByName("packageInfos")
    for index, (name, version) in enumerate(facts.packages):
        info = AttestationPackageInfo()
        info["packageName"] = name.encode()
        info["version"] = version
        infos.setComponentByPosition(index, info)
    digests = app.setComponentByName("signatureDigests").getComponentByName("signatureDigests")
    for index, digest in enumerate(facts.signing_digests):
        digests.setComponentByPosition(index, bytes.fromhex(digest))
    software = description.setComponentByName("softwareEnforced").getComponentByName("softwareEnforced")
    software["attestationApplicationId"] = der_encode(app)
    enforced = description.setComponentByName("teeEnforced").getComponentByName("teeEnforced")
    target = software if facts.security_level == "software" else enforced
    target["osPatchLevel"] = facts.os_patch_level
    root = target.setComponentByName("rootOfTrust").getComponentByName("rootOfTrust")
    root["verifiedBootKey"] = hashlib.sha256(b"boot key").digest()
    root["deviceLocked"] = facts.device_locked
    root["verifiedBootState"] = BOOT[facts.boot_state]
    root["verifiedBootHash"] = hashlib.sha256(b"boot image").digest()
    return der_encode(description)


class TestAuthority:
    """A root and an intermediate CA that issue attestation certificates for tests."""

    __test__ = False  # not a pytest class

    def __init__(
        self, name: str = "riskguard test attestation", *, now: datetime | None = None, days: int = 3650
    ) -> None:
        self.now = now or datetime.now(UTC)
        self.days = days
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        ca = x509.BasicConstraints(ca=True, path_length=None)
        self.root = (
            _builder(f"{name} root", _name(f"{name} root"), self.root_key.public_key(), self.now, days)
            .add_extension(ca, critical=True)
            .sign(self.root_key, hashes.SHA256())
        )
        self.intermediate_key = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = (
            _builder(f"{name} intermediate", self.root.subject, self.intermediate_key.public_key(), self.now, days)
            .add_extension(ca, critical=True)
            .sign(self.root_key, hashes.SHA256())
        )

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def _der(self, cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.DER)

    def leaf(
        self,
        public_key: ec.EllipticCurvePublicKey,
        extensions: list[x509.ExtensionType] = (),  # type: ignore[assignment]
        *,
        subject: str = "device key",
        not_after: datetime | None = None,
        serial: int | None = None,
    ) -> x509.Certificate:
        builder = _builder(subject, self.intermediate.subject, public_key, self.now, self.days)
        if not_after is not None:
            builder = builder.not_valid_after(not_after)
        if serial is not None:
            builder = builder.serial_number(serial)
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(self.intermediate_key, hashes.SHA256())

    def chain(self, leaf: x509.Certificate) -> list[bytes]:
        """Leaf first, then the intermediate (the root is configured, not sent)."""
        return [self._der(leaf), self._der(self.intermediate)]

    def android_chain(
        self,
        public_key: ec.EllipticCurvePublicKey,
        challenge: bytes,
        facts: AndroidFacts | None = None,
        **leaf_options: object,
    ) -> list[bytes]:
        extension = x509.UnrecognizedExtension(KEY_DESCRIPTION_OID, key_description(challenge, facts or AndroidFacts()))
        return self.chain(self.leaf(public_key, [extension], subject="Android Keystore Key", **leaf_options))  # type: ignore[arg-type]

    def app_attest_certificate(self, public_key: ec.EllipticCurvePublicKey, nonce: bytes) -> list[bytes]:
        value = AppAttestNonce()
        value["nonce"] = nonce
        extension = x509.UnrecognizedExtension(NONCE_OID, der_encode(value))
        return self.chain(self.leaf(public_key, [extension], subject="App Attest credential"))

    def batch_certificate(self) -> tuple[ec.EllipticCurvePrivateKey, list[bytes]]:
        """A WebAuthn authenticator's batch attestation key and its chain ("packed" format)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "riskguard test authenticator"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation"),
                x509.NameAttribute(NameOID.COMMON_NAME, "riskguard test batch"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - timedelta(days=1))
            .not_valid_after(self.now + timedelta(days=self.days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.intermediate_key, hashes.SHA256())
        )
        return key, self.chain(cert)


def trust_config(authority: TestAuthority, **options: object) -> TrustConfig:
    """A configuration that trusts ``authority`` for every provider and knows the test app."""
    values: dict[str, object] = {
        "android_roots": [authority.root],
        "android_packages": {TEST_PACKAGE: {TEST_SIGNING_DIGEST}},
        "webauthn_rp_id": TEST_RP_ID,
        "webauthn_origins": [TEST_ORIGIN],
        "webauthn_roots": [authority.root],
        "apple_app_ids": [TEST_APP_ID],
        "apple_roots": [authority.root],
        "oem_roots": [OemRoot(authority.root, "riskguard-test-oem", "hardware")],
    }
    values.update(options)
    return TrustConfig(**values)  # type: ignore[arg-type]
