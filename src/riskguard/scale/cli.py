"""The ``--workers`` part of ``riskguard serve`` (cli/main.py hands over to it first)."""

from __future__ import annotations

import json

import typer

from riskguard.config import Settings
from riskguard.logs import configure
from riskguard.scale.serve import Prepared, check_layout, describe, prepare, run_workers


def _show(prepared: Prepared, host: str, port: int) -> None:
    """The first start's notes, as the single-process serve prints them."""
    if prepared.admin_key:
        typer.echo(
            "A new installation: this admin API key is shown once; store it now.\n"
            f"  export RISKGUARD_KEY={prepared.admin_key}\n",
            err=True,
        )
    if prepared.keyring_path:
        typer.echo(
            f"A new installation: field-encryption keys generated in {prepared.keyring_path} (mode 0600); "
            "back it up with the database — without it the personal data cannot be read. Every worker and "
            "host must use the same keys (RISKGUARD_KEYRING or RISKGUARD_KEYRING_FILE).\n",
            err=True,
        )
    if prepared.console_password:
        typer.echo(
            "A new installation: console user 'admin' (shown once; change it with `riskguard users passwd admin`)\n"
            f"  sign in at http://{host}:{port}/console/ with password {prepared.console_password}\n",
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
    bind_host = host or settings.host
    bind_port = port or settings.port
    if count == 1:
        if not settings.is_sqlite:
            _show(prepare(settings), bind_host, bind_port)
        return False
    _show(prepare(settings), bind_host, bind_port)
    if not settings.auth:
        typer.echo("WARNING: RISKGUARD_AUTH=off: every request is admin. For local development only.", err=True)
    typer.echo(
        f"riskguard serving on http://{bind_host}:{bind_port} with {count} worker processes: "
        + json.dumps(describe(settings, count)),
        err=True,
    )
    run_workers(settings, host=bind_host, port=bind_port, workers=count)
    return True
