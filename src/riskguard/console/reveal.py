"""The console's reveal of one masked value, through the privacy package's ``Revealer`` (``guard.privacy``):
permission, audit entry, anomaly throttling and canaries live there, shared with the API.

A RiskGuard built without the privacy service (``guard.privacy`` absent) still refuses roles without
``pii.reveal`` and writes the audit entry here, so no reveal is ever unaudited.
"""

from __future__ import annotations

from typing import Any

from riskguard.console.roles import can
from riskguard.errors import Forbidden


def revealer_for(guard: Any) -> Any | None:
    privacy = getattr(guard, "privacy", None)
    return getattr(privacy, "revealer", None)


def reveal_value(guard: Any, ctx: Any, kind: str, value: str, *, purpose: str, target: str) -> str:
    """The plaintext of ``value`` for the signed-in user, or Forbidden / Throttled (an error answer)."""
    revealer = revealer_for(guard)
    if revealer is not None:
        return str(revealer.reveal(ctx.actor, ctx.role, kind, value, purpose=purpose, target=target))
    if not can(ctx.role, "pii.reveal"):
        guard.audit.record(ctx.actor, "pii.reveal.refused", target, {"kind": kind, "purpose": purpose})
        raise Forbidden(f"the role {ctx.role!r} may not reveal personal data")
    guard.audit.record(ctx.actor, "pii.reveal", target, {"kind": kind, "purpose": purpose, "role": ctx.role})
    return value
