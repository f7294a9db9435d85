"""One decision worker process of ``riskguard serve --workers N`` (uvicorn imports this factory in each).

The parent has already prepared the installation (scale/serve.py), so a worker only builds its own
RiskGuard from the ``RISKGUARD_*`` environment and serves. Closing it — final writer flush, listener
threads — happens on the ASGI lifespan shutdown that uvicorn sends each worker when it is told to stop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from riskguard.api.http import create_asgi
from riskguard.app import RiskGuard
from riskguard.config import Settings
from riskguard.logs import configure
from riskguard.runtime import tune_gc


class WorkerApp:
    """The service's ASGI application plus the worker's shutdown: closes the RiskGuard once the inner
    application has finished its own lifespan shutdown."""

    def __init__(self, guard: RiskGuard) -> None:
        self.guard = guard
        self.inner = create_asgi(guard)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.inner(scope, receive, send)
            return

        async def on_send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await asyncio.get_running_loop().run_in_executor(None, self.guard.close)
            await send(message)

        await self.inner(scope, receive, on_send)


def create_worker_app() -> WorkerApp:
    settings = Settings.from_env()
    configure(settings.log_level, json_lines=settings.log_json)
    guard = RiskGuard(settings, background=True, warm_features=True)
    tune_gc()
    return WorkerApp(guard)
