"""What an investigator does from a case — put entities on a list, request a freeze, start a trace, close
with a resolution (labels) — and the evidence package export: the action half of ``CaseService``
(``service.py``), kept apart so each module has one job. Every action writes its case activity entry and its
audit entry (``case.*``) in one transaction.

Nobody works an access alert about themselves: ``not_subject`` refuses (Forbidden) any change to alerts or
a case naming the acting user — or the assignee — as the ``actor`` entity of an access alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from riskguard.cases import records, sealing
from riskguard.cases.entities import ACTOR, DEFAULT_LISTS, KINDS
from riskguard.cases.inbox import NO_MERGE_SOURCES
from riskguard.cases.priority import decimal_of, minor_of
from riskguard.cases.store import RESOLUTIONS
from riskguard.cases.tables import case_alert_entities, case_alerts
from riskguard.cases.view import shower
from riskguard.errors import Forbidden, NotFound, ValidationFailed
from riskguard.store import audit
from riskguard.store.lists import check_list_name
from riskguard.store.tables import utcnow

if TYPE_CHECKING:
    from riskguard.app import RiskGuard
    from riskguard.cases.inbox import AlertInbox
    from riskguard.cases.store import CaseRepository

#: labels a resolution writes to the labels store (inconclusive writes none: the store knows fraud/legitimate)
LABEL_OF = {"confirmed_fraud": "fraud", "legitimate": "legitimate"}
LABEL_SOURCE = "case"


def bad(loc: list[Any], msg: str) -> ValidationFailed:
    return ValidationFailed([{"loc": loc, "type": "value_error", "msg": msg}])


def person(name: str) -> str:
    """Who a name is: a console actor ``console:alice`` is the user ``alice`` (assignees are user names)."""
    return name.removeprefix("console:")


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


class CaseActions:
    """Mixed into ``CaseService``, whose attributes and helpers these methods use."""

    guard: RiskGuard
    engine: Any
    inbox: AlertInbox
    repository: CaseRepository

    if TYPE_CHECKING:

        def resolve(self, case_id: int, ref: str) -> tuple[str, str]: ...
        def summary(self, case_id: int) -> dict[str, Any]: ...
        def sync(self, actor: str = "system", *, max_age_s: float | None = None) -> dict[str, Any]: ...
        def _revealed_view(
            self, case_id: int, actor: str, role: str | None, revealed: bool, purpose: str
        ) -> dict[str, Any]: ...
        def _trace_documents(self, row: Any, alert_rows: list[Any]) -> list[dict[str, Any]]: ...
        @staticmethod
        def _require_open(row: Any) -> None: ...

    def not_subject(self, *names: str | None, case_id: int | None = None, groups: list[int] | None = None) -> None:
        """Forbidden when one of ``names`` (the actor, an assignee) is the person an access alert of the case
        (or of the alert ``groups``) is about: an insider-access alert is worked by someone else."""
        people = {person(n) for n in names if n}
        if not people:
            return
        query = (
            select(case_alert_entities.c.value)
            .join(case_alerts, case_alerts.c.id == case_alert_entities.c.alert_id)
            .where(case_alert_entities.c.kind == ACTOR)
        )
        if groups is not None:
            query = query.where(case_alerts.c.group_id.in_(groups))
        else:
            query = query.where(case_alerts.c.case_id == case_id)
        with self.engine.connect() as connection:
            subjects = {person(v) for v in connection.execute(query).scalars()}
        found = sorted(people & subjects)
        if found:
            raise Forbidden(f"{found[0]!r} is the subject of an access alert here and may not work it")

    def _entities(self, case_id: int, entities: list[dict[str, str]], field: str) -> list[tuple[str, str]]:
        """Entities named by ``ref`` (from the case view) or by ``kind`` and ``value``."""
        if not entities:
            raise bad(["body", field], "name at least one entity")
        out = []
        for index, entity in enumerate(entities):
            if entity.get("ref"):
                try:
                    out.append(self.resolve(case_id, entity["ref"]))
                except NotFound:
                    raise bad(["body", field, index, "ref"], "not an entity of this case") from None
                continue
            kind, value = entity.get("kind"), entity.get("value")
            if kind not in KINDS:
                raise bad(["body", field, index, "kind"], f"one of {', '.join(KINDS)}")
            if not isinstance(value, str) or not 0 < len(value) <= 256:
                raise bad(["body", field, index, "value"], "1 to 256 characters")
            out.append((kind, value))
        return out

    def add_to_list(
        self,
        case_id: int,
        entities: list[dict[str, str]],
        *,
        actor: str,
        list_name: str | None = None,
        ttl_hours: float | None = None,
        expires_at: datetime | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Puts entities ({ref} or {kind, value}) on a list through the lists repository (audited there as
        ``list.add`` too), expiring after ``ttl_hours`` or at ``expires_at`` (neither: no expiry). Without
        ``list_name`` each goes to its kind's default list (accounts → blocked_accounts, devices →
        blocked_devices, cards → blocked_cards, phones → watch_phones, ...)."""
        pairs = self._entities(case_id, entities, "entities")
        if list_name is not None:
            check_list_name(list_name)
        if ttl_hours is not None and expires_at is not None:
            raise bad(["body", "ttl_hours"], "give ttl_hours or expires_at, not both")
        if ttl_hours is not None and not 0 < ttl_hours <= 24 * 3650:
            raise bad(["body", "ttl_hours"], "more than 0, at most ten years")
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= utcnow()):
            raise bad(["body", "expires_at"], "a future time with a time zone")
        row = self.repository.get(case_id)
        self._require_open(row)
        self.not_subject(actor, case_id=case_id)
        now = utcnow()
        expiry = expires_at or (now + timedelta(hours=ttl_hours) if ttl_hours is not None else None)
        by_list: dict[str, list[str]] = {}
        for kind, value in pairs:
            by_list.setdefault(list_name or DEFAULT_LISTS[kind], []).append(value)
        why = reason or f"case {case_id}"
        added = {}
        for name, values in by_list.items():
            added[name] = self.guard.add_to_list(name, values, reason=why[:500], expires_at=expiry, actor=actor)
        details = {
            "lists": {name: len(values) for name, values in by_list.items()},
            "entities": [{"kind": k, "value": v} for k, v in pairs],
            "expires_at": iso(expiry),
            "reason": why,
        }
        with self.engine.begin() as connection:
            self.repository.log(connection, case_id, actor, "list_add", details, now)
            audit.record(connection, actor, "case.list_add", str(case_id), {**details, "entities": len(pairs)})
        return {"case_id": case_id, "added": added, "expires_at": iso(expiry)}

    def request_freeze(
        self,
        case_id: int,
        accounts: list[dict[str, str]] | None = None,
        *,
        actor: str,
        ttl_hours: int | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Records a freeze request for accounts ({ref} or {kind: account, value}; default: the accounts
        holding traced money in the case's traces, else every account of the case) and applies it as the
        tracing capability's stop-payment does: the account goes on ``blocked_accounts`` for 48 hours
        (``ttl_hours``), so the starter strategy blocks its outgoing transfers. The freezable amount comes
        from the case's trace freeze orders when there are any."""
        from riskguard.tracing.service import FREEZE_HOURS, FREEZE_LIST

        row = self.repository.get(case_id)
        self._require_open(row)
        self.not_subject(actor, case_id=case_id)
        hours = FREEZE_HOURS if ttl_hours is None else ttl_hours
        if not 1 <= hours <= 24 * 30:
            raise bad(["body", "ttl_hours"], "1 to 720 hours")
        with self.engine.connect() as connection:
            alert_rows = self.inbox.alerts_of_case(connection, case_id)
            entities = self.inbox.entities_of_case(connection, case_id)
        orders: dict[str, tuple[int, str]] = {}
        for document in self._trace_documents(row, alert_rows):
            for order in document.get("freeze_orders", []):
                orders.setdefault(order["account"], (minor_of(order["freezable"]), document["trace_id"]))
        if accounts:
            pairs = self._entities(case_id, accounts, "accounts")
            wrong = [i for i, (kind, _) in enumerate(pairs) if kind != "account"]
            if wrong:
                raise bad(["body", "accounts", wrong[0]], "only accounts can be frozen")
            chosen = [v for _, v in pairs]
        else:
            chosen = [a for a in orders if ("account", a) in set(entities)] or [
                v for k, v in entities if k == "account"
            ]
        if not chosen:
            raise bad(["body", "accounts"], "the case has no account to freeze")
        now = utcnow()
        expires = now + timedelta(hours=hours)
        why = reason or f"freeze request, case {case_id}"
        self.guard.add_to_list(FREEZE_LIST, chosen, reason=why[:500], expires_at=expires, actor=actor)
        out = []
        with self.engine.begin() as connection:
            for account in chosen:
                amount, trace_id = orders.get(account, (None, None))
                self.repository.freeze(
                    connection,
                    case_id=case_id,
                    account=account,
                    status="requested",
                    amount_minor=amount,
                    trace_id=trace_id,
                    list_name=FREEZE_LIST,
                    expires_at=expires,
                    reason=sealing.text(self.engine, why),
                    requested_at=now,
                    requested_by=actor[:64],
                )
                out.append(
                    {
                        "account": account,
                        "amount": None if amount is None else str(decimal_of(amount)),
                        "trace_id": trace_id,
                    }
                )
            details = {"accounts": out, "list": FREEZE_LIST, "expires_at": iso(expires), "reason": why}
            self.repository.log(connection, case_id, actor, "freeze", details, now)
            audit.record(connection, actor, "case.freeze", str(case_id), {**details, "accounts": len(out)})
        shown = shower(False)
        return {
            "case_id": case_id,
            "list": FREEZE_LIST,
            "expires_at": iso(expires),
            "accounts": [{**item, "account": shown(item["account"])} for item in out],
        }

    def reported_transfers(self, case_id: int) -> list[records.Decided]:
        """The money-moving events of the case's review alerts that a victim paid (what a trace starts from):
        transfers paid by an account that itself received money in another of them are onward hops of the
        laundering, not losses, and are left out (unless that leaves nothing)."""
        with self.engine.connect() as connection:
            alert_rows = self.inbox.alerts_of_case(connection, case_id)
        ids = [r.source_key for r in alert_rows if r.source == "review"]
        moved = [d for d in records.by_ids(self.engine, ids) if d.type in records.MONEY_TYPES and d.amount]
        payees = {d.payload.get("counterparty_id") for d in moved}
        first_hops = [d for d in moved if d.account_id not in payees]  # onward hops are laundering, not losses
        return first_hops or moved

    def start_trace(
        self, case_id: int, *, actor: str, event_ids: list[str] | None = None, rule: str = "libr"
    ) -> dict[str, Any]:
        """Traces the victims' money from the case's reported transfers (default: the money-moving events of
        its review alerts; or ``event_ids``) with the tracing service — one victim report per paying account,
        the loss the sum of its transfers — stores the trace, links it to the case and brings its alert in."""
        from riskguard.tracing.reports import ReportIn
        from riskguard.tracing.service import TraceRequest, TraceService

        row = self.repository.get(case_id)
        self._require_open(row)
        self.not_subject(actor, case_id=case_id)
        if event_ids:
            chosen = [d for d in records.by_ids(self.engine, event_ids) if d.type in records.MONEY_TYPES and d.amount]
            missing = sorted(set(event_ids) - {d.event_id for d in chosen})
            if missing:
                raise bad(["body", "event_ids"], f"{missing[0]!r} is not a stored transfer, payment or withdrawal")
        else:
            chosen = self.reported_transfers(case_id)
        if not chosen:
            raise bad(["body", "event_ids"], "the case has no reported transfer to trace; name event_ids")
        by_victim: dict[str, list[records.Decided]] = {}
        for item in chosen:
            by_victim.setdefault(item.account_id, []).append(item)
        latest = max(d.occurred_at for d in chosen)
        latest = latest if latest.tzinfo else latest.replace(tzinfo=UTC)
        reported = max(utcnow(), latest + timedelta(minutes=1))  # follow the money up to now
        reports = [
            ReportIn(
                victim_account=victim,
                loss=sum((d.amount or Decimal(0) for d in items), Decimal(0)).quantize(Decimal("0.01")),
                reported_at=reported,
                report_id=f"case{case_id}-{number}",
                event_ids=[d.event_id for d in items],
            )
            for number, (victim, items) in enumerate(sorted(by_victim.items()), 1)
        ]
        result = TraceService(self.guard).create(TraceRequest(reports=reports, rule=rule), actor=actor)
        trace_id = result["trace_id"]
        now = utcnow()
        with self.engine.begin() as connection:
            self.repository.change(connection, case_id, now, trace_id=trace_id)
            details = {"trace_id": trace_id, "reports": len(reports), "events": [d.event_id for d in chosen]}
            self.repository.log(connection, case_id, actor, "trace", details, now)
            audit.record(connection, actor, "case.trace", str(case_id), details)
        self.sync(actor)  # the trace's alert joins the inbox
        with self.engine.begin() as connection:  # and this case, unless it merged into another one
            found = connection.execute(
                select(case_alerts.c.group_id, case_alerts.c.case_id)
                .where(case_alerts.c.source == "trace")
                .where(case_alerts.c.source_key == trace_id)
            ).first()
            if found is not None and found.case_id is None:
                self.inbox.attach(connection, [int(found.group_id)], case_id)
        return {"case_id": case_id, **result}

    def close(
        self, case_id: int, resolution: str, *, actor: str, note: str | None = None, label: bool = True
    ) -> dict[str, Any]:
        """Closes the case with a resolution. ``confirmed_fraud`` / ``legitimate`` (with ``label``) label the
        case's accounts and its review events ``fraud`` / ``legitimate`` through ``RiskGuard.add_labels`` —
        the code path of ``POST /v1/labels`` — so training and label-aware features see them;
        ``inconclusive`` labels nothing. Its alerts close with it."""
        if resolution not in RESOLUTIONS:
            raise bad(["body", "resolution"], f"one of {', '.join(RESOLUTIONS)}")
        if note is not None and len(note) > 2000:
            raise bad(["body", "note"], "at most 2,000 characters")
        self.not_subject(actor, case_id=case_id)
        now = utcnow()
        with self.engine.begin() as connection:
            row = self.repository.row(connection, case_id, for_update=True)
            self._require_open(row)
            # a leak's accounts are its victims: a fraud resolution does not label them
            entities = self.inbox.entities_of_case(connection, case_id, except_sources=NO_MERGE_SOURCES)
            alert_rows = self.inbox.alerts_of_case(connection, case_id)
            self.repository.change(connection, case_id, now, status="closed", resolution=resolution, closed_at=now)
            self.inbox.set_case_status(connection, case_id, "closed")
        labelled: list[int] = []
        if label and resolution in LABEL_OF:
            items = [
                {
                    "event_id": None,
                    "entity_kind": "account",
                    "entity_value": value,
                    "label": LABEL_OF[resolution],
                    "source": LABEL_SOURCE,
                    "typology": None,
                    "labelled_at": now,
                    "note": f"case {case_id}" + (f": {note}" if note else ""),
                }
                for kind, value in entities
                if kind == "account"
            ]
            items += [
                {
                    "event_id": r.source_key,
                    "entity_kind": None,
                    "entity_value": None,
                    "label": LABEL_OF[resolution],
                    "source": LABEL_SOURCE,
                    "typology": None,
                    "labelled_at": now,
                    "note": f"case {case_id}",
                }
                for r in alert_rows
                if r.source == "review"
            ]
            if items:
                labelled = self.guard.add_labels(items)
        details = {"resolution": resolution, "note": note, "labels": len(labelled)}
        with self.engine.begin() as connection:
            self.repository.log(connection, case_id, actor, "closed", details, now)
            audit.record(connection, actor, "case.close", str(case_id), details)
        return {**self.summary(case_id), "labels": len(labelled)}

    # ------------------------------------------------------------------ evidence
    def _exported(self, case_id: int, actor: str, manifest: dict[str, Any], revealed: bool) -> None:
        details = {"package_digest": manifest["package_digest"], "masked": not revealed, "files": manifest["files"]}
        with self.engine.begin() as connection:
            self.repository.log(connection, case_id, actor, "evidence_export", details, utcnow())
            audit.record(connection, actor, "case.evidence_export", str(case_id), details)

    def export_evidence(
        self,
        case_id: int,
        out: Path,
        *,
        actor: str,
        role: str | None,
        revealed: bool = True,
        as_zip: bool = True,
    ) -> dict[str, Any]:
        """Writes the evidence package of a case to ``out`` (a ``.zip`` file, or a directory with
        ``as_zip=False``): evidence.json, report.html (printable), manifest.json (SHA-256 and size of every
        file, and the package digest). Unmasked by default — for the receiving authority — which is a reveal
        with purpose "evidence" through the Revealer (audited; Forbidden to roles that may not reveal).
        The package digest is written to the case's activity and the audit log. Returns the manifest."""
        from riskguard.cases.evidence import write_package

        view = self._revealed_view(case_id, actor, role, revealed, "evidence")
        manifest = write_package(view, out, actor=actor, as_zip=as_zip)
        self._exported(case_id, actor, manifest, revealed)
        return manifest

    def evidence_bytes(
        self, case_id: int, *, actor: str, role: str | None, revealed: bool = True
    ) -> tuple[bytes, dict[str, Any]]:
        """The same package as zip bytes and its manifest (for downloads)."""
        from riskguard.cases.evidence import package_bytes

        view = self._revealed_view(case_id, actor, role, revealed, "evidence")
        data, manifest = package_bytes(view, actor=actor)
        self._exported(case_id, actor, manifest, revealed)
        return data, manifest
