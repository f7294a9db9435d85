"""Console roles and what each may do: the shared vocabulary of permissions (docs/console.md).

Every console route asks ``can(role, permission)`` on the server before it shows or changes anything;
the privacy helper's Revealer asks ``can(role, "pii.reveal")``. Buttons a role may not use are hidden too,
but hiding is a courtesy: the check that counts is the server's.
"""

from __future__ import annotations

ROLES = ("analyst", "lead", "admin", "auditor")

# every permission, with what it allows (shown on the users page and in docs/console.md)
PERMISSIONS: dict[str, str] = {
    "dashboard.view": "see the dashboard",
    "queue.view": "see the alert queue",
    "case.view": "open cases (personal data masked)",
    "entity.view": "open entity views (personal data masked)",
    "case.work": "work a case: notes, list additions, freeze requests, traces, labels, close",
    "case.assign": "assign alerts and cases to analysts, in bulk",
    "case.reopen": "reopen a closed case",
    "evidence.export": "export a case's evidence package",
    "pii.reveal": "reveal unmasked personal data (audited)",
    "strategy.view": "see strategy versions and diffs",
    "strategy.publish": "publish a strategy version or roll back",
    "list.view": "see block, allow and watch lists",
    "list.manage": "add and remove list entries outside a case",
    "replay.view": "read replay reports",
    "audit.view": "read the audit log",
    "users.manage": "add, disable and change console users",
}

_READ = {
    "dashboard.view",
    "queue.view",
    "case.view",
    "entity.view",
    "strategy.view",
    "list.view",
    "replay.view",
}
_ANALYST = _READ | {"case.work", "evidence.export", "pii.reveal"}
_LEAD = _ANALYST | {"case.assign", "case.reopen", "strategy.publish", "list.manage", "audit.view"}

GRANTS: dict[str, frozenset[str]] = {
    "analyst": frozenset(_ANALYST),
    "lead": frozenset(_LEAD),
    "admin": frozenset(PERMISSIONS),
    "auditor": frozenset(_READ | {"audit.view"}),  # read-only everything; may not reveal, may not act
}


def can(role: str | None, permission: str) -> bool:
    """Whether ``role`` holds ``permission``. An unknown permission is a programming error (KeyError),
    so that a typo cannot silently refuse (or grant) everything; an unknown role holds nothing."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown console permission {permission!r}")
    return permission in GRANTS.get(role or "", frozenset())


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    return role
