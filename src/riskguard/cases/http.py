"""REST routes of investigations under ``/v1/alerts`` and ``/v1/cases`` (an adapter: parse, authenticate,
call ``CaseService``, render). Scope ``investigate`` (admin keys imply it); ``unmask=true`` needs the
``reveal`` scope (never implied) and goes through the privacy Revealer (audited). Bad input answers 422 naming the
field in ``detail[].loc``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from riskguard.api.auth import Authenticator, actor_of
from riskguard.cases.service import CaseService
from riskguard.errors import Forbidden
from riskguard.events.validate import decode_body

SCOPE = "investigate"
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
AlertIds = Annotated[list[int], msgspec.Meta(min_length=1, max_length=1000)]


class EntityIn(msgspec.Struct, forbid_unknown_fields=True):
    """An entity by reference (``ref`` from a case view) or by ``kind`` and ``value``."""

    ref: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    kind: Literal["account", "device", "phone", "card", "ip", "merchant"] | None = None
    value: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None


def _entities(items: list[EntityIn] | None) -> list[dict[str, str]]:
    return [{k: v for k, v in msgspec.structs.asdict(e).items() if v is not None} for e in items or []]


class ManualAlert(msgspec.Struct, forbid_unknown_fields=True):
    title: Text
    entities: Annotated[list[EntityIn], msgspec.Meta(min_length=1, max_length=500)]
    amount: Decimal | None = None
    score: Decimal = Decimal("0.5")
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class AssignAlerts(msgspec.Struct, forbid_unknown_fields=True):
    alert_ids: AlertIds
    assignee: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class OpenCase(msgspec.Struct, forbid_unknown_fields=True):
    alert_ids: AlertIds
    title: Text | None = None
    assignee: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class AddAlerts(msgspec.Struct, forbid_unknown_fields=True):
    alert_ids: AlertIds


class Assign(msgspec.Struct, forbid_unknown_fields=True):
    assignee: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None


class Status(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal["open", "investigating"]


class Note(msgspec.Struct, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]


class ListAdd(msgspec.Struct, forbid_unknown_fields=True):
    entities: Annotated[list[EntityIn], msgspec.Meta(min_length=1, max_length=1000)]
    list_name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = msgspec.field(
        default=None, name="list"
    )
    ttl_hours: Annotated[float, msgspec.Meta(gt=0, le=24 * 3650)] | None = None
    expires_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class Freeze(msgspec.Struct, forbid_unknown_fields=True):
    accounts: Annotated[list[EntityIn], msgspec.Meta(max_length=1000)] | None = None
    ttl_hours: Annotated[int, msgspec.Meta(ge=1, le=720)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class Trace(msgspec.Struct, forbid_unknown_fields=True):
    event_ids: (
        Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=128)]], msgspec.Meta(max_length=1000)]
        | None
    ) = None
    rule: Literal["libr", "fifo", "lifo", "proportional"] = "libr"


class Close(msgspec.Struct, forbid_unknown_fields=True):
    resolution: Literal["confirmed_fraud", "legitimate", "inconclusive"]
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    label: bool = True


class Reopen(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


def router(
    service: CaseService,
    auth: Authenticator,
    read_body: Callable[..., Awaitable[bytes]],
    render: Callable[..., Response],
    schema: Callable[[Any], dict[str, Any]],
) -> APIRouter:
    routes = APIRouter(tags=["investigations"])

    def who(request: Request, *, unmask: bool = False) -> tuple[str, str | None]:
        """(actor, role for the Revealer); unmasked reads need the ``reveal`` scope."""
        from riskguard.privacy import API_ROLE

        key = auth.identify(request, SCOPE)
        if unmask and not key.allows("reveal"):
            raise Forbidden("unmasked personal data needs an API key with the 'reveal' scope")
        return actor_of(key), API_ROLE if unmask else None

    async def body(request: Request, type_: Any, *, optional: bool = False) -> Any:
        raw = await read_body(request)
        if optional and not raw.strip():
            return type_()
        return decode_body(raw, type_)

    # ------------------------------------------------------------------ alerts
    @routes.get("/v1/alerts", summary="The alert inbox: one item per group of merged alerts (masked)")
    async def list_alerts(
        request: Request,
        status: str | None = Query("open", description="open, in_case, closed, or all"),
        source: str | None = Query(None, description="review, graph, complaint, trace, leak, access or manual"),
        assignee: str | None = Query(None),
        min_priority: str | None = Query(None),
        sort: str = Query("priority", description="priority, newest or oldest"),
        limit: int = Query(50),
        offset: int = Query(0),
        sync: bool = Query(False, description="pull new source alerts first (skipped if synced in the last 30 s)"),
    ) -> Response:
        actor, _ = who(request)
        if sync:
            await run_in_threadpool(service.sync, actor, max_age_s=30)
        return render(
            service.alerts(
                status=None if status == "all" else status,
                source=source,
                assignee=assignee,
                min_priority=min_priority,
                sort=sort,
                limit=limit,
                offset=offset,
            )
        )

    @routes.post("/v1/alerts/sync", summary="Pull new alerts from every source now (idempotent)")
    async def sync_alerts(request: Request) -> Response:
        actor, _ = who(request)
        return render(await run_in_threadpool(service.sync, actor))

    @routes.post("/v1/alerts", status_code=201, openapi_extra=schema(ManualAlert), summary="Enter an alert by hand")
    async def post_alert(request: Request) -> Response:
        actor, _ = who(request)
        item = await body(request, ManualAlert)
        created = service.create_alert(
            actor=actor,
            title=item.title,
            entities=_entities(item.entities),
            amount=item.amount,
            score=item.score,
            note=item.note,
        )
        return render(created, 201)

    @routes.post("/v1/alerts/assign", openapi_extra=schema(AssignAlerts), summary="Assign alert groups (bulk)")
    async def assign_alerts(request: Request) -> Response:
        actor, _ = who(request)
        item = await body(request, AssignAlerts)
        return render(service.assign_alerts(item.alert_ids, item.assignee, actor=actor))

    @routes.get("/v1/alerts/{alert_id}", summary="An alert group with every member alert and its evidence")
    async def get_alert(request: Request, alert_id: int, unmask: bool = Query(False)) -> Response:
        actor, role = who(request, unmask=unmask)
        return render(service.alert(alert_id, revealed=unmask, actor=actor, role=role))

    # ------------------------------------------------------------------ cases
    @routes.post("/v1/cases", status_code=201, openapi_extra=schema(OpenCase), summary="Open a case from alerts")
    async def open_case(request: Request) -> Response:
        actor, _ = who(request)
        item = await body(request, OpenCase)
        return render(service.open_case(item.alert_ids, actor=actor, title=item.title, assignee=item.assignee), 201)

    @routes.get("/v1/cases", summary="Cases, highest priority first, with SLA clocks")
    async def list_cases(
        request: Request,
        status: str | None = Query(None, description="open, investigating or closed"),
        assignee: str | None = Query(None),
        breached: bool = Query(False, description="only open cases past their SLA"),
        limit: int = Query(50),
        offset: int = Query(0),
    ) -> Response:
        who(request)
        return render(
            service.cases(status=status, assignee=assignee, breached_only=breached, limit=limit, offset=offset)
        )

    @routes.get(
        "/v1/cases/{case_id}",
        summary="The case view: entities, timeline, decisions, ring graph (Cytoscape.js), fund flows, notes",
    )
    async def get_case(request: Request, case_id: int, unmask: bool = Query(False)) -> Response:
        actor, role = who(request, unmask=unmask)
        return render(await run_in_threadpool(service.case, case_id, revealed=unmask, actor=actor, role=role))

    @routes.post("/v1/cases/{case_id}/alerts", openapi_extra=schema(AddAlerts), summary="Add alerts to a case")
    async def add_alerts(request: Request, case_id: int) -> Response:
        actor, _ = who(request)
        item = await body(request, AddAlerts)
        return render(service.add_alerts(case_id, item.alert_ids, actor=actor))

    @routes.post("/v1/cases/{case_id}/assign", openapi_extra=schema(Assign), summary="Assign a case")
    async def assign(request: Request, case_id: int) -> Response:
        actor, _ = who(request)
        item = await body(request, Assign)
        return render(service.assign(case_id, item.assignee, actor=actor))

    @routes.post("/v1/cases/{case_id}/status", openapi_extra=schema(Status), summary="open ↔ investigating")
    async def set_status(request: Request, case_id: int) -> Response:
        actor, _ = who(request)
        item = await body(request, Status)
        return render(service.set_status(case_id, item.status, actor=actor))

    @routes.post("/v1/cases/{case_id}/notes", status_code=201, openapi_extra=schema(Note), summary="Add a note")
    async def add_note(request: Request, case_id: int) -> Response:
        actor, _ = who(request)
        item = await body(request, Note)
        return render(service.add_note(case_id, item.text, actor=actor), 201)

    @routes.post(
        "/v1/cases/{case_id}/lists",
        openapi_extra=schema(ListAdd),
        summary="Put case entities on a list, with an expiry (default list per kind)",
    )
    async def add_to_list(request: Request, case_id: int) -> Response:
        actor, _ = who(request)
        item = await body(request, ListAdd)
        return render(
            service.add_to_list(
                case_id,
                _entities(item.entities),
                actor=actor,
                list_name=item.list_name,
                ttl_hours=item.ttl_hours,
                expires_at=item.expires_at,
                reason=item.reason,
            )
        )

    @routes.post(
        "/v1/cases/{case_id}/freeze",
        status_code=201,
        openapi_extra=schema(Freeze),
        summary="Request an account freeze (a 48-hour stop-payment on blocked_accounts)",
    )
    async def freeze(request: Request, case_id: int) -> Response:
        actor, _ = who(request)
        item = await body(request, Freeze, optional=True)
        accounts = _entities(item.accounts) if item.accounts else None
        return render(
            service.request_freeze(case_id, accounts, actor=actor, ttl_hours=item.ttl_hours, reason=item.reason), 201
        )

    @routes.post(
        "/v1/cases/{case_id}/trace",
        status_code=201,
        openapi_extra=schema(Trace),
        summary="Trace the victims' money from the case's reported transfers",
    )
    async def trace(request: Request, case_id: int) -> Response:
        actor, _ = who(request)
        item = await body(request, Trace, optional=True)
        result = await run_in_threadpool(
            service.start_trace, case_id, actor=actor, event_ids=item.event_ids, rule=item.rule
        )
        return render(result, 201)

    @routes.post("/v1/cases/{case_id}/close", openapi_extra=schema(Close), summary="Close with a resolution (labels)")
    async def close(request: Request, case_id: int) -> Response:
        actor, _ = who(request)
        item = await body(request, Close)
        return render(service.close(case_id, item.resolution, actor=actor, note=item.note, label=item.label))

    @routes.post("/v1/cases/{case_id}/reopen", openapi_extra=schema(Reopen), summary="Reopen a closed case")
    async def reopen(request: Request, case_id: int) -> Response:
        actor, _ = who(request)
        item = await body(request, Reopen, optional=True)
        return render(service.reopen(case_id, actor=actor, note=item.note))

    @routes.get(
        "/v1/cases/{case_id}/evidence",
        summary="The evidence package as a zip (evidence.json, report.html, manifest.json)",
        response_class=Response,
    )
    async def evidence(request: Request, case_id: int, unmask: bool = Query(False)) -> Response:
        actor, role = who(request, unmask=unmask)
        data, manifest = await run_in_threadpool(
            service.evidence_bytes, case_id, actor=actor, role=role, revealed=unmask
        )
        return Response(
            data,
            media_type="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="case-{case_id}-evidence.zip"',
                "X-Package-Digest": manifest["package_digest"],
            },
        )

    @routes.post("/v1/evidence/verify", summary="Check an evidence package (zip body): complete and unaltered")
    async def verify(request: Request, digest: str | None = Query(None)) -> Response:
        from riskguard.cases.evidence import verify as check

        who(request)
        raw = await read_body(request, service.guard.settings.max_batch_body_bytes)
        return render(check(raw, expected_digest=digest))

    return routes
