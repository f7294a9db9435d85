"""HTTP routes of the complaints analyser (an adapter: parse, authenticate, call ``ComplaintService``).

- ``POST /v1/complaints/analyze`` (scope ``decide``): one event envelope, or ``{"events": [...]}`` (up to
  the service's batch limit); complaints, loan applications and transfers. Answers the assessment (or
  ``{"results": [...]}``), personal data masked.
- ``GET /v1/complaints/clusters`` (scope ``label``): suspected agent and intermediary rings, masked.
- ``GET /v1/complaints/clusters/{id}`` (scope ``label``; ``unmask=true`` needs ``admin`` and is audited):
  one ring with its evidence.
- ``POST /v1/complaints/refresh`` (scope ``admin``): rebuild in bulk from the stored records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from riskguard.api.auth import Authenticator, actor_of
from riskguard.complaints.alerts import KINDS, STATUSES
from riskguard.complaints.service import ComplaintService
from riskguard.errors import Forbidden, ValidationFailed
from riskguard.events.schema import Event
from riskguard.events.validate import parse_batch, parse_event


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise ValidationFailed([{"loc": ["query", name], "type": "value_error", "msg": f"one of {', '.join(allowed)}"}])


def router(
    guard: Any,
    auth: Authenticator,
    read_body: Callable[..., Awaitable[bytes]],
    render: Callable[..., Response],
    schema: Callable[[Any], dict[str, Any]],
) -> APIRouter:
    service = ComplaintService(guard)
    settings = guard.settings
    routes = APIRouter(tags=["complaints"])

    @routes.post(
        "/v1/complaints/analyze",
        openapi_extra=schema(Event),
        summary="Score and route complaints and loan applications; link them to suspected agent rings",
    )
    async def analyze(request: Request) -> Response:
        key = auth.identify(request, "decide")
        body = await read_body(request, settings.max_batch_body_bytes)
        try:
            shape = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise ValidationFailed(
                [{"loc": ["body"], "type": "json_invalid", "msg": f"malformed JSON: {exc}"}]
            ) from None
        batch = isinstance(shape, dict) and "events" in shape
        if batch:
            events = parse_batch(body, max_events=settings.max_batch_events, **settings.event_limits)
        else:
            events = [parse_event(body, **settings.event_limits)]
        results = await run_in_threadpool(service.analyze, events, actor_of(key))
        return render({"results": results} if batch else results[0])

    @routes.get("/v1/complaints/clusters", summary="Suspected agent and intermediary rings (masked)")
    async def clusters(
        request: Request,
        status: str | None = Query("open"),
        kind: str | None = Query(None),
        after_id: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=500),
    ) -> Response:
        auth.identify(request, "label")
        _choice("status", status, STATUSES)
        _choice("kind", kind, KINDS)
        found = await run_in_threadpool(service.clusters, status=status, kind=kind, after_id=after_id, limit=limit)
        return render({"clusters": found})

    @routes.get("/v1/complaints/clusters/{alert_id}", summary="One ring and its evidence (unmasked: admin, audited)")
    async def cluster(request: Request, alert_id: int, unmask: bool = Query(False)) -> Response:
        key = auth.identify(request, "label")
        if unmask and not key.allows("admin"):
            raise Forbidden("the unmasked evidence view needs the 'admin' scope")
        return render(await run_in_threadpool(service.cluster, alert_id, unmask=unmask, actor=actor_of(key)))

    @routes.post("/v1/complaints/refresh", summary="Rebuild rings from every stored record; republish (admin)")
    async def refresh(request: Request) -> Response:
        key = auth.identify(request, "admin")
        return render(await run_in_threadpool(service.refresh, None, actor=actor_of(key)))

    return routes
