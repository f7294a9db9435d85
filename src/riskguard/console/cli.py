"""``riskguard users add|list|disable|enable|passwd|role``: console users from the command line."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from riskguard.cli.errors import cli_errors
from riskguard.console.roles import ROLES
from riskguard.console.users import UserRepository, new_password

app = typer.Typer(help="Console users: add, list, disable, enable, set passwords and roles.", no_args_is_help=True)


@contextmanager
def _users() -> Iterator[UserRepository]:
    """The console users of the configured installation; the guard is closed on the way out."""
    from riskguard.cli.main import _guard

    guard = _guard()
    try:
        yield UserRepository.for_settings(guard.engine, guard.settings)
    finally:
        guard.close()


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _password(prompt: bool) -> tuple[str, bool]:
    """A password typed twice (``--prompt``) or a random one to print once."""
    if not prompt:
        return new_password(), True
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        typer.echo("error: the two passwords differ", err=True)
        raise typer.Exit(2)
    return first, False


@app.command("add")
@cli_errors
def add(
    username: Annotated[str, typer.Argument(help="lower-case letters, digits, '_', '.', '-'")],
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}")] = "analyst",
    prompt: Annotated[bool, typer.Option("--prompt", help="Type the password instead of a random one")] = False,
) -> None:
    """Add a console user (a random password is printed once unless --prompt)."""
    if role not in ROLES:
        typer.echo(f"error: --role must be one of {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    password, generated = _password(prompt)
    with _users() as users:
        users.add(username, role, password, actor=_actor())
    typer.echo(f"console user {username} ({role}) added")
    if generated:
        typer.echo(f"  password (shown once): {password}")


@app.command("list")
@cli_errors
def list_users() -> None:
    """List console users, their roles and states."""
    with _users() as users:
        rows = users.all()
    for row in rows:
        state = "disabled" if row["disabled"] else "active"
        if row["locked_until"] is not None:
            state += f", locked until {row['locked_until']:%Y-%m-%d %H:%M} UTC"
        last = f"{row['last_login_at']:%Y-%m-%d %H:%M}" if row["last_login_at"] else "never"
        typer.echo(f"{row['username']:<20} {row['role']:<8} {state:<12} last sign-in {last}")


@app.command("disable")
@cli_errors
def disable(username: Annotated[str, typer.Argument()]) -> None:
    """Disable a user; their sessions end at once."""
    with _users() as users:
        users.set_disabled(username, True, actor=_actor())
    typer.echo(f"console user {username} disabled")


@app.command("enable")
@cli_errors
def enable(username: Annotated[str, typer.Argument()]) -> None:
    """Enable a disabled user again."""
    with _users() as users:
        users.set_disabled(username, False, actor=_actor())
    typer.echo(f"console user {username} enabled")


@app.command("passwd")
@cli_errors
def passwd(
    username: Annotated[str, typer.Argument()],
    prompt: Annotated[bool, typer.Option("--prompt", help="Type the password instead of a random one")] = False,
) -> None:
    """Set a new password (random, printed once, unless --prompt); clears a lockout, ends sessions."""
    password, generated = _password(prompt)
    with _users() as users:
        users.set_password(username, password, actor=_actor())
    typer.echo(f"console user {username}: password changed")
    if generated:
        typer.echo(f"  password (shown once): {password}")


@app.command("role")
@cli_errors
def role(username: Annotated[str, typer.Argument()], new_role: Annotated[str, typer.Argument(metavar="ROLE")]) -> None:
    """Change a user's role (their sessions end)."""
    if new_role not in ROLES:
        typer.echo(f"error: ROLE must be one of {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    with _users() as users:
        users.set_role(username, new_role, actor=_actor())
    typer.echo(f"console user {username} is now {new_role}")
