"""Bearer API keys with scopes; verified keys are cached briefly so a revocation bites within a minute."""

from __future__ import annotations

import time

from fastapi import Request

from riskguard.errors import Forbidden, Unauthorized
from riskguard.store.apikeys import ApiKey, ApiKeyRepository

CACHE_SECONDS = 60.0
ANONYMOUS = ApiKey("anonymous", "authentication off", frozenset({"admin"}))


class Authenticator:
    def __init__(self, keys: ApiKeyRepository, *, enabled: bool) -> None:
        self._keys = keys
        self.enabled = enabled
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    def identify(self, request: Request, scope: str) -> ApiKey:
        return self.identify_header(request.headers.get("authorization", ""), scope)

    def identify_header(self, header: str, scope: str) -> ApiKey:
        """The API key named by an ``Authorization`` header value, if it holds ``scope``."""
        if not self.enabled:
            return ANONYMOUS
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "send an API key as `Authorization: Bearer KEY` (create one with "
                "`riskguard apikey create --scope decide`)"
            )
        token = token.strip()
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            key = cached[1]
        else:
            key = self._keys.verify(token)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (now, key)
        if key is None:
            raise Unauthorized("unknown or revoked API key")
        if not key.allows(scope):
            raise Forbidden(f"this API key lacks the {scope!r} scope")
        return key


def actor_of(key: ApiKey) -> str:
    return f"key:{key.key_id}"
