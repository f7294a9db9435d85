"""The platform's own data protection: field encryption at rest, keyed tokens, audited reveal (docs/privacy.md).

Other capabilities use:

- ``guard.privacy.cipher`` — ``FieldCipher``: ``seal(kind, value)``, ``open(text)``, ``token(kind, value)``;
  ``sealer_for(engine)`` finds the cipher of a database engine from inside a repository (None when field
  encryption is off);
- ``guard.privacy.revealer`` — ``Revealer.reveal(actor, role, kind, value, purpose=..., target=...)``: the
  plaintext, or Forbidden (role may not reveal) / Throttled (anomalous access; HTTP 429);
- ``riskguard.masking.mask`` for display.
"""

from riskguard.privacy.cipher import FieldCipher, SealError, is_sealed, is_token
from riskguard.privacy.revealer import API_ROLE, Revealer, Throttled, may_reveal
from riskguard.privacy.service import PrivacyService, sealer_for

__all__ = [
    "API_ROLE",
    "FieldCipher",
    "PrivacyService",
    "Revealer",
    "SealError",
    "Throttled",
    "is_sealed",
    "is_token",
    "may_reveal",
    "sealer_for",
]
