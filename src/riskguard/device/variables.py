"""The ``device.*`` variables the device stage binds for rules, with their CEL types (no imports, so
that the strategy compiler can read them without loading the device package)."""

#: CEL declarations of what this stage binds (rules/strategy.py adds them to
#: every strategy's environment).
DECLARATIONS: dict[str, str] = {
    "device.present": "bool",  # the event names a device or carries a signature
    "device.signed": "bool",  # it carries attributes.device_signature
    "device.signature_ok": "bool",  # ... and every check passed
    "device.failure": "string",  # the reason code of the failed check, "" when none
    "device.registered": "bool",  # a key is registered for this account on this device
    "device.account_enrolled": "bool",  # the account has at least one registered key
    "device.attested": "bool",  # that key has a verified hardware attestation
    "device.provider": "string",  # android | webauthn | apple | oem | software | ""
    "device.security_level": "string",  # strongbox | secure_enclave | tee | hardware | software | none
    "device.boot_state": "string",  # verified | self_signed | unverified | failed | unknown
    "device.patch_age_days": "int",  # -1 when unknown
    "device.key_age_days": "int",  # -1 when unregistered
    "device.new_for_account": "bool",  # unregistered, or bound to this account less than a week ago
    "device.rebound": "bool",  # the key was moved here from another account
    "device.accounts": "int",  # accounts with keys registered on this device
    "device.account_devices": "int",  # devices with keys registered for this account
    "device.farm": "bool",  # a farm signal: network, registration burst or fingerprint template
    "device.trust": "int",  # 0-100
    "device.reasons": "list",  # reason codes behind device.trust, heaviest first
}
