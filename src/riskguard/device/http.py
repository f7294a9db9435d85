"""HTTP routes of the device service (an adapter: parse, authenticate, call ``DeviceService``, render).

- ``POST /v1/devices/challenge`` (scope ``decide``): a nonce for a transaction digest, or for a
  registration (``account_id`` and ``device_id``);
- ``POST /v1/devices/register`` (``decide``): verify an attestation, bind the key to the account
  (201; 200 when that key was already bound to that account; 409 when bound to another account and
  ``rebind`` is not set; 422 with the reason code as ``error`` when refused);
- ``GET /v1/devices/{device_id}`` (``decide``; account ids masked unless the key has ``admin``, and an
  unmasked view is written to the audit log), with ``?account_id=`` for that account's trust assessment;
- ``POST /v1/devices/keys/{key_id}/revoke`` (``admin``, audited).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from riskguard.api.auth import Authenticator, actor_of
from riskguard.device.service import ChallengeRequest, DeviceService, RegisterRequest
from riskguard.events.validate import decode_body


def router(
    service: DeviceService,
    auth: Authenticator,
    read_body: Callable[[Request], Awaitable[bytes]],
    render: Callable[..., Response],
    schema: Callable[[Any], dict[str, Any]],
) -> APIRouter:
    routes = APIRouter(tags=["devices"])

    @routes.post(
        "/v1/devices/challenge",
        openapi_extra=schema(ChallengeRequest),
        summary="A single-use nonce (valid at most 60 s) bound to a transaction digest or a registration",
    )
    async def post_challenge(request: Request) -> Response:
        auth.identify(request, "decide")
        return render(service.challenge(decode_body(await read_body(request), ChallengeRequest)))

    @routes.post(
        "/v1/devices/register",
        status_code=201,
        openapi_extra=schema(RegisterRequest),
        summary="Verify a device key's attestation and bind the key to an account",
    )
    async def post_register(request: Request) -> Response:
        key = auth.identify(request, "decide")
        body = decode_body(await read_body(request), RegisterRequest)
        result = await run_in_threadpool(service.register, body, actor=actor_of(key))  # waits for its commit
        return render(result, 201 if result["registered"] else 200)

    @routes.get("/v1/devices/{device_id}", summary="A device's registered keys, bindings and (per account) trust")
    async def get_device(request: Request, device_id: str, account_id: str | None = Query(None)) -> Response:
        key = auth.identify(request, "decide")
        actor, unmask = actor_of(key), key.allows("admin")
        found = await run_in_threadpool(service.get, device_id, account_id=account_id, unmask=unmask, actor=actor)
        return render(found)

    @routes.post("/v1/devices/keys/{key_id}/revoke", summary="Revoke a registered key (audited)")
    async def post_revoke(request: Request, key_id: str) -> Response:
        key = auth.identify(request, "admin")
        return render(await run_in_threadpool(service.revoke, key_id, actor=actor_of(key)))

    return routes
