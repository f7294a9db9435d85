"""The HTTP adapter: parse, authenticate, call RiskGuard, render. No decision logic lives here."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response

from riskguard.api.auth import Authenticator, actor_of
from riskguard.api.fastpath import DecisionFastPath, error_response
from riskguard.api.schemas import LabelBatch, ListEntries, ListRemoval, Outcome, PublishedValues
from riskguard.app import RiskGuard
from riskguard.errors import RiskguardError, ValidationFailed
from riskguard.events.schema import Event, EventBatch
from riskguard.events.validate import decode_body, parse_batch, parse_event
from riskguard.privacy.http import decision_view, list_view
from riskguard.store.lists import check_list_name
from riskguard.store.published import check_source

log = logging.getLogger("riskguard.api")
_encode = msgspec.json.Encoder(decimal_format="string").encode


def _json(content: Any, status: int = 200) -> Response:
    return Response(_encode(content), status_code=status, media_type="application/json")


def _schema(type_: Any) -> dict[str, Any]:
    schema, components = msgspec.json.schema_components([type_], ref_template="#/components/schemas/{name}")
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema[0]}}},
        "x-components": components,
    }


def create_app(rg: RiskGuard | None = None) -> FastAPI:
    """The FastAPI application; builds a RiskGuard from the environment when none is given."""
    guard = rg if rg is not None else RiskGuard()
    settings = guard.settings
    auth = Authenticator(guard.api_keys, enabled=settings.auth)
    app = FastAPI(
        title="riskguard",
        version="0.1.0",
        description="Risk decisions for payments, transfers, logins, sign-ups, loans and complaints. "
        "Authenticate with `Authorization: Bearer KEY`.",
    )
    app.state.riskguard = guard

    async def read_body(request: Request, limit: int = settings.max_body_bytes) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ValidationFailed(
                [{"loc": ["body"], "type": "too_large", "msg": f"body is {declared} bytes; the limit is {limit}"}]
            )
        body = await request.body()
        if len(body) > limit:
            raise ValidationFailed(
                [{"loc": ["body"], "type": "too_large", "msg": f"body is {len(body)} bytes; the limit is {limit}"}]
            )
        return body

    @app.exception_handler(RiskguardError)
    async def on_error(_request: Request, exc: RiskguardError) -> Response:
        status, body, extra = error_response(exc)
        headers = {k.decode(): v.decode() for k, v in extra}
        return Response(body, status_code=status, media_type="application/json", headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def on_request_error(request: Request, exc: RequestValidationError) -> Response:
        detail = [
            {"loc": list(e.get("loc", [])), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return await on_error(request, ValidationFailed(detail))

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return _json({"error": "internal_error", "message": "internal error; it has been logged"}, 500)

    limits = settings.event_limits

    @app.post(
        "/v1/decisions",
        tags=["decisions"],
        openapi_extra=_schema(Event),
        summary="Decide an event now (durably recorded before the answer)",
    )
    async def post_decision(request: Request, explain: bool = Query(False)) -> Response:
        auth.identify(request, "decide")
        event = parse_event(await read_body(request), **limits)
        return _json(await guard.decide_async(event, with_explain=explain))

    @app.post(
        "/v1/events",
        tags=["decisions"],
        status_code=202,
        openapi_extra=_schema(EventBatch),
        summary="Accept up to 1,000 events for decision in the background",
    )
    async def post_events(request: Request) -> Response:
        auth.identify(request, "decide")
        events = parse_batch(
            await read_body(request, settings.max_batch_body_bytes), max_events=settings.max_batch_events, **limits
        )
        return _json(guard.ingest(events), 202)

    @app.get("/v1/decisions/{event_id}", tags=["decisions"], summary="A stored decision")
    async def get_decision(
        request: Request,
        event_id: str,
        explain: bool = Query(False),
        reveal: bool = Query(False, description="unmasked list members (scope 'reveal'; audited)"),
        purpose: str | None = Query(None, max_length=200, description="why, when revealing"),
    ) -> Response:
        key = auth.identify(request, "decide")
        result = decision_view(guard, key, guard.get_decision(event_id, with_explain=explain), reveal, purpose)
        return _json(result, 200 if result["status"] == "decided" else 202)

    @app.post(
        "/v1/decisions/{event_id}/outcome",
        tags=["decisions"],
        openapi_extra=_schema(Outcome),
        summary="Report the result of a step-up challenge",
    )
    async def post_outcome(request: Request, event_id: str) -> Response:
        auth.identify(request, "decide")
        outcome = decode_body(await read_body(request), Outcome)
        return _json(guard.report_outcome(event_id, outcome.result, outcome.method, outcome.reported_at))

    @app.post(
        "/v1/labels",
        tags=["feedback"],
        status_code=201,
        openapi_extra=_schema(LabelBatch),
        summary="Confirm events or entities as fraud or legitimate",
    )
    async def post_labels(request: Request) -> Response:
        auth.identify(request, "label")
        batch = decode_body(await read_body(request), LabelBatch)
        rows = []
        errors = []
        for index, item in enumerate(batch.labels):
            if (item.event_id is None) == (item.entity is None):
                errors.append(
                    {
                        "loc": ["body", "labels", index],
                        "type": "value_error",
                        "msg": "give exactly one of event_id or entity",
                    }
                )
            rows.append(
                {
                    "event_id": item.event_id,
                    "entity_kind": item.entity.kind if item.entity else None,
                    "entity_value": item.entity.value if item.entity else None,
                    "label": item.label,
                    "source": item.source,
                    "typology": item.typology,
                    "labelled_at": item.labelled_at,
                    "note": item.note,
                }
            )
        if errors:
            raise ValidationFailed(errors)
        ids = guard.add_labels(rows)
        return _json({"recorded": len(ids), "ids": ids}, 201)

    @app.get("/v1/lists/{name}/entries", tags=["lists"], summary="Entries of a list")
    async def get_list(
        request: Request,
        name: str,
        include_expired: bool = Query(False),
        reveal: bool = Query(False, description="unmasked values (scope 'reveal'; audited)"),
        purpose: str | None = Query(None, max_length=200, description="why, when revealing"),
    ) -> Response:
        key = auth.identify(request, "admin")
        check_list_name(name)
        entries = list_view(
            guard, key, name, guard.lists.entries(name, include_expired=include_expired), reveal, purpose
        )
        guard.audit.record(actor_of(key), "list.view", name, {"entries": len(entries)})
        return _json({"list": name, "entries": entries})

    @app.post(
        "/v1/lists/{name}/entries",
        tags=["lists"],
        status_code=201,
        openapi_extra=_schema(ListEntries),
        summary="Add values to a list (audited)",
    )
    async def post_list(request: Request, name: str) -> Response:
        key = auth.identify(request, "admin")
        check_list_name(name)
        body = decode_body(await read_body(request), ListEntries)
        if body.expires_at is not None and body.ttl_seconds is not None:
            raise ValidationFailed(
                [
                    {
                        "loc": ["body", "ttl_seconds"],
                        "type": "value_error",
                        "msg": "give expires_at or ttl_seconds, not both",
                    }
                ]
            )
        expires = body.expires_at
        if body.ttl_seconds is not None:
            expires = datetime.now(UTC) + timedelta(seconds=body.ttl_seconds)
        count = guard.add_to_list(name, body.values, reason=body.reason, expires_at=expires, actor=actor_of(key))
        return _json({"list": name, "added": count, "expires_at": expires}, 201)

    @app.delete(
        "/v1/lists/{name}/entries",
        tags=["lists"],
        openapi_extra=_schema(ListRemoval),
        summary="Remove values from a list (audited)",
    )
    async def delete_list_entries(request: Request, name: str) -> Response:
        key = auth.identify(request, "admin")
        check_list_name(name)
        body = decode_body(await read_body(request), ListRemoval)
        return _json({"list": name, "removed": guard.remove_from_list(name, body.values, actor=actor_of(key))})

    @app.delete("/v1/lists/{name}/entries/{value}", tags=["lists"], summary="Remove one value (audited)")
    async def delete_list_entry(request: Request, name: str, value: str) -> Response:
        key = auth.identify(request, "admin")
        check_list_name(name)
        return _json({"list": name, "removed": guard.remove_from_list(name, [value], actor=actor_of(key))})

    @app.put(
        "/v1/published/{source}",
        tags=["features"],
        openapi_extra=_schema(PublishedValues),
        summary="Publish per-entity feature values computed by a batch job (audited)",
    )
    async def put_published(request: Request, source: str) -> Response:
        key = auth.identify(request, "admin")
        check_source(source)
        body = decode_body(await read_body(request, settings.max_batch_body_bytes), PublishedValues)
        count = guard.publish_features(source, body.values, replace=body.replace, actor=actor_of(key))
        return _json({"source": source, "published": count, "replace": body.replace})

    @app.get("/v1/published", tags=["features"], summary="Published sources, their versions and sizes")
    async def get_published(request: Request) -> Response:
        auth.identify(request, "admin")
        return _json({"sources": guard.published.sources()})

    @app.get("/v1/strategies", tags=["strategies"], summary="Stored versions and what is live")
    async def get_strategies(request: Request) -> Response:
        auth.identify(request, "admin")
        live, shadow = guard.live, guard.shadow
        return _json(
            {
                "live": {"name": live.name, "version": live.version} if live else None,
                "shadow": {"name": shadow.name, "version": shadow.version} if shadow else None,
                "versions": guard.strategies.versions(),
            }
        )

    @app.post(
        "/v1/strategies",
        tags=["strategies"],
        status_code=201,
        summary="Validate and publish a strategy (YAML body); ?role=shadow for a challenger",
    )
    async def post_strategy(
        request: Request, role: str = Query("live", pattern="^(live|shadow)$"), dry_run: bool = Query(False)
    ) -> Response:
        key = auth.identify(request, "admin")
        source = (await read_body(request)).decode("utf-8", errors="replace")
        compiled = guard.compile(source) if dry_run else guard.publish(source, actor=actor_of(key), role=role)
        return _json(
            {
                "name": compiled.name,
                "version": compiled.version,
                "role": role,
                "published": not dry_run,
                "rules": len(compiled.document.rules),
                "features": len(compiled.features),
            },
            201,
        )

    @app.get("/healthz", tags=["operations"], summary="Liveness and the live strategy")
    async def healthz() -> Response:
        live = guard.live
        return _json({"status": "ok", "strategy": {"name": live.name, "version": live.version} if live else None})

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return PlainTextResponse(guard.metrics.render().decode(), media_type="text/plain; version=0.0.4")

    from riskguard.tracing.http import router as tracing_router
    from riskguard.tracing.service import TraceService

    app.include_router(tracing_router(TraceService(guard), auth, read_body, _json, _schema))
    from riskguard.graph.api import router as graph_router

    app.include_router(graph_router(guard, auth, _json))
    from riskguard.complaints.http import router as complaints_router

    app.include_router(complaints_router(guard, auth, read_body, _json, _schema))
    from riskguard.device.http import router as device_router

    app.include_router(device_router(guard.devices, auth, read_body, _json, _schema))
    from riskguard.replay.http import router as retro_router

    app.include_router(retro_router(guard, auth, _json))
    from riskguard.cases.http import router as cases_router
    from riskguard.cases.service import CaseService

    app.state.cases = CaseService(guard)  # one per app: the console uses it too
    app.include_router(cases_router(app.state.cases, auth, read_body, _json, _schema))
    from riskguard.accountsec.http import router as accountsec_router

    app.include_router(accountsec_router(guard, auth, _json))
    from riskguard.privacy.http import router as privacy_router

    app.include_router(privacy_router(guard, auth, _json))
    from riskguard.console.web import mount_console

    mount_console(app, guard)
    _merge_components(app)
    return app


def create_asgi(rg: RiskGuard | None = None) -> Any:
    """What the server runs: the FastAPI application behind the hand-written hot path (api/fastpath.py)."""
    app = create_app(rg)
    guard: RiskGuard = app.state.riskguard
    return DecisionFastPath(app, guard, Authenticator(guard.api_keys, enabled=guard.settings.auth))


def _merge_components(app: FastAPI) -> None:
    """Moves the msgspec schemas' definitions into the OpenAPI document's components."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                extra = operation.pop("x-components", None)
                if extra:
                    components.update(extra)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
