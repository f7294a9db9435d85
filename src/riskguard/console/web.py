"""The console's plumbing: sessions from cookies, CSRF, permissions, HTML errors, template rendering.

Pages live in ``pages_*.py``; each handler starts with ``ctx = await console.page(request, "perm")`` (or
``console.action`` for a form POST, which also checks the CSRF token) and ends with ``console.render``.
Forms are parsed here from ``application/x-www-form-urlencoded`` bodies with the standard library
(no python-multipart dependency: the console never uploads files).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from riskguard.console import i18n
from riskguard.console.refs import EntityRefs
from riskguard.console.roles import can
from riskguard.console.users import Session, UserRepository
from riskguard.errors import RiskguardError, ValidationFailed
from riskguard.masking import mask

log = logging.getLogger("riskguard.console")
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
COOKIE = "rg_console"
PRE_COOKIE = "rg_console_pre"  # CSRF token for forms shown before sign-in (the sign-in form itself)
LANG_COOKIE = "rg_console_lang"
MAX_FORM = 256 * 1024
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
# entity kinds whose values are personal data: masked unless revealed (accounts, devices and merchants are
# the platform's own identifiers and are shown as they are)
PERSONAL_KINDS = frozenset({"phone", "card", "ip", "email", "id_number", "name", "address"})


class Refused(Exception):
    """Ends a page with an HTML error: 403 (permission), 404, 400 (bad form), or a redirect to sign in."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Ctx:
    """What every page gets: the session, the translator, the request's form (POST)."""

    request: Request
    session: Session | None
    locale: str
    form: dict[str, list[str]] = field(default_factory=dict)

    @property
    def user(self) -> str:
        return self.session.username if self.session else ""

    @property
    def role(self) -> str:
        return self.session.role if self.session else ""

    @property
    def actor(self) -> str:
        return f"console:{self.user}"

    def can(self, permission: str) -> bool:
        return self.session is not None and can(self.session.role, permission)

    def value(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0].strip() if values else default

    def values(self, name: str) -> list[str]:
        return [v for v in self.form.get(name, []) if v.strip()]


class Console:
    def __init__(self, guard: Any) -> None:
        self.guard = guard
        self.settings = guard.settings
        self.users = UserRepository.for_settings(guard.engine, guard.settings)
        self.refs = EntityRefs()
        self.cases: Any = None  # the CaseService, set by mount_console
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals["mask"] = mask
        self.templates.filters["dt"] = lambda v: "" if v is None else v.strftime("%Y-%m-%d %H:%M:%S")
        self.templates.filters["pct"] = lambda v, d=2: "–" if v is None else f"{v * 100:.{d}f} %"

    # ------------------------------------------------------------------ requests
    def locale_of(self, request: Request, session: Session | None) -> str:
        if session is not None and session.locale in i18n.LOCALES:
            return session.locale  # type: ignore[return-value]
        cookie = request.cookies.get(LANG_COOKIE)
        return cookie if cookie in i18n.LOCALES else i18n.DEFAULT

    async def page(self, request: Request, permission: str | None = None) -> Ctx:
        """A signed-in page: redirects to sign-in without a session; 403 without ``permission``."""
        session = self.users.session(request.cookies.get(COOKIE))
        if session is None:
            raise Refused(303, "/console/login?next=" + request.url.path)
        ctx = Ctx(request, session, self.locale_of(request, session))
        if permission is not None and not ctx.can(permission):
            self.guard.audit.record(ctx.actor, "console.refused", request.url.path, {"permission": permission})
            raise Refused(403, permission)
        return ctx

    async def action(self, request: Request, permission: str | None = None) -> Ctx:
        """A form POST by a signed-in user: the session, then the CSRF token, then the permission."""
        ctx = await self.page(request)
        ctx.form = await self.form(request)
        assert ctx.session is not None
        if not hmac.compare_digest(ctx.value("csrf"), ctx.session.csrf):
            raise Refused(400, "csrf")
        if permission is not None and not ctx.can(permission):
            self.guard.audit.record(ctx.actor, "console.refused", request.url.path, {"permission": permission})
            raise Refused(403, permission)
        return ctx

    async def form(self, request: Request) -> dict[str, list[str]]:
        body = await request.body()
        if len(body) > MAX_FORM:
            raise Refused(400, "form too large")
        try:
            return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=2000)
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "form") from None

    # ------------------------------------------------------------------ responses
    def render(self, ctx: Ctx, template: str, code: int = 200, **values: Any) -> HTMLResponse:
        t = i18n.translator(ctx.locale)
        pre = None
        if ctx.session is None:
            pre = ctx.request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
        body = self.templates.get_template(template).render(
            t=t,
            ctx=ctx,
            csrf=ctx.session.csrf if ctx.session else pre,
            locale=ctx.locale,
            locales=i18n.LOCALES,
            path=ctx.request.url.path,
            **values,
        )
        response = HTMLResponse(body, status_code=code)
        if pre is not None and ctx.request.cookies.get(PRE_COOKIE) != pre:
            self.cookie(response, PRE_COOKIE, pre, max_age=3600)
        return response

    def cookie(self, response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/console",
            httponly=True,
            samesite="strict",
            secure=self.settings.console_secure_cookie,
        )

    def error_page(self, request: Request, status: int, message: str) -> Response:
        if status == 303:
            return RedirectResponse(message, status_code=303)
        session = self.users.session(request.cookies.get(COOKIE))
        ctx = Ctx(request, session, self.locale_of(request, session))
        return self.render(ctx, "error.html", code=status, status_code=status, message=message)

    def entity(self, kind: str, value: str, *, revealed: bool = False) -> dict[str, Any]:
        """An entity for a template: its kind, display text (masked when personal) and opaque reference."""
        personal = kind in PERSONAL_KINDS
        return {
            "kind": kind,
            "text": value if (revealed or not personal) else (mask(value) or ""),
            "personal": personal,
            "ref": self.refs.seal(kind, value),
        }


def handler(console: Console) -> Callable[[Callable[..., Awaitable[Response]]], Callable[..., Awaitable[Response]]]:
    """Turns refusals and riskguard's errors inside a page into HTML answers (never JSON, never a 500)."""

    def wrap(fn: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
        @functools.wraps(fn)
        async def run(request: Request, *args: Any, **kwargs: Any) -> Response:
            try:
                response = await fn(request, *args, **kwargs)
            except Refused as exc:
                return console.error_page(request, exc.status, exc.message)
            except ValidationFailed as exc:
                fields = ", ".join(
                    ".".join(str(p) for p in e.get("loc", [])) + ": " + str(e.get("msg", "")) for e in exc.errors
                )
                return console.error_page(request, 422, fields or str(exc))
            except RiskguardError as exc:
                return console.error_page(request, exc.status, str(exc))
            except Exception:  # a page never answers a traceback: logged, and an HTML 500 with no detail
                log.exception("console page %s failed", request.url.path)
                return console.error_page(request, 500, "internal error; it has been logged")
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return run

    return wrap


def mount_console(app: FastAPI, guard: Any) -> Console:
    """Serves the console under /console on the service's FastAPI application."""
    from riskguard.cases.service import CaseService
    from riskguard.console import pages_admin, pages_cases, pages_main, pages_strategies

    console = Console(guard)
    console.cases = getattr(app.state, "cases", None) or CaseService(guard)  # the REST routes' one, if made
    # entity references every worker (and a restarted server) can open: a key derived from the
    # installation's reference key, which the case service keeps in the database
    console.refs = EntityRefs(
        hmac.new(console.cases._ref_key(), b"riskguard console entity references", hashlib.sha256).digest()[:16]
    )
    router = APIRouter(prefix="/console", include_in_schema=False)
    for module in (pages_main, pages_admin, pages_strategies, pages_cases):
        module.register(router, console)
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.state.console = console
    return console
