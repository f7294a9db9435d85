"""HTTP routes of account security (an adapter: parse, authenticate, call, render).

- ``GET /v1/breach/range/{prefix}`` (scope ``decide``): every ``SUFFIX:COUNT`` of the breached-password
  corpus under a 5-hex-digit SHA-1 prefix (case-insensitive), one per line, as text. ``Add-Padding: true``
  (or ``?pad=true``) pads the answer with count-0 lines to ``RISKGUARD_BREACH_PADDING_LINES``.
- ``GET /v1/leaks`` (scope ``label``): registered leaks; ``GET /v1/leaks/alerts`` (``label``): the
  per-leak outreach alerts (``after_id`` pages, as ``/v1/graph/alerts``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from riskguard.accountsec.breach import check_prefix, render_range


def router(guard: Any, auth: Any, render: Callable[..., Response]) -> APIRouter:
    routes = APIRouter(tags=["account security"])
    service = guard.accountsec
    pad_to = guard.settings.breach_padding_lines

    @routes.get(
        "/v1/breach/range/{prefix}",
        summary="Breached-password hash suffixes and counts under a SHA-1 prefix (k-anonymity range query)",
        response_class=PlainTextResponse,
    )
    async def breach_range(request: Request, prefix: str, pad: bool = Query(False)) -> Response:
        auth.identify(request, "decide")
        checked = check_prefix(prefix)
        padded = pad or request.headers.get("add-padding", "").lower() == "true"
        corpus = service.corpus
        body = render_range(corpus.range(checked), pad=True, pad_to=pad_to) if padded else corpus.range_text(checked)
        return PlainTextResponse(body, headers={"Cache-Control": "private, max-age=300"})

    @routes.get("/v1/leaks", summary="Registered leaks of personal data (tokens only; no raw values exist)")
    async def list_leaks(request: Request) -> Response:
        auth.identify(request, "label")
        return render({"leaks": service.leaks.list()})

    @routes.get("/v1/leaks/alerts", summary="One outreach alert per registered leak, with the affected accounts")
    async def leak_alerts(
        request: Request, status: str = Query("open"), after_id: int = Query(0), limit: int = Query(100, le=500)
    ) -> Response:
        auth.identify(request, "label")
        return render({"alerts": service.leaks.alerts.list(status=status, after_id=after_id, limit=limit)})

    return routes
