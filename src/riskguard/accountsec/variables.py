"""The ``takeover.*`` and ``account.*`` variables the account-security stage binds for rules, with their
CEL types (no imports, so that the strategy compiler reads them without loading the package)."""

#: CEL declarations of what the ``accountsec`` stage binds (rules/strategy.py adds them to every
#: strategy's environment). Every event gets every variable, so rules never meet an unbound name.
DECLARATIONS: dict[str, str] = {
    # the ordered takeover sequence: new device → password/phone/e-mail change → money out
    # this event's device was first used by the account within the window (not at sign-up), after another
    # device — or, on an account with no device history, it has been bound
    "takeover.new_device": "bool",
    # 0 none, 1 a new device, 2 then a credential change, 3 this event moves money out after both
    "takeover.sequence_stage": "int",
    "takeover.seconds_since_new_device": "int",  # -1 when no new device inside the window
    "takeover.seconds_since_change": "int",  # -1 when no credential change after the new device
    "takeover.changed": "list",  # what was changed after the new device: "password", "phone", "email"
    # leaked personal data (riskguard leak import)
    "account.in_leak": "bool",  # the account (or an identifier on this event) is in a registered leak
    "account.leak_kinds": "list",  # which of its identifiers leaked: phone, email, id_number, card
    "account.leak_age_days": "int",  # days since the most recent such leak was discovered; -1 when none
}
