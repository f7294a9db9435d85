"""The unified alert inbox: alerts from every source in one table, duplicates merged into groups.

Recording (``AlertInbox.record``) is idempotent by ``(source, source_key)``: the same source alert seen
again updates its row (score, amount, evidence, last seen) and gains any new entities; nothing is added.

Merging — two rules, both documented in docs/cases.md:

1. same source key: the same row (above);
2. shared entities within a window: a *new* alert that shares an account, device, phone or card
   (``entities.MERGE_KINDS``; addresses and merchants never merge on their own) with an alert that is not
   closed, and whose activity (``occurred_at``) lies within ``window`` of its own, joins that alert's
   group (``group_id`` = the group head's id). When several groups qualify it joins the one of highest
   priority; groups are never chained into each other, so one busy account cannot pull the whole inbox
   into one group. A group already in a case brings the new alert into the case (``status`` ``in_case``).

Every row is kept (nothing a source reported is lost); the inbox lists groups, each with the highest
priority of its members, its sources and their entities together.

Leak-outreach alerts (``NO_MERGE_SOURCES``) never merge either way: their accounts are the leak's victims,
and a group they joined would carry hundreds of victims into a fraud case (and its fraud labels).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, tuple_, update

from riskguard.cases import sealing
from riskguard.cases.entities import MERGE_KINDS, Entity, EntityRefs, masked_evidence
from riskguard.cases.priority import decimal_of, minor_of, priority_minor, score_bp, unit_of
from riskguard.cases.store import query_errors
from riskguard.cases.tables import case_activity, case_alert_entities, case_alerts
from riskguard.errors import NotFound, ValidationFailed
from riskguard.store.tables import utcnow

SOURCES = ("review", "graph", "complaint", "trace", "manual", "leak", "access")
#: sources whose alerts stay groups of their own (see the module docstring)
NO_MERGE_SOURCES = frozenset({"leak"})
STATUSES = ("open", "in_case", "closed")
SORTS = ("priority", "newest", "oldest")


@dataclass
class AlertIn:
    """One alert as a source reports it. ``score`` is on the source's own scale (priority.py maps it)."""

    source: str
    source_key: str
    kind: str
    title: str
    score: float | int | Decimal
    amount: Decimal | str | int | None
    entities: list[Entity]
    occurred_at: datetime
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recorded:
    new: int = 0
    updated: int = 0
    merged: int = 0
    unchanged: int = 0
    ids: list[int] = field(default_factory=list)

    def add(self, other: Recorded) -> None:
        self.new += other.new
        self.updated += other.updated
        self.merged += other.merged
        self.unchanged += other.unchanged
        self.ids.extend(other.ids)

    def as_dict(self) -> dict[str, int]:
        return {"new": self.new, "updated": self.updated, "merged": self.merged, "unchanged": self.unchanged}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


class AlertInbox:
    def __init__(self, engine: Engine, refs: EntityRefs, *, window: timedelta = timedelta(days=7)) -> None:
        self._engine = engine
        self.refs = refs
        self.window = window

    # ------------------------------------------------------------------ recording
    def record(self, alerts: Iterable[AlertIn], *, now: datetime | None = None, skip_known: bool = False) -> Recorded:
        """Records alerts in one transaction (see the module docstring). ``skip_known`` leaves rows whose key
        is already stored untouched (sources whose alerts never change, such as decisions).

        New alerts are written in bulk: one vault call for their personal entities, one insert of the rows,
        one query for the merge candidates among stored alerts (alerts of the same batch are merged in memory,
        in order), one insert of their entities and one update of their groups."""
        now = now or utcnow()
        out = Recorded()
        alerts = list(alerts)
        for alert in alerts:
            self._check(alert)
        if not alerts:
            return out
        with self._engine.begin() as connection:
            known: dict[tuple[str, str], Any] = {}
            for start in range(0, len(alerts), 500):
                chunk = alerts[start : start + 500]
                rows = connection.execute(
                    select(case_alerts.c.id, case_alerts.c.source, case_alerts.c.source_key, case_alerts.c.evidence)
                    .where(case_alerts.c.source.in_({a.source for a in chunk}))
                    .where(case_alerts.c.source_key.in_([a.source_key for a in chunk]))
                ).all()
                known.update({(r.source, r.source_key): r for r in rows})
            fresh: dict[tuple[str, str], AlertIn] = {}
            for alert in alerts:
                found = known.get((alert.source, alert.source_key))
                if found is None:
                    fresh[(alert.source, alert.source_key)] = alert  # a key given twice is one alert: the last
                    continue
                out.ids.append(int(found.id))
                if skip_known or sealing.loads(found.evidence) == json.loads(_dumps(alert.evidence)):
                    out.unchanged += 1
                    continue
                values = self._values(alert, now)
                connection.execute(update(case_alerts).where(case_alerts.c.id == found.id).values(**values))
                self._add_entities(connection, int(found.id), alert.entities)
                out.updated += 1
            if fresh:
                self._insert_new(connection, list(fresh.values()), now, out)
        return out

    def _values(self, alert: AlertIn, now: datetime) -> dict[str, Any]:
        bp = score_bp(alert.source, alert.kind, alert.score)
        amount = minor_of(alert.amount)
        return {
            "kind": alert.kind[:32],
            "title": sealing.text(self._engine, alert.title[:200]),
            "score_bp": bp,
            "amount_minor": amount,
            "priority_minor": priority_minor(bp, amount),
            "evidence": sealing.dumps(self._engine, alert.evidence),
            "occurred_at": alert.occurred_at,
            "last_seen_at": now,
        }

    def _insert_new(self, connection: Connection, alerts: list[AlertIn], now: datetime, out: Recorded) -> None:
        forms = sealing.stored(self._engine, connection, [e for a in alerts for e in a.entities])
        rows = [
            {
                "source": a.source,
                "source_key": a.source_key[:160],
                "status": "open",
                "first_seen_at": now,
                **self._values(a, now),
            }
            for a in alerts
        ]
        ids = [
            int(i)
            for i in connection.execute(
                insert(case_alerts).returning(case_alerts.c.id, sort_by_parameter_order=True), rows
            ).scalars()
        ]
        stored = [list(dict.fromkeys((k, forms[(k, v)]) for k, v in a.entities)) for a in alerts]
        merging = [a.source not in NO_MERGE_SOURCES for a in alerts]
        candidates = self._candidates(
            connection, {e for ents, m in zip(stored, merging, strict=True) if m for e in ents if e[0] in MERGE_KINDS}
        )
        groups, entity_rows, activity = [], [], []
        for alert, alert_id, ents, row, merges in zip(alerts, ids, stored, rows, merging, strict=True):
            low, high = alert.occurred_at - self.window, alert.occurred_at + self.window
            best: _Member | None = None
            for entity in ents if merges else ():
                for member in candidates.get(entity, ()):
                    if member.id == alert_id or not low <= member.occurred_at <= high:
                        continue
                    if best is None or (member.priority, -member.group) > (best.priority, -best.group):
                        best = member
            group, case = (best.group, best.case) if best is not None else (alert_id, None)
            groups.append(
                {"b_id": alert_id, "b_group": group, "b_case": case, "b_status": "in_case" if case else "open"}
            )
            entity_rows += [{"alert_id": alert_id, "kind": k, "value": v} for k, v in ents]
            me = _Member(alert_id, group, case, row["priority_minor"], alert.occurred_at)
            for entity in ents if merges else ():
                if entity[0] in MERGE_KINDS:
                    candidates.setdefault(entity, []).append(me)
            if best is not None:
                out.merged += 1
                if case is not None:
                    details = {"alert_id": alert_id, "source": alert.source, "why": "merged"}
                    activity.append(
                        {
                            "case_id": case,
                            "at": now,
                            "actor": "system",
                            "kind": "alert_added",
                            "details": sealing.dumps(self._engine, details),
                        }
                    )
            out.new += 1
            out.ids.append(alert_id)
        connection.execute(
            update(case_alerts)
            .where(case_alerts.c.id == bindparam("b_id"))
            .values(group_id=bindparam("b_group"), case_id=bindparam("b_case"), status=bindparam("b_status")),
            groups,
        )
        if entity_rows:
            connection.execute(insert(case_alert_entities), entity_rows)
        if activity:
            connection.execute(insert(case_activity), activity)

    def _candidates(self, connection: Connection, entities: set[Entity]) -> dict[Entity, list[_Member]]:
        """Stored alerts that are not closed, by each of ``entities`` they name (stored forms)."""
        out: dict[Entity, list[_Member]] = {}
        wanted = sorted(entities)
        for start in range(0, len(wanted), 200):
            chunk = wanted[start : start + 200]
            rows = connection.execute(
                select(
                    case_alert_entities.c.kind,
                    case_alert_entities.c.value,
                    case_alerts.c.id,
                    case_alerts.c.group_id,
                    case_alerts.c.case_id,
                    case_alerts.c.priority_minor,
                    case_alerts.c.occurred_at,
                )
                .join(case_alerts, case_alerts.c.id == case_alert_entities.c.alert_id)
                .where(tuple_(case_alert_entities.c.kind, case_alert_entities.c.value).in_(chunk))
                .where(case_alerts.c.status != "closed")
                .where(case_alerts.c.source.not_in(NO_MERGE_SOURCES))
                .where(case_alerts.c.group_id.is_not(None))
            ).all()
            for row in rows:
                member = _Member(int(row.id), int(row.group_id), row.case_id, int(row.priority_minor), row.occurred_at)
                out.setdefault((row.kind, row.value), []).append(member)
        return out

    @staticmethod
    def _check(alert: AlertIn) -> None:
        if alert.source not in SOURCES:
            raise ValidationFailed([{"loc": ["source"], "type": "value_error", "msg": f"one of {', '.join(SOURCES)}"}])
        if not alert.source_key:
            raise ValidationFailed([{"loc": ["source_key"], "type": "value_error", "msg": "must not be empty"}])
        if alert.occurred_at.tzinfo is None:
            raise ValidationFailed([{"loc": ["occurred_at"], "type": "value_error", "msg": "needs a time zone"}])

    def _add_entities(self, connection: Connection, alert_id: int, entities: list[Entity]) -> None:
        """Adds the entities an updated alert names now and did not before."""
        if not entities:
            return
        forms = sealing.stored(self._engine, connection, entities)
        have = {
            (r.kind, r.value)
            for r in connection.execute(
                select(case_alert_entities.c.kind, case_alert_entities.c.value).where(
                    case_alert_entities.c.alert_id == alert_id
                )
            )
        }
        rows = [
            {"alert_id": alert_id, "kind": kind, "value": forms[(kind, value)]}
            for kind, value in dict.fromkeys(entities)
            if (kind, forms[(kind, value)]) not in have
        ]
        if rows:
            connection.execute(insert(case_alert_entities), rows)

    # ------------------------------------------------------------------ reading
    def groups(
        self,
        *,
        status: str | None = "open",
        source: str | None = None,
        assignee: str | None = None,
        min_priority: Decimal | None = None,
        sort: str = "priority",
        limit: int = 50,
        offset: int = 0,
        revealed: bool = False,
    ) -> dict[str, Any]:
        """The inbox: one item per group, filtered and sorted, with ``total`` for paging."""
        errors = query_errors(
            limit, offset, {"status": (status, STATUSES), "source": (source, SOURCES), "sort": (sort, SORTS)}
        )
        if errors:
            raise ValidationFailed(errors)
        a = case_alerts
        group_priority = func.max(a.c.priority_minor).label("priority")
        query = select(
            a.c.group_id,
            group_priority,
            func.count().label("alerts"),
            func.max(a.c.last_seen_at).label("last_seen_at"),
            func.min(a.c.first_seen_at).label("first_seen_at"),
        ).group_by(a.c.group_id)
        if status is not None:
            query = query.where(a.c.status == status)
        if assignee is not None:
            query = query.where(a.c.assignee == assignee)
        if source is not None:
            members = select(a.c.group_id).where(a.c.source == source)
            query = query.where(a.c.group_id.in_(members))
        if min_priority is not None:
            query = query.having(func.max(a.c.priority_minor) >= minor_of(min_priority))
        order = {
            "priority": [group_priority.desc(), a.c.group_id],
            "newest": [func.max(a.c.last_seen_at).desc(), a.c.group_id.desc()],
            "oldest": [func.min(a.c.first_seen_at), a.c.group_id],
        }[sort]
        with self._engine.connect() as connection:
            total = connection.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            page = connection.execute(query.order_by(*order).limit(limit).offset(offset)).all()
            items = self._describe(connection, [int(r.group_id) for r in page], revealed=revealed)
        by_id = {item["group_id"]: item for item in items}
        return {
            "total": int(total),
            "offset": offset,
            "limit": limit,
            "masked": not revealed,
            "alerts": [by_id[int(r.group_id)] for r in page if int(r.group_id) in by_id],
        }

    def group(self, group_id: int, *, revealed: bool = False) -> dict[str, Any]:
        """One group with every member alert and its evidence."""
        with self._engine.connect() as connection:
            items = self._describe(connection, [group_id], revealed=revealed, members=True)
        if not items:
            raise NotFound(f"no alert {group_id}")
        return items[0]

    def group_of(self, alert_id: int) -> int:
        with self._engine.connect() as connection:
            found = connection.execute(select(case_alerts.c.group_id).where(case_alerts.c.id == alert_id)).scalar()
        if found is None:
            raise NotFound(f"no alert {alert_id}")
        return int(found)

    def _describe(
        self, connection: Connection, group_ids: list[int], *, revealed: bool, members: bool = False
    ) -> list[dict[str, Any]]:
        if not group_ids:
            return []
        rows = connection.execute(
            select(case_alerts).where(case_alerts.c.group_id.in_(group_ids)).order_by(case_alerts.c.id)
        ).all()
        entity_rows = connection.execute(
            select(case_alerts.c.group_id, case_alert_entities.c.kind, case_alert_entities.c.value)
            .join(case_alerts, case_alerts.c.id == case_alert_entities.c.alert_id)
            .where(case_alerts.c.group_id.in_(group_ids))
        ).all()
        plain = sealing.opened(self._engine, connection, [r.value for r in entity_rows])
        entities: dict[int, dict[Entity, None]] = {}
        for row in entity_rows:
            entities.setdefault(int(row.group_id), {})[(row.kind, plain.get(row.value, row.value))] = None
        grouped: dict[int, list[Any]] = {}
        for row in rows:
            grouped.setdefault(int(row.group_id), []).append(row)
        out = []
        for group_id, alerts in grouped.items():
            head = next((r for r in alerts if r.id == group_id), alerts[0])
            top = max(alerts, key=lambda r: (r.priority_minor, -r.id))
            statuses = {r.status for r in alerts}
            ents = sorted(entities.get(group_id, {}), key=lambda e: (_KIND_ORDER.get(e[0], 9), e[1]))
            item: dict[str, Any] = {
                "group_id": group_id,
                "id": group_id,
                "title": sealing.plain(head.title),
                "kind": head.kind,
                "source": head.source,
                "sources": sorted({r.source for r in alerts}),
                "status": "open" if "open" in statuses else ("in_case" if "in_case" in statuses else "closed"),
                "case_id": next((r.case_id for r in alerts if r.case_id is not None), None),
                "assignee": head.assignee,
                "alerts": len(alerts),
                "score": str(unit_of(top.score_bp)),
                "amount_at_risk": str(decimal_of(max(r.amount_minor for r in alerts))),
                "priority": str(decimal_of(top.priority_minor)),
                "occurred_at": min(r.occurred_at for r in alerts).isoformat(),
                "first_seen_at": min(r.first_seen_at for r in alerts).isoformat(),
                "last_seen_at": max(r.last_seen_at for r in alerts).isoformat(),
                "entity_count": len(ents),
                "entities": [self.refs.describe(k, v, revealed=revealed) for k, v in ents[:50]],
                "masked": not revealed,
            }
            if members:
                item["entities"] = [self.refs.describe(k, v, revealed=revealed) for k, v in ents]
                item["members"] = [alert_dict(r, revealed=revealed) for r in alerts]
            out.append(item)
        return out

    # ------------------------------------------------------------------ changing
    def assign(self, connection: Connection, group_ids: list[int], assignee: str | None) -> int:
        result = connection.execute(
            update(case_alerts).where(case_alerts.c.group_id.in_(group_ids)).values(assignee=assignee)
        )
        return int(result.rowcount or 0)

    def attach(self, connection: Connection, group_ids: list[int], case_id: int) -> list[int]:
        """Puts whole groups into a case; returns the member alert ids. Refuses closed or foreign groups."""
        rows = connection.execute(
            select(case_alerts.c.id, case_alerts.c.group_id, case_alerts.c.status, case_alerts.c.case_id).where(
                case_alerts.c.group_id.in_(group_ids)
            )
        ).all()
        found = {int(r.group_id) for r in rows}
        missing = sorted(set(group_ids) - found)
        if missing:
            raise NotFound(f"no alert {missing[0]}")
        taken = sorted({int(r.group_id) for r in rows if r.case_id is not None and r.case_id != case_id})
        if taken:
            raise ValidationFailed(
                [{"loc": ["body", "alert_ids"], "type": "value_error", "msg": f"alert {taken[0]} is already in a case"}]
            )
        closed = sorted({int(r.group_id) for r in rows if r.status == "closed"})
        if closed:
            raise ValidationFailed(
                [{"loc": ["body", "alert_ids"], "type": "value_error", "msg": f"alert {closed[0]} is closed"}]
            )
        connection.execute(
            update(case_alerts).where(case_alerts.c.group_id.in_(group_ids)).values(case_id=case_id, status="in_case")
        )
        return [int(r.id) for r in rows]

    @staticmethod
    def set_case_status(connection: Connection, case_id: int, status: str) -> None:
        connection.execute(update(case_alerts).where(case_alerts.c.case_id == case_id).values(status=status))

    def entities_of_case(
        self, connection: Connection, case_id: int, *, except_sources: frozenset[str] = frozenset()
    ) -> list[Entity]:
        """The case's entities; ``except_sources``: leaving out what only alerts of those sources name."""
        query = (
            select(case_alert_entities.c.kind, case_alert_entities.c.value)
            .join(case_alerts, case_alerts.c.id == case_alert_entities.c.alert_id)
            .where(case_alerts.c.case_id == case_id)
        )
        if except_sources:
            query = query.where(case_alerts.c.source.not_in(except_sources))
        rows = connection.execute(query).all()
        plain = sealing.opened(self._engine, connection, [r.value for r in rows])
        found = {(r.kind, plain.get(r.value, r.value)) for r in rows}
        return sorted(found, key=lambda e: (_KIND_ORDER.get(e[0], 9), e[1]))

    @staticmethod
    def alerts_of_case(connection: Connection, case_id: int) -> list[Any]:
        return connection.execute(
            select(case_alerts).where(case_alerts.c.case_id == case_id).order_by(case_alerts.c.id)
        ).all()


@dataclass
class _Member:
    """An alert as a merge candidate."""

    id: int
    group: int
    case: int | None
    priority: int
    occurred_at: datetime


def alert_dict(row: Any, *, revealed: bool) -> dict[str, Any]:
    """One alert row as callers see it (evidence opened, masked unless ``revealed``)."""
    evidence = sealing.loads(row.evidence)
    return {
        "id": row.id,
        "source": row.source,
        "source_key": row.source_key,
        "kind": row.kind,
        "title": sealing.plain(row.title),
        "status": row.status,
        "score": str(unit_of(row.score_bp)),
        "amount_at_risk": str(decimal_of(row.amount_minor)),
        "priority": str(decimal_of(row.priority_minor)),
        "occurred_at": row.occurred_at.isoformat(),
        "first_seen_at": row.first_seen_at.isoformat(),
        "last_seen_at": row.last_seen_at.isoformat(),
        "evidence": evidence if revealed else masked_evidence(evidence),
    }


_KIND_ORDER = {"actor": -1, "account": 0, "phone": 1, "device": 2, "card": 3, "ip": 4, "merchant": 5}
