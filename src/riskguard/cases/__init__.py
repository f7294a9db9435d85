"""Investigations: a unified alert inbox (review decisions, graph rings and dense blocks, complaint rings,
fund traces, manual alerts) with duplicates merged; cases with status, assignment, notes, SLA clocks and
labels; actions (lists, freeze requests, traces); case views; evidence packages with a SHA-256 manifest.

``CaseService(guard)`` (service.py) is the interface the REST routes (http.py), the CLI (cli.py) and the
console call. docs/cases.md describes it for investigators and for the console. Imported lazily, so that
settings validation (which parses ``RISKGUARD_CASE_SLA`` with ``priority.py``) stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CaseService"]


def __getattr__(name: str) -> Any:
    if name == "CaseService":
        from riskguard.cases.service import CaseService

        return CaseService
    raise AttributeError(name)
