"""The pipeline stage: verifies a decision's device signature and binds ``device.*`` for rules.

It runs after ``features`` and ``lists`` and before ``rules``. Every event gets every variable below (an
event with no device and no signature is simply unregistered and unsigned), so rules never meet an
unbound ``device.*`` name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riskguard.decision.stages import Context
from riskguard.device.variables import DECLARATIONS

__all__ = ["DECLARATIONS", "DeviceStage"]

if TYPE_CHECKING:
    from riskguard.device.service import DeviceService


class DeviceStage:
    name = "device"

    def __init__(self, service: DeviceService) -> None:
        self.service = service

    def run(self, ctx: Context) -> None:
        ctx.extra.update(self.service.evaluate(ctx.event, observe=ctx.observe))
