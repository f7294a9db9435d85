"""HTTP routes of tracing (an adapter: parse, authenticate, call ``TraceService``, render).

``POST /v1/traces`` runs the trace in a worker thread (it reads the event store and can take seconds), so
the server keeps answering decisions meanwhile, and answers 201 with the trace id once it is stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from riskguard.api.auth import Authenticator, actor_of
from riskguard.events.validate import decode_body
from riskguard.tracing.service import FreezeRequest, TraceRequest, TraceService


def router(
    service: TraceService,
    auth: Authenticator,
    read_body: Callable[..., Awaitable[bytes]],
    render: Callable[..., Response],
    schema: Callable[[Any], dict[str, Any]],
) -> APIRouter:
    routes = APIRouter(tags=["tracing"])

    @routes.post(
        "/v1/traces",
        status_code=201,
        openapi_extra=schema(TraceRequest),
        summary="Trace victims' money through the ledger; freeze orders and a return plan (admin)",
    )
    async def post_trace(request: Request) -> Response:
        key = auth.identify(request, "admin")
        # up to 10,000 reports: the batch body limit (RISKGUARD_MAX_BATCH_BODY_BYTES), as for POST /v1/events
        body = decode_body(await read_body(request, service.guard.settings.max_batch_body_bytes), TraceRequest)
        return render(await run_in_threadpool(service.create, body, actor=actor_of(key)), 201)

    @routes.get("/v1/traces", summary="Recent traces and their summaries (admin)")
    async def list_traces(request: Request, limit: int = Query(50, ge=1, le=500)) -> Response:
        auth.identify(request, "admin")
        return render({"traces": service.recent(limit)})

    @routes.get(
        "/v1/traces/{trace_id}",
        summary="A trace: per-account amounts, freeze orders, return plan, escaped funds, paths (admin)",
    )
    async def get_trace(
        request: Request,
        trace_id: str,
        sections: str | None = Query(None, description="Only these parts, e.g. freeze_orders,return_plan"),
    ) -> Response:
        auth.identify(request, "admin")
        wanted = [p.strip() for p in sections.split(",") if p.strip()] if sections else None
        return render(await run_in_threadpool(service.get, trace_id, wanted))

    @routes.post(
        "/v1/traces/{trace_id}/freeze",
        status_code=201,
        openapi_extra=schema(FreezeRequest),
        summary="Put the accounts of a trace's freeze orders on a list (default blocked_accounts, 48 h)",
    )
    async def post_freeze(request: Request, trace_id: str) -> Response:
        key = auth.identify(request, "admin")
        raw = await read_body(request)
        body = decode_body(raw, FreezeRequest) if raw.strip() else FreezeRequest()
        return render(service.freeze(trace_id, body, actor=actor_of(key)), 201)

    @routes.post("/v1/mules/score", summary="Compute mule scores over stored events and publish them (admin)")
    async def post_mule_scores(request: Request, days: int = Query(30, ge=1, le=366)) -> Response:
        key = auth.identify(request, "admin")
        return render(await run_in_threadpool(service.score_mules, days=days, actor=actor_of(key)))

    return routes
