"""Personal data in the case tables is sealed at rest, as everywhere in riskguard's database
(riskguard.privacy): evidence and activity documents have their personal parts sealed (``seal_tree``), and
entity values of personal kinds (phones, cards, addresses) are stored as keyed tokens whose sealed
plaintext sits in the privacy vault — tokens are deterministic, so duplicate merging still joins on them.
Accounts, devices and merchants are pseudonymous ids and stay readable, as in the event log.

With field encryption off (``RISKGUARD_FIELD_ENCRYPTION=false``) everything is stored as given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, select

from riskguard.privacy.cipher import is_token
from riskguard.privacy.fields import open_document, open_value, seal_tree
from riskguard.privacy.service import sealer_for, vault_tokens
from riskguard.privacy.tables import privacy_vault

#: entity kinds stored as tokens (the event log seals these fields too)
TOKEN_KINDS = frozenset({"phone", "card", "ip"})


def dumps(engine: Engine, value: Any) -> str:
    """A JSON document for a case table, its personal parts sealed."""
    cipher = sealer_for(engine)
    if cipher is not None:
        value = seal_tree(cipher, json.loads(json.dumps(value, default=str)))
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def loads(text: str) -> Any:
    return json.loads(open_document(text))


def stored(engine: Engine, connection: Connection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """{(kind, value): what the entity table stores} — a vault token for personal kinds."""
    pairs = list(dict.fromkeys(pairs))
    cipher = sealer_for(engine)
    out = {pair: pair[1] for pair in pairs}
    if cipher is None:
        return out
    by_kind: dict[str, list[str]] = {}
    for kind, value in pairs:
        if kind in TOKEN_KINDS:
            by_kind.setdefault(kind, []).append(value)
    for kind, values in by_kind.items():
        for value, token in vault_tokens(connection, cipher, kind, values).items():
            out[(kind, value)] = token
    return out


def lookup(engine: Engine, kind: str, value: str) -> str:
    """The stored form of one entity value, for queries (no vault write)."""
    cipher = sealer_for(engine)
    if cipher is None or kind not in TOKEN_KINDS:
        return value
    return cipher.token(kind, value)


def opened(engine: Engine, connection: Connection, values: Iterable[str]) -> dict[str, str]:
    """{stored value: plaintext} for every token among ``values`` (other values are their own plaintext)."""
    tokens = sorted({v for v in values if is_token(v)})
    found: dict[str, str] = {}
    for start in range(0, len(tokens), 500):
        query = select(privacy_vault.c.token, privacy_vault.c.sealed).where(
            privacy_vault.c.token.in_(tokens[start : start + 500])
        )
        found.update({row.token: str(open_value(row.sealed)) for row in connection.execute(query)})
    return found


def text(engine: Engine, value: str) -> str:
    """A free text (a title, a reason) for a case table: sealed whole when it looks personal (an e-mail
    address, a run of digits, several words that may name someone), as the event log does."""
    cipher = sealer_for(engine)
    if cipher is None:
        return value
    return str(seal_tree(cipher, value))


def plain(value: str) -> str:
    return str(open_value(value))
