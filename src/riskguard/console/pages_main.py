"""Console pages: sign-in and sign-out, language, dashboard, entity view, reveal, lists, replay reports."""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from riskguard.console import charts, i18n
from riskguard.console.dashboard import OUTCOMES, DashboardCache
from riskguard.console.reveal import reveal_value
from riskguard.console.web import COOKIE, LANG_COOKIE, PRE_COOKIE, Console, Ctx, Refused, handler
from riskguard.errors import ValidationFailed
from riskguard.privacy.fields import open_document
from riskguard.store.lists import check_list_name
from riskguard.store.tables import decisions, events


def _safe_next(target: str) -> str:
    return target if target.startswith("/console") and "//" not in target and "\\" not in target else "/console/"


def parse_expiry(text: str, field: str = "expires") -> datetime | None:
    """``""`` (never), a number of days (``30``, ``30d``), hours (``12h``), or a date ``YYYY-MM-DD`` (UTC)."""
    text = text.strip().lower()
    if not text:
        return None
    try:
        if text.endswith("h"):
            return datetime.now(UTC) + timedelta(hours=float(text[:-1]))
        if text.endswith("d") or text.replace(".", "", 1).isdigit():
            return datetime.now(UTC) + timedelta(days=float(text.rstrip("d")))
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ValidationFailed(
            [{"loc": ["body", field], "type": "value_error", "msg": "a number of days (30), hours (12h) or YYYY-MM-DD"}]
        ) from None


def register(router: APIRouter, console: Console) -> None:
    page = handler(console)
    guard = console.guard
    dashboard = DashboardCache(guard.engine)

    # ------------------------------------------------------------------ sign-in
    @router.get("/login")
    @page
    async def login_form(request: Request) -> Response:
        ctx = Ctx(request, None, console.locale_of(request, None))
        return console.render(ctx, "login.html", next=_safe_next(request.query_params.get("next", "")), error=None)

    @router.post("/login")
    @page
    async def login(request: Request) -> Response:
        ctx = Ctx(request, None, console.locale_of(request, None), await console.form(request))
        pre = request.cookies.get(PRE_COOKIE, "")
        if not pre or not hmac.compare_digest(ctx.value("csrf"), pre):
            raise Refused(400, "csrf")
        result = console.users.sign_in(
            ctx.value("username"), ctx.value("password"), source=request.client.host if request.client else ""
        )
        if result.token is None:
            return console.render(
                ctx,
                "login.html",
                code=401,
                next=_safe_next(ctx.value("next")),
                error=result.reason,
                locked_until=result.locked_until,
            )
        response = RedirectResponse(_safe_next(ctx.value("next")), status_code=303)
        console.cookie(response, COOKIE, result.token)
        response.delete_cookie(PRE_COOKIE, path="/console")
        return response

    @router.post("/logout")
    @page
    async def logout(request: Request) -> Response:
        ctx = await console.action(request)
        console.users.sign_out(request.cookies.get(COOKIE, ""))
        guard.audit.record(ctx.actor, "console.signout", ctx.user, {})
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    @router.post("/lang")
    @page
    async def set_language(request: Request) -> Response:
        """Switches the language: remembered on the user when signed in, in a cookie in any case."""
        token = request.cookies.get(COOKIE)
        session = console.users.session(token)
        form = await console.form(request)
        expected = session.csrf if session else request.cookies.get(PRE_COOKIE, "")
        given = (form.get("csrf") or [""])[0]
        if not expected or not hmac.compare_digest(given, expected):
            raise Refused(400, "csrf")
        locale = (form.get("locale") or [""])[0]
        if locale not in i18n.LOCALES:
            raise ValidationFailed([{"loc": ["body", "locale"], "type": "value_error", "msg": "zh-CN or en"}])
        if session is not None:
            console.users.set_locale(session.username, locale)
        response = RedirectResponse(_safe_next((form.get("next") or [""])[0]), status_code=303)
        console.cookie(response, LANG_COOKIE, locale, max_age=365 * 86400)
        return response

    # ------------------------------------------------------------------ dashboard
    @router.get("/")
    @page
    async def home(request: Request) -> Response:
        ctx = await console.page(request, "dashboard.view")
        try:
            days = max(1, min(90, int(request.query_params.get("days", "7"))))
        except ValueError:
            days = 7
        data = dashboard.get(days)
        t = i18n.translator(ctx.locale)
        chart = top = ""
        if not data["empty"]:
            chart = charts.stacked_columns(data["buckets"], data["series"], title=t("dash.by_outcome"))
            top = charts.hbars(data["top_rules"], title=t("dash.top_rules"))
        return console.render(ctx, "dashboard.html", data=data, chart=chart, top=top, outcomes=OUTCOMES, days=days)

    # ------------------------------------------------------------------ entity view and reveal
    @router.get("/entities/{ref}")
    @page
    async def entity_view(request: Request, ref: str) -> Response:
        ctx = await console.page(request, "entity.view")
        kind, value = console.refs.open(ref)
        recent: list[dict[str, Any]] = []
        if kind == "account":
            with guard.engine.connect() as connection:
                rows = connection.execute(
                    select(
                        events.c.event_id,
                        events.c.type,
                        events.c.occurred_at,
                        decisions.c.decision,
                        decisions.c.score,
                        decisions.c.body,
                    )
                    .select_from(events.outerjoin(decisions, decisions.c.event_id == events.c.event_id))
                    .where(events.c.account_id == value)
                    .order_by(events.c.occurred_at.desc())
                    .limit(50)
                ).all()
            payloads = guard.events.payloads([r.event_id for r in rows])
            for r in rows:
                payload = json.loads(payloads.get(r.event_id, "{}"))
                reasons = json.loads(open_document(r.body)).get("reasons", []) if r.body else []
                recent.append(
                    {
                        "event_id": r.event_id,
                        "type": r.type,
                        "occurred_at": r.occurred_at,
                        "amount": payload.get("amount"),
                        "currency": payload.get("currency"),
                        "counterparty": console.entity("account", payload["counterparty_id"])
                        if payload.get("counterparty_id")
                        else None,
                        "device": console.entity("device", payload["device_id"]) if payload.get("device_id") else None,
                        "decision": r.decision,
                        "score": r.score,
                        "rules": [x.get("rule") or x.get("code") for x in reasons],
                    }
                )
        # list values are stored as keyed tokens (privacy): the repository opens them
        memberships = [row for row in guard.lists.entries() if row["value"] == value]
        entity_labels = guard.labels.for_entity(kind, value)
        related = _cases_for(console, kind, value)
        list_names = sorted({r["list_name"] for r in guard.lists.entries()} | {"blocked_accounts", "watch_accounts"})
        return console.render(
            ctx,
            "entity.html",
            entity=console.entity(kind, value),
            recent=recent,
            memberships=memberships,
            labels=entity_labels,
            related=related,
            list_names=list_names,
        )

    @router.post("/reveal")
    @page
    async def reveal(request: Request) -> Response:
        """Reveals one masked value (JSON for the page's script); refused (403) for roles that may not."""
        ctx = await console.action(request)
        kind, value = console.refs.open(ctx.value("ref"))
        plain = reveal_value(
            guard,
            ctx,
            kind,
            value,
            purpose=ctx.value("purpose") or "investigation",
            target=ctx.value("target") or request.headers.get("referer", "")[-200:],
        )
        return JSONResponse({"value": plain}, headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------ lists
    @router.get("/lists")
    @page
    async def lists_page(request: Request) -> Response:
        ctx = await console.page(request, "list.view")
        chosen = request.query_params.get("name") or None
        if chosen is not None:
            check_list_name(chosen)
        rows = guard.lists.entries(chosen, include_expired=request.query_params.get("expired") == "1")
        counts: dict[str, int] = {}
        for row in guard.lists.entries():
            counts[row["list_name"]] = counts.get(row["list_name"], 0) + 1
        shown = [{**row, "entity": console.entity(_kind_of_list(row["list_name"]), row["value"])} for row in rows[:500]]
        return console.render(ctx, "lists.html", rows=shown, counts=counts, chosen=chosen, total=len(rows))

    @router.post("/lists/add")
    @page
    async def lists_add(request: Request) -> Response:
        ctx = await console.action(request, "list.manage")
        name = check_list_name(ctx.value("name"))
        values = [v.strip() for v in ctx.value("values").replace(",", "\n").splitlines() if v.strip()]
        if ctx.value("ref"):
            values.append(console.refs.open(ctx.value("ref"))[1])
        if not values:
            raise ValidationFailed([{"loc": ["body", "values"], "type": "missing", "msg": "one value or more"}])
        guard.lists.add(
            name,
            values,
            reason=ctx.value("reason") or None,
            expires_at=parse_expiry(ctx.value("expires")),
            actor=ctx.actor,
        )
        guard.refresh()
        return RedirectResponse(f"/console/lists?name={name}", status_code=303)

    @router.post("/lists/remove")
    @page
    async def lists_remove(request: Request) -> Response:
        ctx = await console.action(request, "list.manage")
        name = check_list_name(ctx.value("name"))
        _kind, value = console.refs.open(ctx.value("ref"))
        guard.lists.remove(name, [value], actor=ctx.actor)
        guard.refresh()
        return RedirectResponse(f"/console/lists?name={name}", status_code=303)

    # ------------------------------------------------------------------ replay reports
    @router.get("/replays")
    @page
    async def replays(request: Request) -> Response:
        ctx = await console.page(request, "replay.view")
        return console.render(
            ctx,
            "replays.html",
            reports=replay_reports(Path(console.settings.console_reports_dir)),
            folder=console.settings.console_reports_dir,
        )

    @router.get("/replays/{name}")
    @page
    async def replay_report(request: Request, name: str) -> Response:
        await console.page(request, "replay.view")
        folder = Path(console.settings.console_reports_dir)
        known = {r["name"]: r for r in replay_reports(folder)}
        if name not in known:
            raise Refused(404, name)
        response = FileResponse(known[name]["path"] / "report.html", media_type="text/html")
        return response


def _kind_of_list(name: str) -> str:
    for kind in ("account", "device", "phone", "card", "ip", "merchant"):
        if kind in name:
            return kind
    return "value"


def _cases_for(console: Console, kind: str, value: str) -> list[dict[str, Any]]:
    return console.cases.alerts_for_entity(kind, value) if console.cases is not None else []


def replay_reports(folder: Path) -> list[dict[str, Any]]:
    """Every ``report.json`` (with its ``report.html``) directly under ``folder``'s sub-directories, newest
    first, with the headline figures of each column."""
    found: list[dict[str, Any]] = []
    if not folder.is_dir():
        return found
    for path in sorted(p for p in folder.iterdir() if p.is_dir()):
        report = path / "report.json"
        if not report.is_file() or not (path / "report.html").is_file():
            continue
        try:
            document = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found.append(
            {
                "name": path.name,
                "path": path,
                "modified": datetime.fromtimestamp(report.stat().st_mtime, UTC),
                "events": document.get("history", {}).get("events"),
                "columns": [
                    {k: c.get(k) for k in ("label", "loss_rate", "friction", "recall", "decisions")}
                    for c in document.get("columns", [])
                ],
            }
        )
    found.sort(key=lambda r: r["modified"], reverse=True)
    return found
