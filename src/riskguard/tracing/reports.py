"""Victim reports: what a victim says happened, and the ledger rows (the fraudulent transfers) it names.

A report names the victim's account, the reported loss, when it was reported, and the fraudulent
transfers, either by event id or by an amount and a time window:

- ``event_ids``: each must be a transfer, payment or withdrawal in the ledger paid by the victim's account,
  before the report (a payment, a withdrawal or a transfer off the platform has escaped at once: an
  account taken over and drained to the attacker's card, say);
- ``window`` (``start``, ``end``), optionally with ``payees``: if exactly one transfer the victim's account
  made in the window (to one of the payees, when given) has the reported amount, that transfer; otherwise
  every transfer it made in the window (to those payees) is taken as fraudulent.

The traced amount never exceeds the reported loss: when the transfers add up to more, each is traced in
proportion so that together they carry exactly the reported loss (largest remainder, to the cent); when
they add up to less, they are traced in full and the report says so in ``notes``. ``recovered`` is what
the victim already got back elsewhere (used by the rising-tide return plan).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
import numpy as np
import polars as pl

from riskguard.errors import ValidationFailed
from riskguard.tracing.ledger import CREDIT, Ledger
from riskguard.tracing.money import AmountError, money, split, to_minor

Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]


class Window(msgspec.Struct, forbid_unknown_fields=True):
    start: Instant
    end: Instant


class ReportIn(msgspec.Struct, forbid_unknown_fields=True):
    """One victim report as the API, the CLI and report files take it."""

    victim_account: Identifier
    loss: Decimal
    reported_at: Instant
    report_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    event_ids: Annotated[list[Identifier], msgspec.Meta(min_length=1, max_length=1000)] | None = None
    window: Window | None = None
    payees: Annotated[list[Identifier], msgspec.Meta(max_length=1000)] | None = None
    recovered: Decimal = Decimal(0)


@dataclass
class Victim:
    """A resolved report: the victim's claim and the ledger rows its money left by."""

    index: int
    report_id: str
    account: str
    loss: int  # minor units
    recovered: int
    reported_ms: int
    seeds: list[tuple[int, int]]  # (row, amount traced from that row)
    notes: list[str] = field(default_factory=list)

    @property
    def traced(self) -> int:
        return sum(amount for _, amount in self.seeds)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_of(instant: datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding)."""
    return (instant - EPOCH) // timedelta(milliseconds=1)


def resolve(ledger: Ledger, reports: list[ReportIn], *, loc: tuple[Any, ...] = ("body", "reports")) -> list[Victim]:
    """Matches every report to ledger rows; raises one ``ValidationFailed`` listing every problem."""
    errors: list[dict[str, Any]] = []
    victims: list[Victim] = []
    claimed: dict[int, str] = {}
    seen_ids: set[str] = set()

    def fail(index: int, where: str | tuple[str, int], message: str) -> None:
        path = list(where) if isinstance(where, tuple) else [where]
        errors.append({"loc": [*loc, index, *path], "type": "value_error", "msg": message})

    victim_codes = ledger.codes_of(pl.Series([r.victim_account for r in reports], dtype=pl.String)).tolist()
    wanted_ids = [e for r in reports for e in (r.event_ids or [])]
    found_rows = dict(zip(wanted_ids, ledger.rows_of(wanted_ids), strict=True))
    for index, report in enumerate(reports):
        report_id = report.report_id or f"r{index + 1}"
        if report_id in seen_ids:
            fail(index, "report_id", f"{report_id!r} is used by another report")
        seen_ids.add(report_id)
        try:
            loss = to_minor(report.loss)
            recovered = to_minor(report.recovered)
        except AmountError as exc:
            fail(index, "loss", str(exc))
            continue
        if loss <= 0:
            fail(index, "loss", "the reported loss must be positive")
            continue
        if recovered > loss:
            fail(index, "recovered", "cannot exceed the reported loss")
        if (report.event_ids is None) == (report.window is None):
            fail(index, "event_ids", "give either event_ids or a window (start, end), not both and not neither")
            continue
        reported_ms = ms_of(report.reported_at)
        victim_code = victim_codes[index]
        rows: list[int] = []
        if report.event_ids is not None:
            for position, (event_id, row) in enumerate(
                zip(report.event_ids, [found_rows[e] for e in report.event_ids], strict=True)
            ):
                where = ("event_ids", position)
                if row < 0:
                    fail(index, where, f"no event {event_id!r} in the ledger")
                elif ledger.kind[row] == CREDIT:
                    fail(index, where, f"event {event_id!r} is not a payment, transfer or withdrawal")
                elif int(ledger.payer[row]) != victim_code:
                    fail(index, where, f"event {event_id!r} was not paid by the victim's account")
                elif int(ledger.ts[row]) > reported_ms:
                    fail(index, where, f"event {event_id!r} happened after the report")
                else:
                    rows.append(row)
        else:
            assert report.window is not None
            start, end = ms_of(report.window.start), min(ms_of(report.window.end), reported_ms)
            if start > end:
                fail(index, "window", "the window must start before it ends and before the report")
                continue
            rows = _in_window(ledger, victim_code, start, end, report.payees)
            if not rows:
                fail(index, "window", "the victim's account made no transfer in the window (to the payees given)")
                continue
            exact = [row for row in rows if int(ledger.amount[row]) == loss]
            if len(exact) == 1:  # one transfer of exactly the reported amount: that one
                rows = exact
        for row in rows:
            if row in claimed:
                fail(index, "event_ids", f"event {ledger.event_id[row]!r} is also named by report {claimed[row]!r}")
            claimed[row] = report_id
        if not rows:
            continue
        amounts = {row: int(ledger.amount[row]) for row in dict.fromkeys(rows)}
        total = sum(amounts.values())
        notes = []
        if total > loss:
            amounts = split(loss, amounts)
            notes.append(
                f"the transfers add up to {money(total)}, more than the reported loss {money(loss)}: "
                "each is traced in proportion, to the reported loss"
            )
        elif total < loss:
            notes.append(f"the transfers add up to {money(total)}, less than the reported loss {money(loss)}")
        victims.append(
            Victim(
                index=len(victims),
                report_id=report_id,
                account=report.victim_account,
                loss=loss,
                recovered=recovered,
                reported_ms=reported_ms,
                seeds=sorted(amounts.items()),
                notes=notes,
            )
        )
    if errors:
        raise ValidationFailed(errors)
    return victims


def _in_window(ledger: Ledger, payer: int, start: int, end: int, payees: list[str] | None) -> list[int]:
    if payer < 0:
        return []
    rows, off = ledger.sent
    mine = rows[off[payer] : off[payer + 1]]
    ts = ledger.ts[mine]
    mine = mine[(ts >= start) & (ts <= end)]
    if payees is not None:
        wanted = ledger.codes_of(pl.Series(payees, dtype=pl.String))
        mine = mine[np.isin(ledger.payee[mine], wanted[wanted >= 0])]
    return [int(r) for r in mine]


def parse_reports(data: bytes | list[Any], *, loc: tuple[Any, ...] = ("body", "reports")) -> list[ReportIn]:
    """Reports from JSON bytes (a list, or an object with ``reports``) or already-decoded objects."""
    try:
        raw = msgspec.json.decode(data) if isinstance(data, bytes) else data
        if isinstance(raw, dict):
            raw = raw.get("reports")
        if not isinstance(raw, list) or not raw:
            raise ValidationFailed(
                [{"loc": list(loc), "type": "value_error", "msg": "give a non-empty list of reports"}]
            )
        return msgspec.convert(raw, list[ReportIn])
    except msgspec.ValidationError as exc:
        raise ValidationFailed([{"loc": list(loc), "type": "value_error", "msg": str(exc)}]) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed([{"loc": list(loc), "type": "json_invalid", "msg": str(exc)}]) from None
