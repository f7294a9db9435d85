"""``CaseService``: investigations inside a running riskguard — the one object the REST routes, the CLI and
the console call (they hold no case logic of their own).

Every method takes ``actor`` (who acts, for the audit log) where it changes or reveals something, and
returns plain dicts with personal identifiers masked, unless the caller passes ``revealed=True`` — which
goes through the privacy package's ``Revealer`` (role check, audit entry, anomaly throttling). Every change
writes its ``case_activity`` entry and its audit entry (``case.*``) in the same transaction. Money values
are decimal strings (exact). The actions and the evidence export live in ``actions.py`` (``CaseActions``).
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from riskguard.cases import records, sealing
from riskguard.cases.actions import CaseActions
from riskguard.cases.actions import bad as _bad
from riskguard.cases.actions import iso as _iso
from riskguard.cases.entities import KINDS, EntityRefs, masked_evidence
from riskguard.cases.inbox import AlertIn, AlertInbox, alert_dict
from riskguard.cases.priority import DEFAULT_SLA, breached, decimal_of, due_at, parse_sla
from riskguard.cases.sources import sync_all
from riskguard.cases.store import CaseRepository
from riskguard.cases.tables import case_alerts, case_sync
from riskguard.cases.view import TIMELINE_EVENTS, decision_item, fund_flows, ring_graph, shower, timeline
from riskguard.errors import NotFound, ValidationFailed
from riskguard.store import audit
from riskguard.store.tables import utcnow

if TYPE_CHECKING:
    from riskguard.app import RiskGuard


class CaseService(CaseActions):
    """Alerts, cases, actions and evidence packages over one RiskGuard instance (``CaseService(guard)``)."""

    def __init__(self, guard: RiskGuard, *, graph_dir: Path | None = None) -> None:
        from riskguard.graph.api import GraphCache
        from riskguard.graph.api import graph_dir as default_graph_dir

        self.guard = guard
        self.engine = guard.engine
        settings = guard.settings
        window = float(getattr(settings, "case_merge_window_hours", 168.0))
        self.refs = EntityRefs(self._ref_key())
        self.inbox = AlertInbox(self.engine, self.refs, window=timedelta(hours=window))
        self.sla = parse_sla(getattr(settings, "case_sla", DEFAULT_SLA))
        self.repository = CaseRepository(self.engine)
        self._graphs = GraphCache(graph_dir or default_graph_dir())
        self._sync_lock = threading.Lock()
        self._last_sync = 0.0

    def _ref_key(self) -> bytes:
        """The installation's key for entity references: created once (workers starting together agree on
        the first one written), shared by every worker."""
        from sqlalchemy.dialects import postgresql, sqlite

        dialect_insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        with self.engine.begin() as connection:
            connection.execute(
                dialect_insert(case_sync)
                .values(source="ref_key", cursor=secrets.token_hex(32), synced_at=utcnow())
                .on_conflict_do_nothing(index_elements=[case_sync.c.source])
            )
            key = connection.execute(select(case_sync.c.cursor).where(case_sync.c.source == "ref_key")).scalar_one()
        return bytes.fromhex(key)

    # ------------------------------------------------------------------ reveal
    def _reveal(self, actor: str, role: str | None, target: str, entities: list[tuple[str, str]], purpose: str) -> None:
        """Authorises an unmasked view through the privacy package's Revealer: one audited request for all
        the entities shown (Forbidden for a role that may not reveal, Throttled after anomalous access).
        Only personal kinds count (phones, cards, addresses); accounts and devices are pseudonymous ids,
        readable in the event log too, and are shown along with them."""
        personal = [(kind, value) for kind, value in entities if kind in sealing.TOKEN_KINDS]
        self.guard.privacy.revealer.reveal_many(actor, role, personal, purpose=purpose, target=target)

    # ------------------------------------------------------------------ alerts
    def sync(self, actor: str = "system", *, max_age_s: float | None = None) -> dict[str, Any]:
        """Pulls new alerts from every source (review decisions, graph, complaints, traces, leaks, access) into
        the inbox. Idempotent. With ``max_age_s``, skips the pull when this process synced less than that ago (call it
        on every page load: ``sync(max_age_s=30)``). Returns per source {new, updated, merged, unchanged}."""
        if max_age_s is not None and time.monotonic() - self._last_sync < max_age_s:
            return {"skipped": True}
        with self._sync_lock:
            started = time.perf_counter()
            try:
                counts = sync_all(self.engine, self.inbox)
            except IntegrityError:  # another worker recorded the same source alerts first: they are known now
                counts = sync_all(self.engine, self.inbox)
            self._last_sync = time.monotonic()
        new = sum(c["new"] for c in counts.values())
        if new:
            self.guard.audit.record(actor, "alerts.sync", "inbox", {"new": new})
        return {"skipped": False, "sources": counts, "seconds": round(time.perf_counter() - started, 3)}

    def alerts(
        self,
        *,
        status: str | None = "open",
        source: str | None = None,
        assignee: str | None = None,
        min_priority: Decimal | str | None = None,
        sort: str = "priority",
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """The inbox, one item per alert group (masked): ``{total, offset, limit, alerts: [{id, title, kind,
        source, sources, status, case_id, assignee, alerts, score, amount_at_risk, priority, occurred_at,
        first_seen_at, last_seen_at, entity_count, entities: [{kind, value, ref}]}]}``. ``status``: open,
        in_case, closed or None (all); ``sort``: priority (default), newest, oldest."""
        floor = None
        if min_priority is not None:
            try:
                floor = Decimal(str(min_priority))
            except ArithmeticError:
                raise _bad(["query", "min_priority"], "must be a decimal number") from None
        page = self.inbox.groups(
            status=status, source=source, assignee=assignee, min_priority=floor, sort=sort, limit=limit, offset=offset
        )
        return page

    def alert(
        self, alert_id: int, *, revealed: bool = False, actor: str = "system", role: str | None = None
    ) -> dict[str, Any]:
        """One alert group with every member alert and its evidence (``members``)."""
        group_id = self.inbox.group_of(alert_id)
        if revealed:
            found = self.inbox.group(group_id, revealed=True)
            self._reveal(actor, role, f"alert:{group_id}", [(e["kind"], e["value"]) for e in found["entities"]], "view")
        found = self.inbox.group(group_id, revealed=revealed)
        return found

    def alerts_for_entity(self, kind: str, value: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """Alert groups (any status) naming this entity, newest first (masked): for entity pages."""
        from riskguard.cases.tables import case_alert_entities

        with self.engine.connect() as connection:
            ids = [
                int(r[0])
                for r in connection.execute(
                    select(case_alerts.c.group_id)
                    .join(case_alert_entities, case_alert_entities.c.alert_id == case_alerts.c.id)
                    .where(case_alert_entities.c.kind == kind)
                    .where(case_alert_entities.c.value == sealing.lookup(self.engine, kind, value))
                    .group_by(case_alerts.c.group_id)
                    .order_by(case_alerts.c.group_id.desc())
                    .limit(limit)
                )
            ]
        return [self.inbox.group(i) for i in ids]

    def create_alert(
        self,
        *,
        actor: str,
        title: str,
        entities: list[dict[str, str]],
        amount: Decimal | str | None = None,
        score: Decimal | str | float = Decimal("0.5"),
        note: str | None = None,
        occurred_at: datetime | None = None,
    ) -> dict[str, Any]:
        """A manual alert (an analyst's tip, a police request): ``entities`` as [{kind, value}], ``score`` 0..1,
        ``amount`` at risk. It merges like any other alert."""
        errors = []
        if not title.strip() or len(title) > 200:
            errors.append({"loc": ["body", "title"], "type": "value_error", "msg": "1 to 200 characters"})
        pairs = []
        for index, entity in enumerate(entities):
            kind, value = entity.get("kind"), entity.get("value")
            if kind not in KINDS or not isinstance(value, str) or not 0 < len(value) <= 256:
                errors.append(
                    {
                        "loc": ["body", "entities", index],
                        "type": "value_error",
                        "msg": f"kind one of {', '.join(KINDS)}; value 1-256 characters",
                    }
                )
            else:
                pairs.append((kind, value))
        if not entities:
            errors.append({"loc": ["body", "entities"], "type": "value_error", "msg": "name at least one entity"})
        try:
            unit = Decimal(str(score))
            if not 0 <= unit <= 1:
                raise ArithmeticError
        except ArithmeticError:
            errors.append({"loc": ["body", "score"], "type": "value_error", "msg": "a number from 0 to 1"})
            unit = Decimal(0)
        try:
            if amount is not None and (not Decimal(str(amount)).is_finite() or Decimal(str(amount)) < 0):
                raise ArithmeticError
        except ArithmeticError:
            errors.append({"loc": ["body", "amount"], "type": "value_error", "msg": "a non-negative decimal amount"})
        if errors:
            raise ValidationFailed(errors)
        now = utcnow()
        key = f"manual-{int(now.timestamp() * 1000)}-{secrets.token_hex(4)}"
        recorded = self.inbox.record(
            [
                AlertIn(
                    source="manual",
                    source_key=key,
                    kind="manual",
                    title=title.strip(),
                    score=unit,
                    amount=amount,
                    entities=pairs,
                    occurred_at=occurred_at or now,
                    evidence={"note": note, "created_by": actor},
                )
            ],
            now=now,
        )
        alert_id = recorded.ids[0]
        self.guard.audit.record(actor, "alert.create", str(alert_id), {"entities": len(pairs), "amount": amount})
        return self.alert(alert_id)

    def assign_alerts(self, alert_ids: list[int], assignee: str | None, *, actor: str) -> dict[str, Any]:
        """Assigns alert groups (bulk); ``assignee`` None unassigns."""
        if not alert_ids:
            raise _bad(["body", "alert_ids"], "name at least one alert")
        groups = sorted({self.inbox.group_of(i) for i in alert_ids})
        self.not_subject(actor, assignee, groups=groups)
        with self.engine.begin() as connection:
            changed = self.inbox.assign(connection, groups, assignee)
            audit.record(connection, actor, "alert.assign", ",".join(map(str, groups)), {"assignee": assignee})
        return {"groups": groups, "alerts": changed, "assignee": assignee}

    # ------------------------------------------------------------------ cases
    def open_case(
        self, alert_ids: list[int], *, actor: str, title: str | None = None, assignee: str | None = None
    ) -> dict[str, Any]:
        """Opens a case from alert groups (each alert id brings its whole group). Priority: the highest of the
        alerts; SLA due time from it (``RISKGUARD_CASE_SLA``)."""
        if not alert_ids:
            raise _bad(["body", "alert_ids"], "name at least one alert")
        groups = sorted({self.inbox.group_of(i) for i in alert_ids})
        now = utcnow()
        with self.engine.begin() as connection:
            rows = connection.execute(select(case_alerts).where(case_alerts.c.group_id.in_(groups))).all()
            priority = max(int(r.priority_minor) for r in rows)
            head = next(r for r in rows if r.id == groups[0])
            self.not_subject(actor, assignee or head.assignee, groups=groups)
            name = (title or "").strip() or sealing.plain(head.title)
            case_id = self.repository.create(
                connection,
                title=name,
                assignee=assignee or head.assignee,
                priority=priority,
                due_at=due_at(self.sla, priority, now),
                actor=actor,
                now=now,
            )
            members = self.inbox.attach(connection, groups, case_id)
            self.repository.log(connection, case_id, actor, "created", {"alerts": members, "groups": groups}, now)
            audit.record(
                connection, actor, "case.open", str(case_id), {"alerts": members, "priority": str(decimal_of(priority))}
            )
        return self.summary(case_id)

    def add_alerts(self, case_id: int, alert_ids: list[int], *, actor: str) -> dict[str, Any]:
        """Adds alert groups to an open case (its priority rises to theirs if higher)."""
        if not alert_ids:
            raise _bad(["body", "alert_ids"], "name at least one alert")
        groups = sorted({self.inbox.group_of(i) for i in alert_ids})
        now = utcnow()
        with self.engine.begin() as connection:
            row = self.repository.row(connection, case_id, for_update=True)
            self._require_open(row)
            self.not_subject(actor, row.assignee, groups=groups)
            members = self.inbox.attach(connection, groups, case_id)
            top = connection.execute(select(case_alerts.c.priority_minor).where(case_alerts.c.case_id == case_id)).all()
            priority = max(int(p[0]) for p in top)
            if priority > row.priority_minor:
                self.repository.change(connection, case_id, now, priority_minor=priority)
            self.repository.log(connection, case_id, actor, "alert_added", {"alerts": members}, now)
            audit.record(connection, actor, "case.add_alerts", str(case_id), {"alerts": members})
        return self.summary(case_id)

    def summary(self, case_id: int) -> dict[str, Any]:
        """A case's header: {id, title, status, resolution, assignee, priority, due_at, breached, created_at,
        created_by, updated_at, closed_at, trace_id, sla_hours_left}."""
        return self._summary(self.repository.get(case_id))

    def _summary(self, row: Any) -> dict[str, Any]:
        now = utcnow()
        return {
            "id": row.id,
            "title": sealing.plain(row.title),
            "status": row.status,
            "resolution": row.resolution,
            "assignee": row.assignee,
            "priority": str(decimal_of(int(row.priority_minor))),
            "due_at": _iso(row.due_at),
            "breached": breached(row.due_at, row.closed_at, now),
            "hours_left": round((row.due_at - now).total_seconds() / 3600, 2) if row.status != "closed" else None,
            "created_at": _iso(row.created_at),
            "created_by": row.created_by,
            "updated_at": _iso(row.updated_at),
            "closed_at": _iso(row.closed_at),
            "trace_id": row.trace_id,
        }

    def cases(
        self,
        *,
        status: str | None = None,
        assignee: str | None = None,
        breached_only: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Cases, highest priority first: ``{total, offset, limit, cases: [summary, ...]}``."""
        total, rows = self.repository.list(
            status=status,
            assignee=assignee,
            breached_before=utcnow() if breached_only else None,
            limit=limit,
            offset=offset,
        )
        return {"total": total, "offset": offset, "limit": limit, "cases": [self._summary(r) for r in rows]}

    def case(
        self, case_id: int, *, revealed: bool = False, actor: str = "system", role: str | None = None
    ) -> dict[str, Any]:
        """The case view: ``summary`` fields plus ``alerts`` (members with evidence), ``entities`` [{kind, value,
        ref, lists}], ``timeline`` (events with decisions and reasons, alerts, notes and actions, in time
        order), ``decisions``, ``notes``, ``actions``, ``freezes``, ``ring_graph`` (Cytoscape.js elements) and
        ``fund_flows`` (trace paths). Masked unless ``revealed`` (audited)."""
        return self._revealed_view(case_id, actor, role, revealed, "view")

    def _revealed_view(
        self, case_id: int, actor: str, role: str | None, revealed: bool, purpose: str
    ) -> dict[str, Any]:
        """The case view; unmasked after one Revealer request for the case's entities (``purpose``). Nobody
        reveals or exports a case about their own access (``not_subject``)."""
        if revealed or purpose == "evidence":
            self.not_subject(actor, case_id=case_id)
        if revealed:
            with self.engine.connect() as connection:
                entities = self.inbox.entities_of_case(connection, case_id)
            self.repository.get(case_id)
            self._reveal(actor, role, f"case:{case_id}", entities, purpose)
        return self._view(case_id, revealed=revealed)

    def _view(self, case_id: int, *, revealed: bool) -> dict[str, Any]:
        row = self.repository.get(case_id)
        with self.engine.connect() as connection:
            entities = self.inbox.entities_of_case(connection, case_id)
            alert_rows = self.inbox.alerts_of_case(connection, case_id)
        show = shower(revealed)
        alerts = [alert_dict(r, revealed=revealed) for r in alert_rows]
        accounts = [v for k, v in entities if k == "account"]
        decided = records.of_accounts(self.engine, accounts[:200], limit=TIMELINE_EVENTS)
        known = {d.event_id for d in decided}
        extra = [r.source_key for r in alert_rows if r.source == "review" and r.source_key not in known]
        if extra:
            decided = sorted(decided + records.by_ids(self.engine, extra), key=lambda d: d.occurred_at, reverse=True)
        activity = self.repository.activity(case_id)
        now = utcnow()
        on_lists: dict[str, list[str]] = {}  # from the decision path's in-memory list index
        for name, values in self.guard.list_index.entries.items():
            for _kind, value in entities:
                expires = values.get(value, now)
                if value in values and (expires is None or expires > now):
                    on_lists.setdefault(value, []).append(name)
        out = self._summary(row)
        out.update(
            {
                "masked": not revealed,
                "alerts": alerts,
                "entities": [
                    {**self.refs.describe(k, v, revealed=revealed), "lists": sorted(on_lists.get(v, []))}
                    for k, v in entities
                ],
                "timeline": timeline(decided, alerts, activity, show),
                "decisions": [decision_item(d, show) for d in decided if d.decision is not None][:500],
                "notes": [
                    {"at": _iso(a["at"]), "author": a["actor"], "text": a["details"].get("text", "")}
                    for a in activity
                    if a["kind"] == "note"
                ],
                "actions": [
                    {"at": _iso(a["at"]), "actor": a["actor"], "action": a["kind"], "details": a["details"]}
                    for a in activity
                    if a["kind"] != "note"
                ],
                "freezes": [
                    {
                        "account": show(f["account"]),
                        "status": f["status"],
                        "amount": None if f["amount_minor"] is None else str(decimal_of(f["amount_minor"])),
                        "trace_id": f["trace_id"],
                        "list": f["list_name"],
                        "expires_at": _iso(f["expires_at"]),
                        "requested_at": _iso(f["requested_at"]),
                        "requested_by": f["requested_by"],
                    }
                    for f in self.repository.freezes(case_id)
                ],
                "ring_graph": ring_graph(self.refs, entities, decided, self._graphs.get, revealed=revealed),
                "fund_flows": fund_flows(self._trace_documents(row, alert_rows), revealed=revealed),
            }
        )
        if not revealed:
            for action in out["actions"]:
                action["details"] = masked_evidence(action["details"])
        return out

    def _trace_documents(self, row: Any, alert_rows: list[Any]) -> list[dict[str, Any]]:
        from riskguard.tracing.store import TraceRepository

        ids = [r.source_key for r in alert_rows if r.source == "trace"]
        if row.trace_id and row.trace_id not in ids:
            ids.append(row.trace_id)
        repository = TraceRepository(self.engine)
        out = []
        for trace_id in ids:
            try:
                out.append(repository.document(trace_id))
            except NotFound:
                continue
        return out

    def resolve(self, case_id: int, ref: str) -> tuple[str, str]:
        """The (kind, value) an entity reference of this case names (for adapters; never shown)."""
        with self.engine.connect() as connection:
            for kind, value in self.inbox.entities_of_case(connection, case_id):
                if self.refs.ref(kind, value) == ref:
                    return kind, value
        raise NotFound(f"case {case_id} has no entity {ref!r}")

    # ------------------------------------------------------------------ workflow
    @staticmethod
    def _require_open(row: Any) -> None:
        if row.status == "closed":
            raise _bad(["path", "case_id"], f"case {row.id} is closed; reopen it first")

    def assign(self, case_id: int, assignee: str | None, *, actor: str) -> dict[str, Any]:
        if assignee is not None and not 0 < len(assignee) <= 64:
            raise _bad(["body", "assignee"], "1 to 64 characters")
        self.not_subject(actor, assignee, case_id=case_id)
        now = utcnow()
        with self.engine.begin() as connection:
            self.repository.row(connection, case_id, for_update=True)
            self.repository.change(connection, case_id, now, assignee=assignee)
            self.repository.log(connection, case_id, actor, "assigned", {"assignee": assignee}, now)
            audit.record(connection, actor, "case.assign", str(case_id), {"assignee": assignee})
        return self.summary(case_id)

    def set_status(self, case_id: int, status: str, *, actor: str) -> dict[str, Any]:
        """open ↔ investigating. Closing takes a resolution (``close``); reopening is ``reopen``."""
        if status not in ("open", "investigating"):
            raise _bad(["body", "status"], "open or investigating (close with a resolution: POST .../close)")
        self.not_subject(actor, case_id=case_id)
        now = utcnow()
        with self.engine.begin() as connection:
            row = self.repository.row(connection, case_id, for_update=True)
            self._require_open(row)
            if row.status != status:
                self.repository.change(connection, case_id, now, status=status)
                self.repository.log(
                    connection, case_id, actor, "status", {"previous": row.status, "status": status}, now
                )
                audit.record(connection, actor, "case.status", str(case_id), {"previous": row.status, "status": status})
        return self.summary(case_id)

    def add_note(self, case_id: int, text: str, *, actor: str) -> dict[str, Any]:
        if not text.strip() or len(text) > 10_000:
            raise _bad(["body", "text"], "1 to 10,000 characters")
        self.not_subject(actor, case_id=case_id)
        now = utcnow()
        with self.engine.begin() as connection:
            self.repository.row(connection, case_id)
            note_id = self.repository.log(connection, case_id, actor, "note", {"text": text}, now)
            audit.record(connection, actor, "case.note", str(case_id), {"note_id": note_id, "chars": len(text)})
        return {"case_id": case_id, "note_id": note_id, "at": _iso(now), "author": actor, "text": text}

    def reopen(self, case_id: int, *, actor: str, note: str | None = None) -> dict[str, Any]:
        """Reopens a closed case (status investigating); labels already written stay (add new ones by
        closing again)."""
        self.not_subject(actor, case_id=case_id)
        now = utcnow()
        with self.engine.begin() as connection:
            row = self.repository.row(connection, case_id, for_update=True)
            if row.status != "closed":
                raise _bad(["path", "case_id"], f"case {case_id} is not closed")
            self.repository.change(connection, case_id, now, status="investigating", resolution=None, closed_at=None)
            self.inbox.set_case_status(connection, case_id, "in_case")
            self.repository.log(connection, case_id, actor, "reopened", {"note": note}, now)
            audit.record(connection, actor, "case.reopen", str(case_id), {"note": note})
        return self.summary(case_id)
