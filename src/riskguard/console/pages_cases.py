"""Console pages of investigations: the alert queue, an alert, cases, the case view and its actions.

Every read and every action is a call to ``riskguard.cases.CaseService`` (docs/cases.md): this module
parses forms, checks the console permission, and renders; it holds no case logic.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.background import BackgroundTask

from riskguard.cases.entities import ACTOR
from riskguard.console.web import Console, Ctx, Refused, handler
from riskguard.errors import ValidationFailed

PAGE = 50
SORTS = ("priority", "newest", "oldest")
ALERT_STATUSES = ("open", "in_case", "closed", "all")
CASE_STATUSES = ("open", "investigating", "closed", "all")


def _int(text: str, field: str, default: int | None = None) -> int:
    if not text and default is not None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValidationFailed([{"loc": ["body", field], "type": "int_parsing", "msg": "a whole number"}]) from None


def _hours(text: str, field: str) -> float | None:
    """``""`` (none), hours (``48``, ``48h``) or days (``30d``)."""
    text = text.strip().lower()
    if not text:
        return None
    try:
        return float(text[:-1]) * 24 if text.endswith("d") else float(text.rstrip("h"))
    except ValueError:
        raise ValidationFailed(
            [{"loc": ["body", field], "type": "value_error", "msg": "hours (48h) or days (30d)"}]
        ) from None


def register(router: APIRouter, console: Console) -> None:
    page = handler(console)
    service = console.cases

    def assignees() -> list[str]:
        return [u["username"] for u in console.users.all() if not u["disabled"] and u["role"] != "auditor"]

    def console_refs(case_id: int) -> dict[str, dict[str, Any]]:
        """The case service's entity references → this console's entity (masked text, link reference)."""
        with service.engine.connect() as connection:
            pairs = service.inbox.entities_of_case(connection, case_id)
        # an access alert's staff actor has no entity page (it is not a customer)
        return {service.refs.ref(k, v): console.entity(k, v) for k, v in pairs if k != ACTOR}

    # ------------------------------------------------------------------ alert queue
    @router.get("/alerts")
    @page
    async def alert_queue(request: Request) -> Response:
        ctx = await console.page(request, "queue.view")
        q = request.query_params
        status = q.get("status", "open")
        if status not in ALERT_STATUSES:
            status = "open"
        sort = q.get("sort", "priority") if q.get("sort", "priority") in SORTS else "priority"
        offset = max(0, _int(q.get("offset", ""), "offset", 0))
        service.sync(ctx.actor, max_age_s=30)
        found = service.alerts(
            status=None if status == "all" else status,
            source=q.get("source") or None,
            assignee=q.get("assignee") or None,
            min_priority=q.get("min_priority") or None,
            sort=sort,
            limit=PAGE,
            offset=offset,
        )
        return console.render(
            ctx,
            "alerts.html",
            found=found,
            status=status,
            sort=sort,
            source=q.get("source", ""),
            assignee=q.get("assignee", ""),
            min_priority=q.get("min_priority", ""),
            statuses=ALERT_STATUSES,
            sorts=SORTS,
            assignees=assignees(),
            page=PAGE,
        )

    @router.post("/alerts/bulk")
    @page
    async def alerts_bulk(request: Request) -> Response:
        """Selected alerts: assign (``case.assign``) or open one case from them (``case.work``)."""
        ctx = await console.action(request)
        ids = [_int(v, "alert_ids") for v in ctx.values("alert_ids")]
        what = ctx.value("do")
        if what == "assign":
            _require(console, ctx, "case.assign")
            service.assign_alerts(ids, ctx.value("assignee") or None, actor=ctx.actor)
            return RedirectResponse("/console/alerts", status_code=303)
        if what == "case":
            _require(console, ctx, "case.work")
            case = service.open_case(ids, actor=ctx.actor, assignee=ctx.user)
            return RedirectResponse(f"/console/cases/{case['id']}", status_code=303)
        raise ValidationFailed([{"loc": ["body", "do"], "type": "value_error", "msg": "assign or case"}])

    @router.get("/alerts/{alert_id}")
    @page
    async def alert_page(request: Request, alert_id: int) -> Response:
        ctx = await console.page(request, "queue.view")
        found = service.alert(alert_id)
        return console.render(ctx, "alert.html", alert=found, assignees=assignees())

    # ------------------------------------------------------------------ cases
    @router.get("/cases")
    @page
    async def case_list(request: Request) -> Response:
        ctx = await console.page(request, "case.view")
        q = request.query_params
        status = q.get("status", "all")
        if status not in CASE_STATUSES:
            status = "all"
        mine = q.get("mine") == "1"
        offset = max(0, _int(q.get("offset", ""), "offset", 0))
        found = service.cases(
            status=None if status == "all" else status,
            assignee=ctx.user if mine else None,
            breached_only=q.get("breached") == "1",
            limit=PAGE,
            offset=offset,
        )
        return console.render(ctx, "cases.html", found=found, status=status, statuses=CASE_STATUSES, mine=mine)

    async def show_case(ctx: Ctx, case_id: int, *, revealed: bool) -> Response:
        view = service.case(case_id, revealed=revealed, actor=ctx.actor, role=ctx.role)
        mine = console_refs(case_id)
        for entity in view["entities"]:
            entity["console"] = mine.get(entity["ref"])
        for node in view["ring_graph"]["elements"]["nodes"]:
            known = mine.get(node["data"]["id"])
            node["data"]["ref"] = known["ref"] if known else ""
            node["data"]["flagged"] = bool(node["data"].get("in_case"))
        for edge in view["ring_graph"]["elements"]["edges"]:
            edge["data"]["label"] = edge["data"].get("relation", "")
            edge["data"]["kind"] = "money" if edge["data"].get("relation") in ("transfer", "payment") else "link"
        with console.guard.engine.connect() as connection:
            from riskguard.store.tables import list_entries

            names = sorted({r[0] for r in connection.execute(select(list_entries.c.list_name).distinct())})
        return console.render(
            ctx,
            "case.html",
            case=view,
            revealed=revealed,
            assignees=assignees(),
            list_names=sorted(set(names) | {"blocked_accounts", "blocked_devices", "blocked_cards", "watch_phones"}),
        )

    @router.get("/cases/{case_id}")
    @page
    async def case_page(request: Request, case_id: int) -> Response:
        ctx = await console.page(request, "case.view")
        return await show_case(ctx, case_id, revealed=False)

    @router.post("/cases/{case_id}/reveal")
    @page
    async def case_revealed(request: Request, case_id: int) -> Response:
        """The case with personal data unmasked: a reveal (Revealer; audited, refused without pii.reveal)."""
        ctx = await console.action(request, "case.view")
        _require(console, ctx, "pii.reveal")
        response = await show_case(ctx, case_id, revealed=True)
        return response

    @router.post("/cases/{case_id}/act")
    @page
    async def case_action(request: Request, case_id: int) -> Response:
        ctx = await console.action(request, "case.view")
        what = ctx.value("do")
        permission = {"assign": "case.assign", "reopen": "case.reopen"}.get(what, "case.work")
        _require(console, ctx, permission)
        refs = [{"ref": r} for r in ctx.values("ref")]
        if what == "note":
            service.add_note(case_id, ctx.value("text"), actor=ctx.actor)
        elif what == "list":
            service.add_to_list(
                case_id,
                refs,
                actor=ctx.actor,
                list_name=ctx.value("list") or None,
                ttl_hours=_hours(ctx.value("ttl"), "ttl"),
                reason=ctx.value("reason") or None,
            )
        elif what == "freeze":
            hours = _hours(ctx.value("ttl"), "ttl")
            service.request_freeze(
                case_id,
                refs or None,
                actor=ctx.actor,
                ttl_hours=None if hours is None else int(hours),
                reason=ctx.value("reason") or None,
            )
        elif what == "trace":
            chosen = [v.strip() for v in ctx.value("event_ids").replace(",", " ").split() if v.strip()]
            service.start_trace(case_id, actor=ctx.actor, event_ids=chosen or None, rule=ctx.value("rule") or "libr")
        elif what == "status":
            service.set_status(case_id, ctx.value("status"), actor=ctx.actor)
        elif what == "close":
            service.close(
                case_id,
                ctx.value("resolution"),
                actor=ctx.actor,
                note=ctx.value("note") or None,
                label=ctx.value("label", "1") == "1",
            )
        elif what == "assign":
            service.assign(case_id, ctx.value("assignee") or None, actor=ctx.actor)
        elif what == "reopen":
            service.reopen(case_id, actor=ctx.actor, note=ctx.value("note") or None)
        else:
            raise ValidationFailed(
                [{"loc": ["body", "do"], "type": "value_error", "msg": "an action of the case page"}]
            )
        return RedirectResponse(f"/console/cases/{case_id}#actions", status_code=303)

    @router.post("/cases/{case_id}/export")
    @page
    async def case_export(request: Request, case_id: int) -> Response:
        """The evidence package as a download (zip: evidence.json, report.html, manifest.json). Unmasked
        for the receiving authority: a reveal with purpose "evidence" (audited)."""
        ctx = await console.action(request, "evidence.export")
        folder = Path(tempfile.mkdtemp(prefix="riskguard-evidence-"))
        target = folder / f"case-{case_id}-evidence.zip"
        try:
            manifest = service.export_evidence(
                case_id, target, actor=ctx.actor, role=ctx.role, revealed=ctx.value("masked") != "1"
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(
            target,
            media_type="application/zip",
            filename=target.name,
            headers={"X-Package-Digest": str(manifest.get("package_digest", ""))},
            background=BackgroundTask(shutil.rmtree, folder, True),
        )


def _require(console: Console, ctx: Ctx, permission: str) -> None:
    if not ctx.can(permission):
        console.guard.audit.record(ctx.actor, "console.refused", ctx.request.url.path, {"permission": permission})
        raise Refused(403, permission)
