"""Typed exceptions; the HTTP adapter (api/http.py) maps each to its status code in one handler."""

from __future__ import annotations

from typing import Any


class RiskguardError(Exception):
    """Base class of every error riskguard raises on purpose."""

    status = 500
    code = "internal_error"


class ConfigError(RiskguardError):
    code = "config_error"


class ValidationFailed(RiskguardError):
    """Input that does not fit the schema; ``errors`` lists ``{loc, msg, type}`` items."""

    status = 422
    code = "validation_error"

    def __init__(self, errors: list[dict[str, Any]]):
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


class StrategyError(RiskguardError):
    """A strategy document that cannot be loaded: the message says where and why."""

    status = 422
    code = "strategy_error"


class NotFound(RiskguardError):
    status = 404
    code = "not_found"


class Conflict(RiskguardError):
    status = 409
    code = "conflict"


class Unauthorized(RiskguardError):
    status = 401
    code = "unauthorized"


class Forbidden(RiskguardError):
    status = 403
    code = "forbidden"


class Unavailable(RiskguardError):
    """The decision could not be made durable in time; the client should retry with the same event_id."""

    status = 503
    code = "unavailable"
