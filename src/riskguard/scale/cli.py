"""The ``--workers`` part of ``riskguard serve`` (cli/main.py hands over to it first)."""

from __future__ import annotations

import json

import typer

from riskguard.config import Settings
from riskguard.logs import configure
from riskguard.scale.serve import check_layout, describe, prepare, run_workers


def _show_key(token: str | None) -> None:
    if token:
        typer.echo(
            f"A new installation: this admin API key is shown once; store it now.\n  export RISKGUARD_KEY={token}\n",
            err=True,
        )


def serve_workers(host: str | None, port: int | None, workers: int | None) -> bool:
    """Serves with several worker processes and returns True once they have stopped; returns False for
    one worker, which cli/main.py serves in this process as before. On PostgreSQL the installation is
    prepared under the start-up lock first in both cases, so hosts started together never race."""
    settings = Settings.from_env()
    configure(settings.log_level, json_lines=settings.log_json)
    count = workers if workers is not None else settings.workers
    check_layout(settings, count)
    if count == 1:
        if not settings.is_sqlite:
            _show_key(prepare(settings))
        return False
    _show_key(prepare(settings))
    bind_host = host or settings.host
    bind_port = port or settings.port
    if not settings.auth:
        typer.echo("WARNING: RISKGUARD_AUTH=off: every request is admin. For local development only.", err=True)
    typer.echo(
        f"riskguard serving on http://{bind_host}:{bind_port} with {count} worker processes: "
        + json.dumps(describe(settings, count)),
        err=True,
    )
    run_workers(settings, host=bind_host, port=bind_port, workers=count)
    return True
