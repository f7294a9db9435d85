"""Reason codes: why a registration was refused, why a signature failed, why trust is what it is.

Every failure has exactly one code; ``MESSAGES`` says in a sentence what it means (the HTTP error body and
docs/devices.md show it).
"""

from __future__ import annotations

# ---------------------------------------------------------------- registration refused
ATTESTATION_MALFORMED = "ATTESTATION_MALFORMED"
ATTESTATION_UNSUPPORTED = "ATTESTATION_UNSUPPORTED"
CHAIN_UNTRUSTED = "CHAIN_UNTRUSTED"
CHAIN_BROKEN = "CHAIN_BROKEN"
CERT_EXPIRED = "CERT_EXPIRED"
CERT_REVOKED = "CERT_REVOKED"
CHALLENGE_MISMATCH = "CHALLENGE_MISMATCH"
WRONG_PACKAGE = "WRONG_PACKAGE"
WRONG_SIGNING_DIGEST = "WRONG_SIGNING_DIGEST"
WRONG_APP_ID = "WRONG_APP_ID"
DEVELOPMENT_ENVIRONMENT = "DEVELOPMENT_ENVIRONMENT"
KEY_MISMATCH = "KEY_MISMATCH"
UNSUPPORTED_KEY = "UNSUPPORTED_KEY"
PROOF_OF_POSSESSION_FAILED = "PROOF_OF_POSSESSION_FAILED"
KEY_BOUND_TO_OTHER_ACCOUNT = "KEY_BOUND_TO_OTHER_ACCOUNT"

# ---------------------------------------------------------------- nonces (registration and signing)
NONCE_UNKNOWN = "NONCE_UNKNOWN"
NONCE_EXPIRED = "NONCE_EXPIRED"
NONCE_REPLAYED = "NONCE_REPLAYED"
DIGEST_MISMATCH = "DIGEST_MISMATCH"

# ---------------------------------------------------------------- transaction signatures
MALFORMED_SIGNATURE = "MALFORMED_SIGNATURE"
UNKNOWN_KEY = "UNKNOWN_KEY"
KEY_ACCOUNT_MISMATCH = "KEY_ACCOUNT_MISMATCH"
DEVICE_MISMATCH = "DEVICE_MISMATCH"
KEY_REVOKED = "KEY_REVOKED"
COUNTER_REGRESSION = "COUNTER_REGRESSION"
BAD_SIGNATURE = "BAD_SIGNATURE"

# ---------------------------------------------------------------- accepted, but worth less (registration findings)
NOT_ATTESTED = "NOT_ATTESTED"
SOFTWARE_KEY = "SOFTWARE_KEY"
BOOT_UNVERIFIED = "BOOT_UNVERIFIED"
BOOT_FAILED = "BOOT_FAILED"
PATCH_OLD = "PATCH_OLD"
COUNTER_UNSUPPORTED = "COUNTER_UNSUPPORTED"

# ---------------------------------------------------------------- trust reasons
UNREGISTERED_DEVICE = "UNREGISTERED_DEVICE"
TEE_NOT_STRONGBOX = "TEE_NOT_STRONGBOX"
KEY_NEW = "KEY_NEW"
NEW_DEVICE_FOR_ACCOUNT = "NEW_DEVICE_FOR_ACCOUNT"
KEY_REBOUND = "KEY_REBOUND"
EMULATOR = "EMULATOR"
ROOTED = "ROOTED"
HOOKING = "HOOKING"
VPN_OR_PROXY = "VPN_OR_PROXY"
FINGERPRINT_CHANGED = "FINGERPRINT_CHANGED"
FINGERPRINT_UNSTABLE = "FINGERPRINT_UNSTABLE"
DEVICE_MANY_ACCOUNTS = "DEVICE_MANY_ACCOUNTS"
DEVICE_SHARED = "DEVICE_SHARED"
ACCOUNT_MANY_DEVICES = "ACCOUNT_MANY_DEVICES"
FARM_NETWORK = "FARM_NETWORK"
FARM_FINGERPRINT = "FARM_FINGERPRINT"
REGISTRATION_BURST = "REGISTRATION_BURST"
SIGNATURE_FAILED = "SIGNATURE_FAILED"

MESSAGES: dict[str, str] = {
    ATTESTATION_MALFORMED: "the attestation statement could not be decoded",
    ATTESTATION_UNSUPPORTED: "no provider is configured for this attestation format",
    CHAIN_UNTRUSTED: "the certificate chain does not end at a configured root",
    CHAIN_BROKEN: "a certificate in the chain is not signed by the next one",
    CERT_EXPIRED: "a certificate in the chain is outside its validity period",
    CERT_REVOKED: "a certificate in the chain is on the revocation status list",
    CHALLENGE_MISMATCH: "the attested challenge is not the one this server issued",
    WRONG_PACKAGE: "the attested app is not one of the configured packages",
    WRONG_SIGNING_DIGEST: "the attested app is signed with a certificate that is not configured",
    WRONG_APP_ID: "the attested app id (team id and bundle id) is not configured",
    DEVELOPMENT_ENVIRONMENT: "an App Attest development key, and development keys are not allowed",
    KEY_MISMATCH: "the attested key is not the key presented",
    UNSUPPORTED_KEY: "device keys must be ECDSA P-256",
    PROOF_OF_POSSESSION_FAILED: "the signature over the challenge does not verify with the presented key",
    KEY_BOUND_TO_OTHER_ACCOUNT: "this key is bound to another account (register with rebind to move it)",
    NONCE_UNKNOWN: "the nonce was never issued here (or before a restart)",
    NONCE_EXPIRED: "the nonce is older than its time to live",
    NONCE_REPLAYED: "the nonce was already used",
    DIGEST_MISMATCH: "the nonce was issued for another digest, or the digest is not the event's",
    MALFORMED_SIGNATURE: "attributes.device_signature is not a valid signature object",
    UNKNOWN_KEY: "no registered key has this key_id",
    KEY_ACCOUNT_MISMATCH: "the key is bound to another account",
    DEVICE_MISMATCH: "the key is registered for another device_id than the event's",
    KEY_REVOKED: "the key, or a certificate of its attestation, is revoked",
    COUNTER_REGRESSION: "the signature counter did not increase",
    BAD_SIGNATURE: "the signature does not verify",
    NOT_ATTESTED: "the key carries no verified hardware attestation",
    SOFTWARE_KEY: "the attestation says the key is held in software",
    BOOT_UNVERIFIED: "the bootloader is unlocked or the OS is not verified",
    BOOT_FAILED: "verified boot failed",
    PATCH_OLD: "the OS security patch level is old",
    COUNTER_UNSUPPORTED: "the authenticator keeps no signature counter",
    UNREGISTERED_DEVICE: "no key is registered for this device and account",
    TEE_NOT_STRONGBOX: "the key is in a TEE, not a dedicated secure element",
    KEY_NEW: "the key was registered recently",
    NEW_DEVICE_FOR_ACCOUNT: "the device was bound to this account recently",
    KEY_REBOUND: "the key was moved from another account",
    EMULATOR: "the client reports an emulator",
    ROOTED: "the client reports a rooted or jailbroken device",
    HOOKING: "the client reports a hooking framework",
    VPN_OR_PROXY: "the client reports a VPN or proxy",
    FINGERPRINT_CHANGED: "the device fingerprint differs from the registered one",
    FINGERPRINT_UNSTABLE: "the device fingerprint has changed several times",
    DEVICE_MANY_ACCOUNTS: "keys for three or more accounts were registered on this device",
    DEVICE_SHARED: "keys for two accounts were registered on this device",
    ACCOUNT_MANY_DEVICES: "the account has five or more registered devices",
    FARM_NETWORK: "eight or more devices registered from this network within a day (device farm)",
    FARM_FINGERPRINT: "many devices share this fingerprint template (cloned images)",
    REGISTRATION_BURST: "ten or more registrations from this network within an hour",
    SIGNATURE_FAILED: "the event's device signature failed",
}


def message(code: str) -> str:
    return MESSAGES.get(code, code)
