"""Trace, freeze, return: follow victims' money through mule accounts, freeze what remains, return it
fairly; and score accounts as mules. See docs/tracing.md."""

from riskguard.tracing.ledger import Ledger
from riskguard.tracing.reports import ReportIn
from riskguard.tracing.rules import RULES
from riskguard.tracing.sources import (
    ledger_from_events,
    ledger_from_store,
    ledger_from_world,
    reports_from_file,
    reports_from_world,
)
from riskguard.tracing.tracer import Outcome, Tracer

__all__ = [
    "RULES",
    "Ledger",
    "Outcome",
    "ReportIn",
    "Tracer",
    "ledger_from_events",
    "ledger_from_store",
    "ledger_from_world",
    "reports_from_file",
    "reports_from_world",
]
