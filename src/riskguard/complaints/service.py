"""The complaints analyser inside a running riskguard: stored records, ring alerts, published features.

``ComplaintService(guard)`` keeps one :class:`ComplaintAnalyzer` in memory, built from the
``complaint_records`` table the first time it is needed and brought up to date (records another process
stored) before each call:

- ``analyze(events, actor)``: files complaints, applications and transfers one at a time, stores them
  with the assessment they got, updates the alerts of the rings they joined and publishes those rings'
  features; returns the assessments, masked;
- ``refresh(frame, actor)``: stores the complaints, applications and transfers of ``frame`` (Parquet
  envelope rows, e.g. a world's events) that are new, rebuilds the analyser in bulk from everything
  stored, rewrites every ring alert (closing those of rings merged away) and republishes the features
  whole;
- ``clusters(...)`` / ``cluster(alert_id, unmask, actor)``: the alerts, masked unless an admin asks for
  the evidence view, which is audited.

Published features (``rg.publish_features``), for strategies to read as ``aggregate: published``:
``complaints.agent_ring_member`` (customer account → customers in its ring), ``complaints.agent_payee``
(a receiving account shared in a ring → customers naming or paying it: look it up by
``counterparty_id``), ``complaints.agent_device`` (a submitting device shared in a ring → customers).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy import func, insert, select

from riskguard.complaints.alerts import ComplaintAlertRepository
from riskguard.complaints.analyzer import AnalyzerConfig, Assessment, ComplaintAnalyzer, Ring
from riskguard.complaints.evidence import mask_evidence, ring_alert
from riskguard.complaints.records import ENVELOPE_COLUMNS, KINDS, Record, from_event, from_fields
from riskguard.complaints.tables import complaint_records
from riskguard.events.schema import Event, to_json
from riskguard.privacy.fields import open_document, seal_event
from riskguard.privacy.service import sealer_for
from riskguard.store.tables import utcnow

SOURCES = ("complaints.agent_ring_member", "complaints.agent_payee", "complaints.agent_device")
_CHUNK = 5_000


def ring_features(analyzer: ComplaintAnalyzer, rings: Iterable[Ring]) -> dict[str, dict[str, float]]:
    members: dict[str, float] = {}
    payees: dict[str, float] = {}
    devices: dict[str, float] = {}
    for ring in rings:
        rids = ring.members + [rid for rid, _anchor, _similarity in ring.attached]
        for rid in rids:
            account = analyzer.records[rid].account
            members[account] = max(members.get(account, 0.0), float(ring.customers))
        owners: dict[tuple[str, str], set[str]] = {}
        for rid in ring.members:
            for ident in analyzer.identifiers(rid):
                owners.setdefault(ident, set()).add(analyzer.records[rid].account)
        for (kind, value), customers in owners.items():
            target = payees if kind == "receiving_account" else devices if kind == "device" else None
            if target is not None and len(customers) >= 2:
                target[value] = max(target.get(value, 0.0), float(len(customers)))
    return dict(zip(SOURCES, (members, payees, devices), strict=True))


class ComplaintService:
    def __init__(self, guard: Any, config: AnalyzerConfig | None = None) -> None:
        self.guard = guard
        self.engine = guard.engine
        self.config = config or AnalyzerConfig()
        self.alerts = ComplaintAlertRepository(guard.engine)
        self._lock = threading.Lock()
        self._analyzer: ComplaintAnalyzer | None = None
        self._loaded = 0

    # ------------------------------------------------------------------ state
    def _stored_since(self, after_id: int) -> list[tuple[int, str]]:
        query = (
            select(complaint_records.c.id, complaint_records.c.payload)
            .where(complaint_records.c.id > after_id)
            .order_by(complaint_records.c.id)
        )
        with self.engine.connect() as connection:
            return [(row.id, str(open_document(row.payload))) for row in connection.execute(query)]

    def _sync(self) -> ComplaintAnalyzer:
        rows = self._stored_since(self._loaded)
        if self._analyzer is None:
            self._analyzer = ComplaintAnalyzer(self.config)
            if rows:
                self._analyzer.build(from_fields(json.loads(payload)) for _id, payload in rows)
        else:
            analyzer = self._analyzer
            for _id, payload in rows:
                body = json.loads(payload)
                if body["event_id"] not in analyzer.rid_of and body["event_id"] not in analyzer.transfers:
                    analyzer.add(from_fields(body))
        if rows:
            self._loaded = rows[-1][0]
        return self._analyzer

    def _rows(self, items: list[tuple[str, Record, Assessment | None]]) -> list[dict[str, Any]]:
        now = utcnow()
        return [
            {
                "event_id": record.event_id,
                "kind": record.kind,
                "account_id": record.account,
                "occurred_at": datetime.fromtimestamp(record.at_ms / 1000, UTC),
                "payload": self._seal(payload),
                "score": assessment.score if assessment else None,
                "route": assessment.route if assessment else None,
                "signals": json.dumps(
                    [s.to_dict() for s in assessment.signals] if assessment else [], ensure_ascii=False
                ),
                "analysed_at": now,
            }
            for payload, record, assessment in items
        ]

    def _seal(self, payload: str) -> str:
        """The event envelope with its personal fields sealed (field encryption at rest)."""
        cipher = sealer_for(self.engine)
        if cipher is None:
            return payload
        return json.dumps(seal_event(cipher, json.loads(payload)), ensure_ascii=False)

    def _store(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.engine.begin() as connection:
            known = set()
            for start in range(0, len(rows), _CHUNK):
                ids = [r["event_id"] for r in rows[start : start + _CHUNK]]
                known |= set(
                    connection.execute(
                        select(complaint_records.c.event_id).where(complaint_records.c.event_id.in_(ids))
                    ).scalars()
                )
            fresh = [r for r in rows if r["event_id"] not in known]
            for start in range(0, len(fresh), _CHUNK):
                connection.execute(insert(complaint_records), fresh[start : start + _CHUNK])

    def _publish(self, analyzer: ComplaintAnalyzer, rings: list[Ring], *, replace: bool, actor: str) -> dict[str, int]:
        counts = {}
        for source, values in ring_features(analyzer, rings).items():
            if values or replace:
                counts[source] = self.guard.publish_features(source, values, replace=replace, actor=actor)
        return counts

    # ------------------------------------------------------------------ calls
    def analyze(self, events: list[Event], actor: str) -> list[dict[str, Any]]:
        """Files each event (complaint, loan application or transfer) and returns its assessment."""
        records = [from_event(e, ["body", "events", i] if len(events) > 1 else ["body"]) for i, e in enumerate(events)]
        with self._lock:
            analyzer = self._sync()
            results: list[tuple[Record, Assessment | None, bool]] = []
            new: list[tuple[str, Record, Assessment | None]] = []
            for event, record in zip(events, records, strict=True):
                known = record.event_id in analyzer.rid_of or record.event_id in analyzer.transfers
                fees = analyzer.fee_links
                assessment = analyzer.add(record)
                results.append((record, assessment, analyzer.fee_links > fees))
                if not known:
                    new.append((to_json(event).decode(), record, assessment))
            self._store(self._rows(new))
            touched = {a.ring for _r, a, _f in results if a is not None and a.ring}
            rings = [ring for ring in analyzer.rings() if ring.key in touched] if touched else []
            if rings:
                self.alerts.upsert([ring_alert(analyzer, ring) for ring in rings])
                self._publish(analyzer, rings, replace=False, actor=actor)
        ids = self._alert_ids(touched)
        out = []
        for record, assessment, linked in results:
            if assessment is None:
                out.append({"event_id": record.event_id, "kind": "transfer", "fee_linked": linked})
                continue
            body = assessment.to_dict()
            if body["ring"]:
                body["ring"]["alert_id"] = ids.get(assessment.ring)
            out.append(body)
        return out

    def _alert_ids(self, keys: set[str | None]) -> dict[str, int]:
        if not keys:
            return {}
        table = self.alerts._table
        with self.engine.connect() as connection:
            rows = connection.execute(select(table.c.key, table.c.id).where(table.c.key.in_(list(keys))))
            return {key: alert_id for key, alert_id in rows}

    def refresh(self, frame: pl.DataFrame | None = None, *, actor: str) -> dict[str, Any]:
        """Stores new records from ``frame``, rebuilds in bulk, rewrites alerts, republishes features."""
        started = time.perf_counter()
        with self._lock:
            stored = self._stored_since(0)
            bodies = [json.loads(payload) for _id, payload in stored]
            known = {b["event_id"] for b in bodies}
            incoming: list[tuple[str, dict[str, Any]]] = []
            if frame is not None and frame.height:
                rows = frame.filter(pl.col("type").is_in(list(KINDS)))
                for body in rows.select([c for c in ENVELOPE_COLUMNS if c in rows.columns]).iter_rows(named=True):
                    if body["event_id"] in known:
                        continue
                    known.add(body["event_id"])
                    body = {k: v for k, v in body.items() if v is not None}
                    if isinstance(body.get("attributes"), str):
                        body["attributes"] = json.loads(body["attributes"])
                    incoming.append((json.dumps(body, ensure_ascii=False, default=str), body))
            records = [from_fields(b) for b in bodies] + [
                from_fields(b, ["events", i]) for i, (_p, b) in enumerate(incoming)
            ]
            analyzer = ComplaintAnalyzer(self.config)
            assessments = {a.event_id: a for a in analyzer.build(records)}
            fresh = records[len(bodies) :]
            self._store(
                self._rows([(p, r, assessments.get(r.event_id)) for (p, _b), r in zip(incoming, fresh, strict=True)])
            )
            rings = analyzer.rings()
            alerts = [ring_alert(analyzer, ring) for ring in rings]
            new_alerts = self.alerts.upsert(alerts)
            closed = self.alerts.close_missing({a["key"] for a in alerts}, actor)
            published = self._publish(analyzer, rings, replace=True, actor=actor)
            self._analyzer = analyzer
            with self.engine.connect() as connection:
                self._loaded = connection.execute(select(func.max(complaint_records.c.id))).scalar() or 0
        routes = Counter(a.route for a in assessments.values())
        return {
            "records": len(analyzer),
            "new_records": len(fresh),
            "complaints": sum(1 for r in analyzer.records if r.kind == "complaint"),
            "loan_applications": sum(1 for r in analyzer.records if r.kind == "loan_application"),
            "transfers": len(analyzer.transfers),
            "rings": len(rings),
            "new_alerts": new_alerts,
            "closed_alerts": closed,
            "routes": dict(routes),
            "published": published,
            "seconds": round(time.perf_counter() - started, 2),
        }

    def clusters(
        self, *, status: str | None = "open", kind: str | None = None, after_id: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]:
        return [
            {**alert, "evidence": mask_evidence(alert["evidence"])}
            for alert in self.alerts.list(status=status, kind=kind, limit=limit, after_id=after_id)
        ]

    def cluster(self, alert_id: int, *, unmask: bool = False, actor: str) -> dict[str, Any]:
        alert = self.alerts.get(alert_id)
        if unmask:
            self.guard.audit.record(actor, "complaint_alert.unmasked_view", str(alert_id), {"key": alert["key"]})
            return alert
        return {**alert, "evidence": mask_evidence(alert["evidence"])}
