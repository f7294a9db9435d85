"""HTTP: ``GET /v1/retro/{event_id}`` — the retrospective of one event (replay/retro.py).

Scope ``label`` (investigators) sees identifiers masked; ``admin`` may pass ``unmask=true``, and every
unmasked view is written to the audit log. ``format=text`` returns the readable report.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from riskguard.errors import Forbidden


def router(guard: Any, auth: Any, render: Any) -> APIRouter:
    api = APIRouter(tags=["investigation"])

    @api.get(
        "/v1/retro/{event_id}",
        summary="Retrospective of an event: timeline, decisions, labels, what would have caught it",
    )
    async def retro(
        request: Request,
        event_id: str,
        days: float = Query(7.0, gt=0, le=90),
        unmask: bool = Query(False),
        format: str = Query("json", pattern="^(json|text)$"),
    ) -> Any:
        from riskguard.replay.retro import from_database, readable

        key = auth.identify(request, "label")
        if unmask and not key.allows("admin"):
            raise Forbidden("unmasked identifiers need the 'admin' scope")
        document = from_database(guard, event_id, days=days, unmask=unmask, actor=f"key:{key.key_id}")
        if format == "text":
            return PlainTextResponse(readable(document))
        return render(document)

    return api
