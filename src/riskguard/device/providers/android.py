"""Android Key Attestation: a Keystore key's certificate chain and its KeyDescription extension.

The KeyDescription (OID 1.3.6.1.4.1.11129.2.1.17) is decoded with pyasn1, using the schema that the
``webauthn`` library maintains for its "android-key" format; the AttestationApplicationId inside it (an
OCTET STRING holding DER) is decoded with the schema below, from the Android documentation. Checked: the
chain (chain.py), the challenge, the app package and signing-certificate digest against configuration.
Reported: attestation and Keymaster security levels, verified-boot state, OS patch level.

Statement: ``{"format": "android-key", "certificates": [base64url DER, ...]}`` (leaf first, as
``KeyStore.getCertificateChain`` returns it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509
from pyasn1.codec.der.decoder import decode as der_decode
from pyasn1.error import PyAsn1Error
from pyasn1.type import namedtype, univ
from webauthn.helpers.asn1.android_key import KeyDescription

from riskguard.device import codes
from riskguard.device.chain import load_chain, serials, verify_chain
from riskguard.device.errors import DeviceRefused
from riskguard.device.keys import p256, spki, unb64
from riskguard.device.providers.base import Attestation, require
from riskguard.device.trust import TrustConfig

KEY_DESCRIPTION_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.1.17")
SECURITY_LEVELS = {0: "software", 1: "tee", 2: "strongbox"}
BOOT_STATES = {0: "verified", 1: "self_signed", 2: "unverified", 3: "failed"}


class AttestationPackageInfo(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("packageName", univ.OctetString()),
        namedtype.NamedType("version", univ.Integer()),
    )


class AttestationApplicationId(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("packageInfos", univ.SetOf(componentType=AttestationPackageInfo())),
        namedtype.NamedType("signatureDigests", univ.SetOf(componentType=univ.OctetString())),
    )


def _field(auth: Any, name: str) -> Any:
    value = auth[name]
    return value if value.isValue else None


def parse_key_description(der: bytes) -> dict[str, Any]:
    """The facts of a KeyDescription extension value, as plain Python values."""
    try:
        description, rest = der_decode(der, asn1Spec=KeyDescription())
    except PyAsn1Error as exc:
        raise DeviceRefused(codes.ATTESTATION_MALFORMED, f"KeyDescription: {exc}") from None
    if rest:
        raise DeviceRefused(codes.ATTESTATION_MALFORMED, "KeyDescription has trailing bytes")
    tee, software = description["teeEnforced"], description["softwareEnforced"]

    def either(name: str) -> Any:
        found = _field(tee, name)
        return found if found is not None else _field(software, name)

    facts: dict[str, Any] = {
        "attestation_version": int(description["attestationVersion"]),
        "attestation_security_level": SECURITY_LEVELS.get(int(description["attestationSecurityLevel"]), "software"),
        "keymaster_security_level": SECURITY_LEVELS.get(int(description["keymasterSecurityLevel"]), "software"),
        "challenge": bytes(description["attestationChallenge"]),
        "boot_state": "unknown",
        "device_locked": None,
        "os_patch_level": None,
        "packages": [],
        "signature_digests": [],
    }
    root = either("rootOfTrust")
    if root is not None:
        facts["boot_state"] = BOOT_STATES.get(int(root["verifiedBootState"]), "failed")
        facts["device_locked"] = bool(root["deviceLocked"])
    patch = either("osPatchLevel")
    if patch is not None:
        facts["os_patch_level"] = int(patch)
    app = either("attestationApplicationId")
    if app is not None:
        try:
            parsed, rest = der_decode(bytes(app), asn1Spec=AttestationApplicationId())
        except PyAsn1Error as exc:
            raise DeviceRefused(codes.ATTESTATION_MALFORMED, f"AttestationApplicationId: {exc}") from None
        facts["packages"] = [
            (bytes(info["packageName"]).decode("utf-8", "replace"), int(info["version"]))
            for info in parsed["packageInfos"]
        ]
        facts["signature_digests"] = [bytes(d).hex() for d in parsed["signatureDigests"]]
    return facts


def patch_date(level: int | None) -> int | None:
    """``202511`` (YYYYMM) → ``20251101``; a YYYYMMDD value is kept."""
    if level is None or level <= 0:
        return None
    return level * 100 + 1 if level < 1_000_000 else level


class AndroidKeyProvider:
    name = "android"
    formats = ("android-key",)

    def __init__(self, trust: TrustConfig) -> None:
        self.trust = trust

    def verify(self, statement: dict[str, Any], challenge: bytes, now: datetime) -> Attestation:
        items = require(statement, "certificates", list)
        chain = load_chain([unb64(item, field="attestation.certificates") for item in items])
        verify_chain(chain, self.trust.android_roots, self.trust.revocation, now)
        leaf = chain[0]
        try:
            extension = leaf.extensions.get_extension_for_oid(KEY_DESCRIPTION_OID)
        except x509.ExtensionNotFound:
            raise DeviceRefused(codes.ATTESTATION_MALFORMED, "the leaf has no KeyDescription extension") from None
        value = extension.value
        facts = parse_key_description(value.value if isinstance(value, x509.UnrecognizedExtension) else b"")
        if facts["challenge"] != challenge:
            raise DeviceRefused(codes.CHALLENGE_MISMATCH)
        package, digest = self._check_app(facts)
        key = p256(leaf.public_key())
        findings: list[str] = []
        level = facts["attestation_security_level"]
        attested = level != "software"
        if not attested:
            findings.append(codes.SOFTWARE_KEY)
        if facts["boot_state"] in ("self_signed", "unverified") or facts["device_locked"] is False:
            findings.append(codes.BOOT_UNVERIFIED)
        elif facts["boot_state"] == "failed":
            findings.append(codes.BOOT_FAILED)
        boot = facts["boot_state"]
        if facts["device_locked"] is False and boot == "verified":
            boot = "unverified"
        return Attestation(
            provider=self.name,
            scheme="raw",
            public_key=spki(key),
            attested=attested,
            security_level=level,
            boot_state=boot,
            patch_level=patch_date(facts["os_patch_level"]),
            package=package,
            signing_digest=digest,
            serials=serials(chain),
            findings=findings,
            details={
                "attestation_version": facts["attestation_version"],
                "keymaster_security_level": facts["keymaster_security_level"],
            },
        )

    def _check_app(self, facts: dict[str, Any]) -> tuple[str | None, str | None]:
        names = [name for name, _version in facts["packages"]]
        digests = facts["signature_digests"]
        configured = self.trust.android_packages
        if not configured:  # no app identity configured: report what was attested, check nothing
            return (names[0] if names else None), (digests[0] if digests else None)
        for name in names:
            allowed = configured.get(name)
            if allowed is None:
                continue
            matching = [d for d in digests if d in allowed]
            if not matching:
                raise DeviceRefused(codes.WRONG_SIGNING_DIGEST, f"package {name}")
            return name, matching[0]
        raise DeviceRefused(codes.WRONG_PACKAGE, ", ".join(names) or "no package attested")
