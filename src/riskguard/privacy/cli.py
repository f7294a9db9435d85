"""``riskguard keys …`` (field keys: status, rotation) and ``riskguard privacy …`` (canaries, access alerts,
throttles): an adapter — parse, call, print."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from riskguard.cli.errors import cli_errors

keys_app = typer.Typer(help="Field-encryption keys: status and rotation (docs/privacy.md).", no_args_is_help=True)
privacy_app = typer.Typer(
    help="Audited reveal: canaries, access alerts, throttles (docs/privacy.md).", no_args_is_help=True
)


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _guard() -> Any:
    from riskguard.cli.main import _guard as guard

    return guard()


@keys_app.command("status")
@cli_errors
def status() -> None:
    """The keyring's key ids (never the keys), which are active, and what still needs the active key."""
    from riskguard.privacy.rotate import Rotation

    guard = _guard()
    try:
        cipher = guard.privacy.cipher
        _print(
            {
                "keyring": str(guard.privacy.keyring_path or "RISKGUARD_KEYRING"),
                "field_encryption": guard.privacy.enabled,
                "active_key": cipher.active_key,
                "keys": sorted(cipher.keyring.keys),
                "active_token_key": cipher.active_token_key,
                "token_keys": sorted(cipher.keyring.token_keys),
                "retired": list(cipher.keyring.retired),
                "not_under_active_keys": Rotation(guard.engine, guard.privacy).remaining(),
            }
        )
    finally:
        guard.close()


@keys_app.command("rotate")
@cli_errors
def rotate(
    token_key: Annotated[
        bool, typer.Option("--token-key", help="Also a new token (HMAC) key; every token recomputed")
    ] = False,
    no_new_key: Annotated[
        bool, typer.Option("--no-new-key", help="Keep the active key: only re-encrypt what is not under it yet")
    ] = False,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="Do not retire the old keys at the end")] = False,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Rows per transaction")] = 500,
    settle: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for running servers to reload the keyring")
    ] = 5.0,
) -> None:
    """Activate a new key, re-encrypt every sealed value (and seal plaintext older versions left) in
    batches, online; retire the old keys once nothing uses them. Safe to run again after an interruption."""
    from riskguard.privacy.rotate import Rotation

    guard = _guard()
    try:
        rotation = Rotation(guard.engine, guard.privacy, batch=batch, actor="cli:keys")
        report = rotation.rotate(
            new_key=not no_new_key,
            new_token_key=token_key,
            retire=not keep_old,
            settle_s=settle,
            progress=lambda column, n: typer.echo(f"{column}: {n} rewritten", err=True),
        )
        _print(report.as_dict())
        if any(report.remaining.values()):
            typer.echo(
                "some values still need the active key: run `riskguard keys rotate --no-new-key` again", err=True
            )
            raise typer.Exit(1)
    finally:
        guard.close()


@privacy_app.command("canary")
@cli_errors
def canary(count: Annotated[int, typer.Option(min=1, max=100, help="How many canary accounts")] = 3) -> None:
    """Create canary accounts with fake identifiers; opening any of them raises an alert at once. Their
    account ids are printed once, here, and nowhere else."""
    from riskguard.privacy.canary import create_canaries

    guard = _guard()
    try:
        _print({"canary_accounts": create_canaries(guard, count, actor="cli:privacy")})
    finally:
        guard.close()


@privacy_app.command("alerts")
@cli_errors
def alerts(
    status: Annotated[str, typer.Option(help="open, closed or all")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
) -> None:
    """Alerts of anomalous access to personal data (volume, bulk, off-hours, canary)."""
    guard = _guard()
    try:
        _print(guard.privacy.revealer.alerts.list(status=None if status == "all" else status, limit=limit))
    finally:
        guard.close()


@privacy_app.command("lift")
@cli_errors
def lift(
    actor: Annotated[str, typer.Argument(help="The throttled analyst or API key (key:<id>)")],
    by: Annotated[str, typer.Option(help="Who lifts it (a lead or admin)")],
    role: Annotated[str, typer.Option(help="Their role: lead or admin")] = "admin",
) -> None:
    """Lift a reveal throttle before its cool-down ends (audited)."""
    guard = _guard()
    try:
        _print({"actor": actor, "lifted": guard.privacy.revealer.lift(actor, by=by, role=role)})
    finally:
        guard.close()
