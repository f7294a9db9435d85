"""Tracing inside a running riskguard: traces over the service's own event store, stored and audited;
freeze orders applied to a list the decision engine reads; mule scores published as features.

The HTTP routes (``http.py``) and the ``riskguard trace`` commands (``cli.py``) call this and nothing else.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from sqlalchemy import select

from riskguard.errors import ValidationFailed
from riskguard.masking import mask
from riskguard.store.lists import check_list_name
from riskguard.store.tables import events as events_table
from riskguard.store.tables import utcnow
from riskguard.tracing import mules
from riskguard.tracing.money import AmountError, to_minor
from riskguard.tracing.reports import Instant, ReportIn, ms_of, resolve
from riskguard.tracing.sources import ledger_from_store
from riskguard.tracing.store import TraceRepository
from riskguard.tracing.tracer import Outcome, Tracer

if TYPE_CHECKING:
    from riskguard.app import RiskGuard

#: the list freeze orders go to by default: the starter strategy blocks every event of its accounts
FREEZE_LIST = "blocked_accounts"
#: an emergency stop-payment lasts 48 hours before it must be renewed or made a formal freeze
FREEZE_HOURS = 48


class TraceRequest(msgspec.Struct, forbid_unknown_fields=True):
    reports: Annotated[list[ReportIn], msgspec.Meta(min_length=1, max_length=10_000)]
    rule: str = "libr"
    max_hops: int = 6
    min_amount: Decimal = Decimal("10.00")
    as_of: Instant | None = None
    history_days: Annotated[int, msgspec.Meta(ge=0, le=366)] = 30
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] | None = None
    rising_tide: bool = False
    alerts: bool = True
    opening_balances: dict[str, Decimal] | None = None
    current_balances: dict[str, Decimal] | None = None


class FreezeRequest(msgspec.Struct, forbid_unknown_fields=True):
    list: str = FREEZE_LIST
    ttl_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 30)] = FREEZE_HOURS
    min_amount: Decimal = Decimal(0)


def _amounts(values: dict[str, Decimal] | None, field: str) -> dict[str, int] | None:
    if values is None:
        return None
    out = {}
    for account, value in values.items():
        try:
            out[account] = to_minor(value)
        except AmountError as exc:
            raise ValidationFailed(
                [{"loc": ["body", field, account], "type": "value_error", "msg": str(exc)}]
            ) from None
    return out


def tracer_of(request: TraceRequest) -> Tracer:
    return Tracer(
        request.rule,
        max_hops=request.max_hops,
        min_amount=request.min_amount,
        rising_tide=request.rising_tide,
        alerts=request.alerts,
    )


class TraceService:
    def __init__(self, guard: RiskGuard) -> None:
        self.guard = guard
        self.repository = TraceRepository(guard.engine)

    # ------------------------------------------------------------------ traces
    def _span(self, request: TraceRequest) -> tuple[datetime, datetime]:
        """The stored events to read: from ``history_days`` before the earliest fraudulent transfer to
        ``as_of`` (default: the latest report)."""
        until = request.as_of or max(r.reported_at for r in request.reports)
        starts = [r.window.start for r in request.reports if r.window is not None]
        ids = [e for r in request.reports for e in (r.event_ids or [])]
        if ids:
            with self.guard.engine.connect() as connection:
                for chunk in range(0, len(ids), 500):
                    query = select(events_table.c.occurred_at).where(
                        events_table.c.event_id.in_(ids[chunk : chunk + 500])
                    )
                    starts.extend(row[0] for row in connection.execute(query))
        earliest = min(starts, default=until)
        return earliest - timedelta(days=request.history_days), until

    def run(self, request: TraceRequest) -> Outcome:
        tracer = tracer_of(request)
        tracer.params(None)  # refuses a bad rule, hop limit or minimum before reading the store
        since, until = self._span(request)
        ledger = ledger_from_store(
            self.guard.engine,
            since,
            until,
            currency=request.currency,
            opening=_amounts(request.opening_balances, "opening_balances"),
        )
        return tracer.run(
            ledger,
            request.reports,
            as_of=request.as_of,
            current_balances=_amounts(request.current_balances, "current_balances"),
        )

    def create(self, request: TraceRequest, *, actor: str) -> dict[str, Any]:
        """Runs a trace over the event store, stores it, and returns its id and summary."""
        outcome = self.run(request)
        trace_id = "tr_" + uuid.uuid4().hex[:20]
        document = {"trace_id": trace_id, **outcome.document}
        self.repository.save(
            trace_id,
            actor=actor,
            rule=request.rule,
            as_of=datetime.fromisoformat(document["as_of"]),
            request=msgspec.to_builtins(request),
            document=document,
        )
        return {
            "trace_id": trace_id,
            "status": "done",
            "as_of": document["as_of"],
            "balance_basis": document["balance_basis"],
            "summary": document["summary"],
        }

    def get(self, trace_id: str, sections: list[str] | None = None) -> dict[str, Any]:
        """A stored result; ``sections`` keeps only those parts (the header and summary always come)."""
        document = self.repository.document(trace_id)
        if not sections:
            return document
        unknown = sorted(set(sections) - set(document))
        if unknown:
            raise ValidationFailed(
                [{"loc": ["query", "sections"], "type": "value_error", "msg": f"no section {unknown[0]!r}"}]
            )
        always = ("trace_id", "as_of", "rule", "max_hops", "min_amount", "currency", "balance_basis", "summary")
        return {k: v for k, v in document.items() if k in always or k in sections}

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.repository.recent(limit)

    # ------------------------------------------------------------------ freezing
    def freeze(self, trace_id: str, request: FreezeRequest, *, actor: str) -> dict[str, Any]:
        """Puts the accounts of a trace's freeze orders on a list (``blocked_accounts``: the starter
        strategy then blocks their outgoing transfers), expiring after ``ttl_hours``."""
        check_list_name(request.list)
        try:
            minimum = to_minor(request.min_amount)
        except AmountError as exc:
            raise ValidationFailed([{"loc": ["body", "min_amount"], "type": "value_error", "msg": str(exc)}]) from None
        document = self.get(trace_id)
        accounts = [o["account"] for o in document["freeze_orders"] if to_minor(o["freezable"]) >= max(minimum, 1)]
        expires = utcnow() + timedelta(hours=request.ttl_hours)
        added = 0
        if accounts:
            added = self.guard.add_to_list(
                request.list,
                accounts,
                reason=f"stop-payment, trace {trace_id} (freezable funds traced from victim reports)",
                expires_at=expires,
                actor=actor,
            )
        return {
            "trace_id": trace_id,
            "list": request.list,
            "added": added,
            "accounts": [mask(a) for a in accounts],
            "expires_at": expires.isoformat(),
        }

    # ------------------------------------------------------------------ mule scores
    def score_mules(self, *, days: int = 30, publish: bool = True, actor: str = "system") -> dict[str, Any]:
        """Mule features over the last ``days`` of stored events (victim shares from the reports of the
        traces stored in that time), published as ``mule.*`` sources with a full refresh."""
        if not 1 <= days <= 366:
            raise ValidationFailed([{"loc": ["query", "days"], "type": "value_error", "msg": "must be 1..366"}])
        with self.guard.engine.connect() as connection:
            latest = connection.execute(
                select(events_table.c.occurred_at).order_by(events_table.c.occurred_at.desc()).limit(1)
            ).scalar()
        if latest is None:
            return {"accounts": 0, "published": {}}
        since = latest - timedelta(days=days)
        ledger = ledger_from_store(self.guard.engine, since, latest)
        if not len(ledger):
            return {"accounts": 0, "published": {}}
        trace = None
        known = _distinct_reports(self.repository.requests_since(since))
        victims = []
        for report in known:
            try:
                victims.extend(resolve(ledger, [report]))
            except ValidationFailed:
                continue  # its transfers are older than the scoring window
        for number, victim in enumerate(victims):
            victim.index = number
        if victims:
            trace = Tracer(alerts=False).run(ledger, victims).trace
        scores = mules.score(ledger, since_ms=ms_of(since), trace=trace)
        published = {}
        for source in mules.SOURCES:
            values = scores.values(source)
            published[source] = (
                self.guard.publish_features(source, values, replace=True, actor=actor) if publish else len(values)
            )
        return {"accounts": scores.frame.height, "reports": len(victims), "published": published}


def _distinct_reports(requests: list[dict[str, Any]]) -> list[ReportIn]:
    seen: dict[tuple[Any, ...], ReportIn] = {}
    for request in requests:
        for raw in request.get("reports", []):
            report = msgspec.convert(raw, ReportIn, strict=False)
            key = (report.victim_account, tuple(report.event_ids or ()), repr(report.window))
            seen.setdefault(key, msgspec.structs.replace(report, report_id=f"k{len(seen) + 1}"))
    return list(seen.values())
