"""The one exception of this package: a refusal that carries its reason code."""

from __future__ import annotations

from riskguard.device import codes
from riskguard.errors import RiskguardError


class DeviceRefused(RiskguardError):
    """A registration, challenge or lookup refused for a stated reason (HTTP body ``error`` = the code)."""

    status = 422

    def __init__(self, code: str, detail: str | None = None, *, status: int | None = None) -> None:
        self.code = code
        if status is not None:
            self.status = status
        text = codes.message(code)
        super().__init__(f"{code}: {text}" + (f" ({detail})" if detail else ""))
