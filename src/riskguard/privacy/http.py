"""Masked API views of personal data, audited reveal for keys with the ``reveal`` scope, and the privacy
routes: access alerts, throttle lifting, key status.

Identifiers in API answers are masked (riskguard/masking.py) unless the request asks ``?reveal=true`` with a
``purpose`` and its key holds the ``reveal`` scope; then the Revealer checks, counts and audits the request
(and may refuse it: 429 when the key's access looks anomalous).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from riskguard.api.auth import actor_of
from riskguard.errors import Forbidden, ValidationFailed
from riskguard.masking import mask
from riskguard.privacy.revealer import API_ROLE
from riskguard.store.apikeys import ApiKey


def wants_reveal(guard: Any, key: ApiKey, reveal: bool, purpose: str | None, target: str, values: list[str]) -> bool:
    """True when the caller may see ``values`` unmasked (and the reveal was audited); False: mask them."""
    if not reveal:
        return False
    if not key.allows("reveal"):
        raise Forbidden("unmasked personal data needs an API key with the 'reveal' scope")
    if not purpose or not purpose.strip():
        raise ValidationFailed([{"loc": ["query", "purpose"], "type": "missing", "msg": "a reveal needs a purpose"}])
    if values:
        guard.privacy.revealer.reveal_many(
            actor_of(key), API_ROLE, [("value", v) for v in values], purpose=purpose, target=target
        )
    return True


def decision_view(guard: Any, key: ApiKey, result: dict[str, Any], reveal: bool, purpose: str | None) -> dict[str, Any]:
    """A decision as the API returns it: list members named in its explanation masked unless revealed."""
    lists = (result.get("explain") or {}).get("lists") or {}
    members = [v for values in lists.values() for v in values]
    if wants_reveal(guard, key, reveal, purpose, f"event:{result.get('event_id', '')}", members) or not members:
        return result
    explain = {**result["explain"], "lists": {name: [mask(v) for v in values] for name, values in lists.items()}}
    return {**result, "explain": explain}


def list_view(
    guard: Any, key: ApiKey, name: str, entries: list[dict[str, Any]], reveal: bool, purpose: str | None
) -> list[dict[str, Any]]:
    """List entries with values (and reasons, free text) masked unless revealed."""
    values = [e["value"] for e in entries]
    if wants_reveal(guard, key, reveal, purpose, f"list:{name}", values):
        return entries
    from riskguard.masking import mask_text

    return [{**e, "value": mask(e["value"]), "reason": mask_text(e.get("reason"))} for e in entries]


def router(guard: Any, auth: Any, as_json: Callable[..., Response]) -> APIRouter:
    routes = APIRouter(tags=["privacy"])
    revealer = guard.privacy.revealer

    @routes.get("/v1/privacy/alerts", summary="Alerts of anomalous access to personal data")
    async def get_alerts(
        request: Request,
        status: str = Query("open", pattern="^(open|closed|all)$"),
        limit: int = Query(100, ge=1, le=1000),
        after_id: int = Query(0, ge=0),
    ) -> Response:
        auth.identify(request, "investigate")
        found = revealer.alerts.list(status=None if status == "all" else status, limit=limit, after_id=after_id)
        return as_json({"alerts": found})

    @routes.post("/v1/privacy/throttles/{actor}/lift", summary="Lift an actor's reveal throttle (audited)")
    async def post_lift(request: Request, actor: str) -> Response:
        key = auth.identify(request, "admin")
        return as_json({"actor": actor, "lifted": revealer.lift(actor, by=actor_of(key), role="admin")})

    @routes.get("/v1/privacy/keys", summary="Key ids in use (never the keys)")
    async def get_keys(request: Request) -> Response:
        auth.identify(request, "admin")
        cipher = guard.privacy.cipher
        return as_json(
            {
                "field_encryption": guard.privacy.enabled,
                "active_key": cipher.active_key,
                "keys": sorted(cipher.keyring.keys),
                "active_token_key": cipher.active_token_key,
                "retired": list(cipher.keyring.retired),
            }
        )

    return routes
