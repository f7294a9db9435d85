"""``riskguard devices``: the registered device keys (an adapter: parse, call, print).

Account and device ids are printed masked; ``--unmask`` shows them and writes who looked, and at what, to
the audit log (``device.view``) first. ``revoke`` is audited too (``device.revoke``, with the reason).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

import typer

app = typer.Typer(help="Registered device keys: list, show (with trust), revoke.", no_args_is_help=True)

#: the columns of ``list`` (``show`` prints every field)
LISTED = ("key_id", "device_id", "account_id", "provider", "attested", "security_level", "status", "counter")


class Status(StrEnum):
    active = "active"
    ended = "ended"
    revoked = "revoked"


Unmask = Annotated[bool, typer.Option("--unmask", help="Show account and device ids (written to the audit log)")]


def _errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """cli/main.py's ``_errors``: riskguard's errors as one line and exit status 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from riskguard.cli.main import _errors as shared

        return shared(command)(*args, **kwargs)

    return wrapper


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@app.command("list")
@_errors
def list_keys(
    account: Annotated[str | None, typer.Option(help="Only this account's keys")] = None,
    status: Annotated[Status | None, typer.Option(help="Only keys in this status (default: any)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 100,
    unmask: Unmask = False,
) -> None:
    """List registered keys, newest first: key id, device, account, provider, attestation, status, counter."""
    from riskguard.cli.main import ACTOR, _guard

    guard = _guard()
    try:
        chosen = status.value if status is not None else None
        keys = guard.devices.keys(account_id=account, status=chosen, limit=limit, unmask=unmask, actor=ACTOR)
    finally:
        guard.close()
    for key in keys:
        typer.echo(json.dumps({name: key[name] for name in LISTED}, ensure_ascii=False, default=str))
    typer.echo(f"{len(keys)} key(s)" + ("" if unmask else "; ids masked (--unmask shows them, audited)"), err=True)


@app.command("show")
@_errors
def show(
    ident: Annotated[str, typer.Argument(metavar="KEY_OR_DEVICE", help="A key id, or a device id")],
    account: Annotated[str | None, typer.Option(help="Also assess this account's trust in the device")] = None,
    unmask: Unmask = False,
) -> None:
    """Every binding of a key or a device, with the trust of an account on it (``--account``)."""
    from riskguard.cli.main import ACTOR, _guard

    guard = _guard()
    try:
        service = guard.devices
        record = service.registry.current(ident)
        device_id = record.device_id if record is not None else ident
        found = service.get(device_id, account_id=account, unmask=unmask, actor=ACTOR)
    finally:
        guard.close()
    if record is not None:
        found["keys"] = [k for k in found["keys"] if k["key_id"] == ident]
    if not unmask:
        from riskguard.masking import mask

        found["device_id"] = mask(found["device_id"])
        for key in found["keys"]:
            key["device_id"] = found["device_id"]
    _print(found)


@app.command("revoke")
@_errors
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (from `riskguard devices list`)")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log)")] = "",
) -> None:
    """Revoke a key: its signatures fail with KEY_REVOKED on every worker within a poll (audited)."""
    from riskguard.cli.main import ACTOR, _guard

    guard = _guard()
    try:
        key = guard.devices.revoke(key_id, actor=ACTOR, reason=reason)
    finally:
        guard.close()
    typer.echo(f"key {key['key_id']}: {key['status']}")
