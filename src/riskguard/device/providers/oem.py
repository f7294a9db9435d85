"""The OEM / IFAA slot: keys that a phone maker's secure element or TEE vouches for.

Real OEM attestation (for example the IFAA trusted-terminal framework used by Chinese phone makers) is
available only under a manufacturer partnership, which supplies the root certificates and the format of
whatever device facts the maker puts in its certificates. This provider implements the part every such
scheme shares: a certificate chain from the device key to a configured manufacturer root, and proof of
possession (the key signs the registration challenge). The root's configuration says which vendor it is
and what security level its keys have. Device facts in vendor extensions are read by a ``decoder`` per
vendor (``OemProvider(trust, decoders={"ExampleOEM": fn})``, ``fn(leaf_certificate) -> dict`` with any of
``boot_state``, ``patch_level``, ``package``); without one they stay unknown. Tested with a test CA only.

Statement: ``{"format": "oem", "certificates": [base64url DER, ...], "signature": base64url ECDSA(challenge)}``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography import x509

from riskguard.device import codes
from riskguard.device.chain import load_chain, serials, verify_chain
from riskguard.device.errors import DeviceRefused
from riskguard.device.keys import p256, spki, unb64
from riskguard.device.providers.base import Attestation, require
from riskguard.device.providers.software import proof_of_possession
from riskguard.device.trust import TrustConfig

Decoder = Callable[[x509.Certificate], dict[str, Any]]


class OemProvider:
    name = "oem"
    formats = ("oem", "ifaa")

    def __init__(self, trust: TrustConfig, decoders: dict[str, Decoder] | None = None) -> None:
        self.trust = trust
        self.decoders = decoders or {}

    def verify(self, statement: dict[str, Any], challenge: bytes, now: datetime) -> Attestation:
        items = require(statement, "certificates", list)
        chain = load_chain([unb64(item, field="attestation.certificates") for item in items])
        roots = [r.certificate for r in self.trust.oem_roots]
        anchor = verify_chain(chain, roots, self.trust.revocation, now)
        root = next(r for r in self.trust.oem_roots if r.certificate == anchor)
        key = p256(chain[0].public_key())
        proof_of_possession(key, unb64(require(statement, "signature", str), field="attestation.signature"), challenge)
        facts: dict[str, Any] = {}
        decoder = self.decoders.get(root.vendor)
        if decoder is not None:
            try:
                facts = dict(decoder(chain[0]))
            except Exception as exc:
                raise DeviceRefused(codes.ATTESTATION_MALFORMED, f"{root.vendor} extension: {exc}") from None
        findings = []
        if facts.get("boot_state") in ("self_signed", "unverified"):
            findings.append(codes.BOOT_UNVERIFIED)
        attested = root.security_level not in ("software", "none")
        if not attested:
            findings.append(codes.SOFTWARE_KEY)
        return Attestation(
            provider=self.name,
            scheme="raw",
            public_key=spki(key),
            attested=attested,
            security_level=root.security_level,
            boot_state=str(facts.get("boot_state", "unknown")),
            patch_level=facts.get("patch_level"),
            package=facts.get("package"),
            serials=serials(chain),
            findings=findings,
            details={"vendor": root.vendor},
        )
