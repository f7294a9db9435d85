"""The dashboard's figures, from the decisions, events and labels tables.

Definitions match docs/replay.md, so the console and a replay report agree on the same events:

- **loss rate**: value of fraud-labelled money-moving events (payment, transfer, withdrawal) that were
  allowed, over the value of all money-moving events;
- **friction**: share of legitimate (not fraud-labelled) events that were challenged or blocked;
- an event is fraud when a ``fraud`` label names it, or names its account as an entity.

The window is the latest ``days`` days of event time that hold decisions, read at most ``max_rows`` rows
(newest first), so the page stays fast on a large installation; the page says when the cap was hit.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from threading import Lock
from typing import Any

import msgspec
from sqlalchemy import Engine, case, func, select

from riskguard.privacy.fields import open_document
from riskguard.store.tables import decisions, events, labels

OUTCOMES = ("allow", "challenge", "review", "block")
MONEY_TYPES = {"payment", "transfer", "withdrawal"}
_decode = msgspec.json.Decoder(dict).decode  # several times faster than json.loads on decision bodies


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def compute(engine: Engine, *, days: int = 7, max_rows: int = 200_000) -> dict[str, Any]:
    with engine.connect() as connection:
        latest = connection.execute(
            select(func.max(events.c.occurred_at)).select_from(
                events.join(decisions, decisions.c.event_id == events.c.event_id)
            )
        ).scalar()
        if latest is None:
            return {"empty": True, "days": days}
        if isinstance(latest, str):  # SQLite aggregate results bypass the column type
            from datetime import datetime

            latest = datetime.fromisoformat(latest)
        since = latest - timedelta(days=days)
        rows = connection.execute(
            select(
                events.c.event_id,
                events.c.type,
                events.c.occurred_at,
                events.c.account_id,
                # only what a figure reads: payloads of money-moving events (amounts), bodies of non-allow
                # decisions (rules); the rest stays in the database
                case((events.c.type.in_(sorted(MONEY_TYPES)), events.c.payload), else_=None).label("payload"),
                decisions.c.decision,
                decisions.c.latency_ms,
                case((decisions.c.decision != "allow", decisions.c.body), else_=None).label("body"),
            )
            .select_from(events.join(decisions, decisions.c.event_id == events.c.event_id))
            .where(events.c.occurred_at > since)
            .order_by(events.c.occurred_at.desc())
            .limit(max_rows)
        ).all()
        fraud_rows = connection.execute(
            select(labels.c.event_id, labels.c.entity_kind, labels.c.entity_value).where(labels.c.label == "fraud")
        ).all()
    fraud_events = {r.event_id for r in fraud_rows if r.event_id}
    fraud_accounts = {r.entity_value for r in fraud_rows if r.entity_kind in ("account", "account_id")}
    hourly = (latest - min(r.occurred_at for r in rows)) <= timedelta(days=2)
    per_bucket: dict[str, Counter[str]] = {}
    rule_hits: Counter[str] = Counter()
    latencies: list[float] = []
    total_value = Decimal(0)
    lost_value = Decimal(0)
    legit = flagged_legit = fraud = caught = 0
    for r in rows:
        stamp = r.occurred_at.strftime("%Y-%m-%d %H:00" if hourly else "%Y-%m-%d")
        per_bucket.setdefault(stamp, Counter())[r.decision] += 1
        latencies.append(float(r.latency_ms))
        is_fraud = r.event_id in fraud_events or r.account_id in fraud_accounts
        if is_fraud:
            fraud += 1
            caught += r.decision != "allow"
        else:
            legit += 1
            flagged_legit += r.decision in ("challenge", "block")
        if r.payload is not None:
            try:
                amount = Decimal(str(_decode(r.payload).get("amount") or 0))
            except (InvalidOperation, ValueError, msgspec.DecodeError):
                amount = Decimal(0)
            total_value += amount
            if is_fraud and r.decision == "allow":
                lost_value += amount
        if r.body is not None:
            for reason in _decode(open_document(r.body)).get("reasons", []):
                rule_hits[reason.get("rule") or reason.get("code") or "?"] += 1
    buckets = sorted(per_bucket)
    return {
        "empty": False,
        "days": days,
        "since": since,
        "latest": latest,
        "events": len(rows),
        "capped": len(rows) >= max_rows,
        "hourly": hourly,
        "buckets": buckets,
        "series": {o: [per_bucket[b][o] for b in buckets] for o in OUTCOMES},
        "totals": {o: sum(per_bucket[b][o] for b in buckets) for o in OUTCOMES},
        "loss_rate": float(lost_value / total_value) if total_value else None,
        "loss_value": lost_value,
        "total_value": total_value,
        "friction": flagged_legit / legit if legit else None,
        "recall": caught / fraud if fraud else None,
        "fraud_events": fraud,
        "legit_events": legit,
        "top_rules": rule_hits.most_common(10),
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
    }


class DashboardCache:
    """The dashboard recomputed at most every ``ttl`` seconds (several analysts refresh the same page)."""

    def __init__(self, engine: Engine, ttl: float = 30.0) -> None:
        self._engine, self._ttl = engine, ttl
        self._lock = Lock()
        self._value: tuple[float, int, dict[str, Any]] | None = None

    def get(self, days: int = 7) -> dict[str, Any]:
        with self._lock:
            if self._value is not None and self._value[1] == days and time.monotonic() - self._value[0] < self._ttl:
                return self._value[2]
        value = compute(self._engine, days=days)
        with self._lock:
            self._value = (time.monotonic(), days, value)
        return value
