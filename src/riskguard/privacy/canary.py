"""Canary records: fake accounts with fake but well-formed identifiers that nobody has a reason to open.

Each canary is a signup event decided like any other (so it lies in the event log, sealed like real
data) plus rows in ``privacy_canaries`` (the token of each identifier and the account id). Revealing one
of its identifiers, or revealing anything with the account as target, raises a ``canary`` alert at once.
The identifiers are generated to look real (mainland mobile numbers, 18-character resident ID numbers
with a valid check character, Luhn-valid card numbers) so that an insider cannot tell them apart.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import insert

from riskguard.privacy.service import vault_tokens
from riskguard.privacy.tables import privacy_canaries
from riskguard.store import audit
from riskguard.store.tables import utcnow

_GIVEN = ("Wei", "Fang", "Min", "Jing", "Lei", "Yan", "Jun", "Li", "Hui", "Tao")
_FAMILY = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _digits(n: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(n))


def fake_phone() -> str:
    return "1" + secrets.choice("3456789") + _digits(9)


def fake_id_number() -> str:
    """A resident ID number with a valid GB 11643 check character."""
    year = 1960 + secrets.randbelow(40)
    body = f"{110101 + secrets.randbelow(400):06d}{year}{1 + secrets.randbelow(12):02d}{1 + secrets.randbelow(28):02d}"
    body += _digits(3)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]
    return body + check


def fake_card() -> str:
    """A 16-digit card number with a valid Luhn check digit."""
    body = "62" + _digits(13)
    total = 0
    for index, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


def fake_identity() -> dict[str, str]:
    given, family = secrets.choice(_GIVEN), secrets.choice(_FAMILY)
    return {
        "phone": fake_phone(),
        "email": f"{given.lower()}.{family.lower()}{secrets.randbelow(1000)}@mail.example.cn",
        "id_number": fake_id_number(),
        "card": fake_card(),
        "name": f"{family} {given}",
    }


def create_canaries(guard: Any, count: int, *, actor: str, now: datetime | None = None) -> list[str]:
    """Creates ``count`` canary accounts; returns their account ids (the values never leave this call)."""
    now = now or utcnow()
    cipher = guard.privacy.cipher
    accounts = []
    for _ in range(count):
        account = "u" + _digits(10)
        identity = fake_identity()
        guard.decide(
            {
                "event_id": f"signup-{secrets.token_hex(8)}",
                "type": "signup",
                "occurred_at": now.isoformat(),
                "account_id": account,
                "phone": identity["phone"],
                "card_id": identity["card"],
                "attributes": {
                    "email": identity["email"],
                    "id_number": identity["id_number"],
                    "full_name": identity["name"],
                },
            }
        )
        with guard.engine.begin() as connection:
            rows = []
            for kind, value in identity.items():
                for token_kind in (kind, "value"):  # as typed data, and as an untyped list or label value
                    token = vault_tokens(connection, cipher, token_kind, [value])[value]
                    rows.append(
                        {"token": token, "kind": kind, "account_id": account, "created_at": now, "created_by": actor}
                    )
            connection.execute(insert(privacy_canaries), rows)
            # which accounts are canaries is told once, to whoever made them: not in the audit log
            audit.record(connection, actor, "privacy.canary", "canaries", {"count": 1, "kinds": sorted(identity)})
        accounts.append(account)
    return accounts
