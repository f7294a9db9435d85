"""HTTP: ``GET /v1/graph/entity/{kind}/{id}?hops=2`` (neighbourhood) and ``GET /v1/graph/alerts``.

The graph is the one ``riskguard graph refresh`` saved in ``RISKGUARD_GRAPH_DIR`` (default ``var/graph``),
reloaded when a refresh replaces it. Scopes: ``label`` (investigators) sees identifiers masked; ``admin``
may pass ``unmask=true``, and every unmasked view is written to the audit log.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request

from riskguard.errors import Forbidden, NotFound
from riskguard.graph.alerts import GraphAlertRepository
from riskguard.graph.build import EntityGraph, load
from riskguard.graph.neighbourhood import neighbourhood


def graph_dir() -> Path:
    return Path(os.environ.get("RISKGUARD_GRAPH_DIR", "var/graph"))


class GraphCache:
    """The saved graph, loaded once and again whenever its files change."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._stamp: float | None = None
        self._graph: EntityGraph | None = None

    def get(self) -> EntityGraph:
        meta = self.directory / "graph.json"
        if not meta.exists():
            raise NotFound("no graph has been built yet; run `riskguard graph refresh`")
        stamp = meta.stat().st_mtime
        with self._lock:
            if self._graph is None or stamp != self._stamp:
                self._graph, self._stamp = load(self.directory), stamp
            return self._graph


def router(guard: Any, auth: Any, render: Any, directory: Path | None = None) -> APIRouter:
    api = APIRouter(tags=["graph"])
    cache = GraphCache(directory or graph_dir())
    alerts = GraphAlertRepository(guard.engine)

    @api.get("/v1/graph/entity/{kind}/{entity_id}", summary="An entity's neighbourhood (masked unless admin)")
    async def entity(
        request: Request,
        kind: str,
        entity_id: str,
        hops: int = Query(2),
        offset: int = Query(0),
        limit: int = Query(100),
        unmask: bool = Query(False),
    ) -> Any:
        key = auth.identify(request, "label")
        if unmask and not key.allows("admin"):
            raise Forbidden("unmasked identifiers need the 'admin' scope")
        result = neighbourhood(cache.get(), kind, entity_id, hops=hops, offset=offset, limit=limit, unmask=unmask)
        if unmask:
            guard.audit.record(
                f"key:{key.key_id}", "graph.unmasked_view", f"{kind}:{entity_id}", {"hops": hops, "offset": offset}
            )
        return render(result)

    @api.get("/v1/graph/alerts", summary="Rings and dense blocks found by graph refreshes")
    async def list_alerts(
        request: Request, status: str = Query("open"), after_id: int = Query(0), limit: int = Query(100, le=500)
    ) -> Any:
        auth.identify(request, "label")
        return render({"alerts": alerts.list(status=status, after_id=after_id, limit=limit)})

    return api
