"""API keys for service clients: shown once, kept only as a SHA-256 hash, scoped.

Keys are 256-bit random secrets, so a fast hash is enough (no password-stretching needed: there is
nothing to guess); comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from riskguard.errors import NotFound, ValidationFailed
from riskguard.store import audit
from riskguard.store.tables import api_keys, utcnow

SCOPES = ("decide", "label", "admin", "investigate", "reveal")  # reveal: unmasked personal data (audited)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        if scope == "reveal":  # never implied by admin: unmasked personal data is granted on its own
            return scope in self.scopes
        return "admin" in self.scopes or scope in self.scopes


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: list[str]) -> list[str]:
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise ValidationFailed(
            [
                {
                    "loc": ["scopes"],
                    "type": "value_error",
                    "msg": f"scopes must be among {', '.join(SCOPES)}; got {scopes}",
                }
            ]
        )
    return sorted(set(scopes))


class ApiKeyRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, scopes: list[str], name: str, actor: str) -> tuple[ApiKey, str]:
        """Returns the key record and the full key text, which is never stored and cannot be shown again."""
        scopes = check_scopes(scopes)
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        with self._engine.begin() as connection:
            connection.execute(
                insert(api_keys).values(
                    key_id=key_id, secret_hash=_hash(secret), scopes=",".join(scopes), name=name, created_at=utcnow()
                )
            )
            audit.record(connection, actor, "apikey.create", key_id, {"scopes": scopes, "name": name})
        return ApiKey(key_id, name, frozenset(scopes)), f"rg_{key_id}_{secret}"

    def verify(self, token: str) -> ApiKey | None:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "rg":
            return None
        _, key_id, secret = parts
        with self._engine.connect() as connection:
            row = connection.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, _hash(secret)):
            return None
        return ApiKey(row.key_id, row.name, frozenset(row.scopes.split(",")))

    def revoke(self, key_id: str, actor: str) -> None:
        with self._engine.begin() as connection:
            result = connection.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            if not result.rowcount:
                raise NotFound(f"no active API key {key_id!r}")
            audit.record(connection, actor, "apikey.revoke", key_id, {})

    def list(self) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            return [
                {k: v for k, v in row._asdict().items() if k != "secret_hash"}
                for row in connection.execute(select(api_keys).order_by(api_keys.c.created_at))
            ]

    def count(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(api_keys)).scalar_one())
