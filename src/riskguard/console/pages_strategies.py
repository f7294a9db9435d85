"""Console strategy pages: versions, a version's document, a diff, publish and rollback with confirmation.

Publishing and rolling back go through ``RiskGuard.publish`` / ``RiskGuard.rollback`` (type-checked,
audited, picked up by every worker): the console adds only the two-step confirmation.
"""

from __future__ import annotations

import difflib
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from riskguard.console.web import Console, Refused, handler
from riskguard.errors import ValidationFailed


def _version(text: str, field: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValidationFailed([{"loc": ["query", field], "type": "int_parsing", "msg": "a version number"}]) from None


def register(router: APIRouter, console: Console) -> None:
    page = handler(console)
    guard = console.guard

    def overview() -> dict[str, object]:
        live = guard.strategies.current("live")
        shadow = guard.strategies.current("shadow")
        return {
            "versions": list(reversed(guard.strategies.versions())),
            "live": live,
            "shadow": shadow,
            "history": guard.strategies.history("live", limit=20),
        }

    @router.get("/strategies")
    @page
    async def strategies(request: Request) -> Response:
        ctx = await console.page(request, "strategy.view")
        return console.render(ctx, "strategies.html", **overview())

    @router.get("/strategies/{name}/{version}")
    @page
    async def strategy_version(request: Request, name: str, version: int) -> Response:
        ctx = await console.page(request, "strategy.view")
        row = guard.strategies.get(name, version)
        against = request.query_params.get("vs")
        diff = None
        if against:
            other = guard.strategies.get(name, _version(against, "vs"))
            diff = list(
                difflib.unified_diff(
                    other["document"].splitlines(),
                    row["document"].splitlines(),
                    f"{name} v{other['version']}",
                    f"{name} v{version}",
                    lineterm="",
                )
            )
        versions = [v["version"] for v in guard.strategies.versions(name)]
        return console.render(
            ctx,
            "strategy.html",
            row=row,
            diff=diff,
            against=against,
            versions=versions,
            live=guard.strategies.current("live"),
        )

    @router.post("/strategies/publish")
    @page
    async def publish(request: Request) -> Response:
        """Step one shows what will change and asks to confirm; step two (``confirm`` = the checksum shown)
        deploys. A stale confirmation (the document changed in between) is refused."""
        ctx = await console.action(request, "strategy.publish")
        name, version = ctx.value("name"), _version(ctx.value("version"), "version")
        row = guard.strategies.get(name, version)
        if not ctx.value("confirm"):
            live = guard.strategies.current("live")
            diff: list[str] = []
            if live is not None and live.name:
                current = guard.strategies.get(live.name, live.version)
                diff = list(
                    difflib.unified_diff(
                        current["document"].splitlines(),
                        row["document"].splitlines(),
                        f"{live.name} v{live.version} (live)",
                        f"{name} v{version}",
                        lineterm="",
                    )
                )
            return console.render(ctx, "confirm.html", what="publish", row=row, diff=diff, live=live, target=None)
        if not hmac.compare_digest(ctx.value("confirm"), row["checksum"]):
            raise Refused(409, "the version changed since it was shown; review it again")
        guard.publish(row["document"], actor=ctx.actor, note=ctx.value("note") or "published from the console")
        return RedirectResponse("/console/strategies", status_code=303)

    @router.post("/strategies/rollback")
    @page
    async def rollback(request: Request) -> Response:
        ctx = await console.action(request, "strategy.publish")
        history = guard.strategies.history("live", limit=1000)
        if not history:
            raise Refused(404, "no live strategy")
        current = history[0]
        earlier = [h for h in history[1:] if (h["name"], h["version"]) != (current["name"], current["version"])]
        if not earlier:
            raise Refused(409, "no earlier deployed version to roll back to")
        target = earlier[0]
        if ctx.value("confirm") != f"{target['name']}@{target['version']}":
            row = guard.strategies.get(target["name"], target["version"])
            now = guard.strategies.get(current["name"], current["version"])
            diff = list(
                difflib.unified_diff(
                    now["document"].splitlines(),
                    row["document"].splitlines(),
                    f"{current['name']} v{current['version']} (live)",
                    f"{target['name']} v{target['version']}",
                    lineterm="",
                )
            )
            return console.render(ctx, "confirm.html", what="rollback", row=row, diff=diff, live=None, target=target)
        guard.rollback(actor=ctx.actor, name=target["name"], version=target["version"])
        return RedirectResponse("/console/strategies", status_code=303)
