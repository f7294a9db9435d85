"""Console pages for admins and auditors: users (add, role, disable, new password) and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from riskguard.console.reveal import revealer_for
from riskguard.console.roles import GRANTS, PERMISSIONS, ROLES
from riskguard.console.users import new_password
from riskguard.console.web import Console, handler


def register(router: APIRouter, console: Console) -> None:
    page = handler(console)
    guard = console.guard

    def users_page(ctx: Any, created: dict[str, str] | None = None) -> Response:
        users = console.users.all()
        revealer = revealer_for(guard)
        throttles = {}
        if revealer is not None:
            for user in users:
                found = revealer.throttled(f"console:{user['username']}")
                if found is not None:
                    throttles[user["username"]] = found
        return console.render(
            ctx,
            "users.html",
            users=users,
            roles=ROLES,
            grants=GRANTS,
            permissions=PERMISSIONS,
            created=created,
            throttles=throttles,
        )

    @router.get("/users")
    @page
    async def users(request: Request) -> Response:
        ctx = await console.page(request, "users.manage")
        return users_page(ctx, None)

    @router.post("/users/add")
    @page
    async def add_user(request: Request) -> Response:
        ctx = await console.action(request, "users.manage")
        password = ctx.value("password") or new_password()
        console.users.add(ctx.value("username"), ctx.value("role"), password, actor=ctx.actor)
        shown = None if ctx.value("password") else {"username": ctx.value("username"), "password": password}
        return users_page(ctx, shown)

    @router.post("/users/{username}")
    @page
    async def change_user(request: Request, username: str) -> Response:
        ctx = await console.action(request, "users.manage")
        what = ctx.value("do")
        created = None
        if what == "disable":
            console.users.set_disabled(username, True, actor=ctx.actor)
        elif what == "enable":
            console.users.set_disabled(username, False, actor=ctx.actor)
        elif what == "role":
            console.users.set_role(username, ctx.value("role"), actor=ctx.actor)
        elif what == "lift":  # a reveal throttle of the privacy Revealer (audited there)
            revealer = revealer_for(guard)
            if revealer is not None:
                revealer.lift(f"console:{username}", by=ctx.actor, role=ctx.role)
        elif what == "password":
            password = new_password()
            console.users.set_password(username, password, actor=ctx.actor)
            created = {"username": username, "password": password}
        else:
            from riskguard.errors import ValidationFailed

            raise ValidationFailed(
                [{"loc": ["body", "do"], "type": "value_error", "msg": "disable, enable, role, password or lift"}]
            )
        if created is None:
            return RedirectResponse("/console/users", status_code=303)
        return users_page(ctx, created)

    @router.get("/audit")
    @page
    async def audit_log(request: Request) -> Response:
        ctx = await console.page(request, "audit.view")
        action = request.query_params.get("action") or None
        actor = request.query_params.get("actor") or None
        rows = guard.audit.recent(limit=1000, action=action)
        if actor:
            rows = [r for r in rows if actor in r["actor"]]
        guard.audit.record(ctx.actor, "audit.view", "audit_log", {"action": action, "actor": actor})
        return console.render(ctx, "audit.html", rows=rows[:300], action=action or "", actor=actor or "")
