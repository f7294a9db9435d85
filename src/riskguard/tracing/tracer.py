"""The tracing capability's front door: trace reports through a ledger, then freeze, plan returns, alert.

``Tracer`` takes its configuration in the constructor (no work there) and ``run`` does one trace::

    from riskguard.tracing import Tracer, ledger_from_world, reports_from_world
    ledger = ledger_from_world(Path("worlds/s7"))
    reports, _ = reports_from_world(Path("worlds/s7"))
    outcome = Tracer(rule="libr", max_hops=6).run(ledger, reports)
    outcome.document["summary"], outcome.document["freeze_orders"][0]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

import polars as pl

from riskguard.errors import ValidationFailed
from riskguard.tracing import document as doc
from riskguard.tracing.alerts import PoisonReach, poison_reach
from riskguard.tracing.engine import Trace, TraceParams, run
from riskguard.tracing.freeze import FreezeOrder, freeze_orders
from riskguard.tracing.ledger import Ledger
from riskguard.tracing.money import AmountError, to_minor
from riskguard.tracing.reports import ReportIn, Victim, ms_of, resolve
from riskguard.tracing.returns import Claim, ReturnPlan, plan_returns
from riskguard.tracing.rules import DEFAULT_RULE


@dataclass
class Outcome:
    trace: Trace
    orders: list[FreezeOrder]
    plan: ReturnPlan
    reach: PoisonReach | None
    seconds: float

    @cached_property
    def document(self) -> dict[str, Any]:
        built = doc.build(self.trace, self.orders, self.plan, self.reach)
        built["summary"]["seconds"] = round(self.seconds, 4)
        return built


class Tracer:
    """Trace, freeze, return. Every parameter is documented in docs/tracing.md."""

    def __init__(
        self,
        rule: str = DEFAULT_RULE,
        *,
        max_hops: int = 6,
        min_amount: Decimal | str | int = Decimal("10.00"),
        rising_tide: bool = False,
        alerts: bool = True,
        max_alerts: int = 1_000,
        moving_minutes: int = 60,
    ) -> None:
        self.rule = rule
        self.max_hops = max_hops
        self.min_amount = min_amount
        self.rising_tide = rising_tide
        self.alerts = alerts
        self.max_alerts = max_alerts
        self.moving_minutes = moving_minutes

    def params(self, as_of_ms: int | None) -> TraceParams:
        try:
            minimum = to_minor(self.min_amount)
        except AmountError as exc:
            raise ValidationFailed([{"loc": ["body", "min_amount"], "type": "value_error", "msg": str(exc)}]) from None
        params = TraceParams(rule=self.rule, max_hops=self.max_hops, min_amount=minimum, as_of_ms=as_of_ms)
        params.check()
        return params

    def run(
        self,
        ledger: Ledger,
        reports: list[ReportIn] | list[Victim],
        *,
        as_of: datetime | int | None = None,
        current_balances: dict[str, int] | None = None,
    ) -> Outcome:
        """``reports`` (or already resolved victims); ``as_of`` (a time, or milliseconds since the epoch)
        defaults to the latest report time;
        ``current_balances`` (minor units by account) override the ledger's balance for freezing."""
        started = time.perf_counter()
        params = self.params(as_of if as_of is None or isinstance(as_of, int) else ms_of(as_of))
        victims = reports if reports and isinstance(reports[0], Victim) else resolve(ledger, reports)  # type: ignore[arg-type]
        if not victims:
            raise ValidationFailed([{"loc": ["body", "reports"], "type": "value_error", "msg": "no reports"}])
        trace = run(ledger, victims, params)  # type: ignore[arg-type]
        balances = None
        if current_balances:
            codes = ledger.codes_of(pl.Series(list(current_balances), dtype=pl.String)).tolist()
            balances = {c: amount for c, amount in zip(codes, current_balances.values(), strict=True) if c >= 0}
        orders = freeze_orders(trace, current_balances=balances, moving_minutes=self.moving_minutes)
        plan = plan_returns(
            [(o.account, o.freezable, o.by_victim) for o in orders],
            [Claim(v.index, v.loss, v.recovered) for v in trace.victims],
            rising_tide=self.rising_tide,
        )
        reach = poison_reach(trace, self.max_alerts) if self.alerts else None
        return Outcome(trace, orders, plan, reach, time.perf_counter() - started)
