"""One way every command reports riskguard's own errors: a one-line message and exit status 2, never a
traceback. Sub-apps of other packages import it from here (importing cli/main.py would be circular)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from riskguard.errors import RiskguardError


def cli_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RiskguardError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper
