"""Optional details of a report, sealed per entry with AES-256-GCM (``cryptography``): the ciphertext
goes on the log, the key stays with the filing member. Deleting the key erases the details for good
while the entry, its hash and every proof stay valid (crypto-shredding). The entry id is the associated
data, so a ciphertext cannot be moved to another entry.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, insert, select, update

from riskguard.consortium.entries import SealedDetails
from riskguard.consortium.tables import consortium_detail_keys
from riskguard.store.tables import utcnow


class DetailsErased(Exception):
    """The key of these details was deleted: they cannot be read any more."""


def seal(entry_id: str, details: dict[str, Any]) -> tuple[SealedDetails, bytes]:
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    plaintext = json.dumps(details, ensure_ascii=False, sort_keys=True).encode()
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, entry_id.encode())
    sealed = SealedDetails(base64.b64encode(nonce).decode(), base64.b64encode(ciphertext).decode())
    return sealed, key


def unseal(entry_id: str, sealed: SealedDetails, key: bytes) -> dict[str, Any]:
    try:
        plaintext = AESGCM(key).decrypt(
            base64.b64decode(sealed.nonce), base64.b64decode(sealed.ciphertext), entry_id.encode()
        )
    except (InvalidTag, ValueError):
        raise DetailsErased("the key does not open these details") from None
    return json.loads(plaintext)


class DetailKeys:
    """The filing member's keys, one per entry with details."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, entry_id: str, key: bytes) -> None:
        with self.engine.begin() as connection:
            connection.execute(insert(consortium_detail_keys).values(entry_id=entry_id, key=key, created_at=utcnow()))

    def get(self, entry_id: str) -> bytes:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(consortium_detail_keys.c.key).where(consortium_detail_keys.c.entry_id == entry_id)
            ).first()
        if row is None or row[0] is None:
            raise DetailsErased(f"no key for the details of entry {entry_id} (erased, or not filed here)")
        return bytes(row[0])

    def erase(self, entry_id: str) -> bool:
        with self.engine.begin() as connection:
            result = connection.execute(
                update(consortium_detail_keys)
                .where(consortium_detail_keys.c.entry_id == entry_id, consortium_detail_keys.c.key.is_not(None))
                .values(key=None, erased_at=utcnow())
            )
        return bool(result.rowcount)
