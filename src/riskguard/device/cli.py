"""``riskguard devices``: the registered device keys (an adapter: parse, call, print).

Account and device ids are printed masked; ``--unmask`` shows them and writes who looked, and at what, to
the audit log (``device.view``) first. ``revoke`` is audited too (``device.revoke``, with the reason).
"""

from __future__ import annotations

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


def _with_guard(action: Callable[[Any], Any]) -> Any:
    """``action(guard)`` on a RiskGuard of the configured database, through cli/main.py's ``_errors`` (a
    riskguard error is one line and exit status 2); imported when run, as cli/main.py imports this module."""
    from riskguard.cli.main import _errors, _guard

    def run() -> Any:
        guard = _guard()
        try:
            return action(guard)
        finally:
            guard.close()

    return _errors(run)()


@app.command("list")
def list_keys(
    account: Annotated[str | None, typer.Option(help="Only this account's keys")] = None,
    status: Annotated[Status | None, typer.Option(help="Only keys in this status (default: any)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 100,
    unmask: Unmask = False,
) -> None:
    """List registered keys, newest first: key id, device, account, provider, attestation, status, counter."""
    from riskguard.cli.main import ACTOR

    chosen = status.value if status is not None else None
    keys = _with_guard(
        lambda guard: guard.devices.keys(account_id=account, status=chosen, limit=limit, unmask=unmask, actor=ACTOR)
    )
    for key in keys:
        typer.echo(json.dumps({name: key[name] for name in LISTED}, ensure_ascii=False, default=str))
    typer.echo(f"{len(keys)} key(s)" + ("" if unmask else "; ids masked (--unmask shows them, audited)"), err=True)


@app.command("show")
def show(
    ident: Annotated[
        str, typer.Argument(metavar="KEY_OR_DEVICE", help="A key id or a device id (one starting with - after --)")
    ],
    account: Annotated[str | None, typer.Option(help="Also assess this account's trust in the device")] = None,
    unmask: Unmask = False,
) -> None:
    """Every binding of a key or a device, with the trust of an account on it (``--account``)."""
    from riskguard.cli.main import ACTOR
    from riskguard.masking import mask

    def look(guard: Any) -> dict[str, Any]:
        record = guard.devices.registry.current(ident)
        device_id = record.device_id if record is not None else ident
        found: dict[str, Any] = guard.devices.get(device_id, account_id=account, unmask=unmask, actor=ACTOR)
        if record is not None:
            found["keys"] = [k for k in found["keys"] if k["key_id"] == ident]
        return found

    found = _with_guard(look)
    if not unmask:
        found["device_id"] = mask(found["device_id"])
        for key in found["keys"]:
            key["device_id"] = found["device_id"]
    typer.echo(json.dumps(found, indent=2, ensure_ascii=False, default=str))


@app.command("revoke")
def revoke(
    key_id: Annotated[
        str, typer.Argument(help="The key id from `riskguard devices list` (one starting with - after --)")
    ],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log)")] = "",
) -> None:
    """Revoke a key: its signatures fail with KEY_REVOKED on every worker within a poll (audited)."""
    from riskguard.cli.main import ACTOR

    key = _with_guard(lambda guard: guard.devices.revoke(key_id, actor=ACTOR, reason=reason))
    typer.echo(f"key {key['key_id']}: {key['status']}")
