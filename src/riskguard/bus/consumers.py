"""The post-event monitoring jobs that run from the bus (``riskguard consume NAME``).

- ``flows``: every transfer and withdrawal that was not blocked, folded into ``bus_account_flows`` (count
  and exact decimal sum received and sent, per account and currency) in the transaction that records the
  event as processed; then the mule features ``bus.pass_through`` (of the money an account received, the
  share it sent on: min(sent, received) / received, once it received twice or more) and
  ``bus.inflows`` (transfers received) are published for the accounts it touched, for rules to read
  (``aggregate: published``) — at most once a second, and when the consumer stops. At start it
  republishes every account's values, so a crash between the commit and the publication leaves nothing
  stale.
- ``complaints``: complaints, loan applications and the transfers their customers make go to the
  organised-complaint analyser (``riskguard.complaints``): records filed once per event id, suspected
  agent rings raised as complaint alerts, ring features published.
- ``graph``: events folded into the entity graph (``riskguard.graph``) as they arrive — rebuilt from the
  event log at start, each event id once — and every ``analyse_every_s`` the rings, dense blocks and
  laundering motifs analysed again: graph features published and ring and block alerts recorded, as
  ``riskguard graph refresh`` does in batch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import polars as pl
from sqlalchemy import Connection, bindparam, insert, select, tuple_, update

from riskguard.bus.runner import Message
from riskguard.bus.tables import bus_account_flows
from riskguard.events.schema import to_json
from riskguard.graph.build import DAY_MS
from riskguard.store.tables import utcnow

log = logging.getLogger("riskguard.bus.consumers")

MONEY_OUT = ("transfer", "withdrawal")


class FlowsConsumer:
    name = "flows"
    transactional = True

    def __init__(self, guard: Any, *, actor: str = "bus.flows", publish_every_s: float = 1.0) -> None:
        self.guard = guard
        self.engine = guard.engine
        self.actor = actor
        self.publish_every_s = publish_every_s
        self._touched: set[str] = set()
        self._due: set[str] = set()  # accounts changed since the features were last published
        self._published_at = 0.0
        table = bus_account_flows
        self._update = (
            update(table)
            .where(table.c.account_id == bindparam("k_account"), table.c.currency == bindparam("k_currency"))
            .values(
                received_count=bindparam("received_count"),
                received_amount=bindparam("received_amount"),
                sent_count=bindparam("sent_count"),
                sent_amount=bindparam("sent_amount"),
                updated_at=bindparam("updated_at"),
            )
        )

    @staticmethod
    def deltas(messages: Sequence[Message]) -> dict[tuple[str, str], list[Any]]:
        """(account, currency) → [received count, received sum, sent count, sent sum] of ``messages``."""
        out: dict[tuple[str, str], list[Any]] = {}
        for message in messages:
            event = message.event
            if event.type not in MONEY_OUT or message.decision["decision"] == "block":
                continue
            if event.amount is None or event.currency is None:
                continue
            sent = out.setdefault((event.account_id, event.currency), [0, Decimal(0), 0, Decimal(0)])
            sent[2] += 1
            sent[3] += event.amount
            if event.type == "transfer" and event.counterparty_id:
                got = out.setdefault((event.counterparty_id, event.currency), [0, Decimal(0), 0, Decimal(0)])
                got[0] += 1
                got[1] += event.amount
        return out

    def start(self) -> None:
        self._publish(None, replace=True)

    def apply(self, connection: Connection | None, messages: Sequence[Message]) -> None:
        assert connection is not None
        deltas = self.deltas(messages)
        self._touched = {account for account, _currency in deltas}  # read by ``after``, once committed
        if not deltas:
            return
        table = bus_account_flows
        keys = sorted(deltas)
        query = select(table).where(tuple_(table.c.account_id, table.c.currency).in_(keys))
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        known = {(row.account_id, row.currency): row for row in connection.execute(query)}
        now = utcnow()
        fresh, changed = [], []
        for key in keys:
            rc, ra, sc, sa = deltas[key]
            row = known.get(key)
            if row is None:
                fresh.append(
                    {
                        "account_id": key[0],
                        "currency": key[1],
                        "received_count": rc,
                        "received_amount": str(ra),
                        "sent_count": sc,
                        "sent_amount": str(sa),
                        "updated_at": now,
                    }
                )
            else:
                changed.append(
                    {
                        "k_account": key[0],
                        "k_currency": key[1],
                        "received_count": row.received_count + rc,
                        "received_amount": str(Decimal(row.received_amount) + ra),
                        "sent_count": row.sent_count + sc,
                        "sent_amount": str(Decimal(row.sent_amount) + sa),
                        "updated_at": now,
                    }
                )
        if changed:
            connection.execute(self._update, changed)
        if fresh:
            connection.execute(insert(table), fresh)

    def after(self, messages: Sequence[Message]) -> None:
        self._due |= self._touched
        if self._due and time.monotonic() - self._published_at >= self.publish_every_s:
            self._publish(self._due, replace=False)
            self._due = set()
            self._published_at = time.monotonic()

    def features(self, accounts: set[str] | None) -> dict[str, dict[str, float]]:
        """``bus.pass_through`` and ``bus.inflows`` of ``accounts`` (None: every account)."""
        table = bus_account_flows
        query = select(table)
        if accounts is not None:
            query = query.where(table.c.account_id.in_(sorted(accounts)))
        ratio: dict[str, float] = {}
        inflows: dict[str, float] = {}
        with self.engine.connect() as connection:
            for row in connection.execute(query):
                inflows[row.account_id] = inflows.get(row.account_id, 0.0) + row.received_count
                received = Decimal(row.received_amount)
                if row.received_count >= 2 and received > 0:
                    share = float(min(Decimal(row.sent_amount), received) / received)
                    ratio[row.account_id] = max(ratio.get(row.account_id, 0.0), share)
        return {"bus.pass_through": ratio, "bus.inflows": {k: v for k, v in inflows.items() if v > 0}}

    def _publish(self, accounts: set[str] | None, *, replace: bool) -> None:
        for source, values in self.features(accounts).items():
            if values or replace:
                self.guard.published.publish(source, values, replace=replace, actor=self.actor)

    def totals(self) -> dict[str, dict[str, Any]]:
        """Every account's flows: {account: {currency: (received count, received sum, sent count, sent sum)}}."""
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as connection:
            for row in connection.execute(select(bus_account_flows)):
                out.setdefault(row.account_id, {})[row.currency] = (
                    row.received_count,
                    Decimal(row.received_amount),
                    row.sent_count,
                    Decimal(row.sent_amount),
                )
        return out

    def close(self) -> None:
        if self._due:
            self._publish(self._due, replace=False)
            self._due = set()


class ComplaintsConsumer:
    name = "complaints"
    transactional = False
    KINDS = ("complaint", "loan_application")

    def __init__(self, guard: Any, *, actor: str = "bus.complaints") -> None:
        from riskguard.complaints.service import ComplaintService

        self.service = ComplaintService(guard)
        self.actor = actor
        self._owners: set[str] = set()
        self._known = -1

    def start(self) -> None:
        pass

    def _customers(self) -> set[str]:
        """Accounts that complained or applied: their transfers may pay an intermediary's fee."""
        analyzer = self.service._sync()
        if len(analyzer.records) != self._known:
            self._owners = {record.account for record in analyzer.records}
            self._known = len(analyzer.records)
        return self._owners

    def apply(self, connection: Connection | None, messages: Sequence[Message]) -> None:
        filed = [m.event for m in messages if m.event.type in self.KINDS]
        customers = self._customers() | {e.account_id for e in filed}
        transfers = [m.event for m in messages if m.event.type == "transfer" and m.event.account_id in customers]
        picked = {e.event_id for e in filed + transfers}
        ordered = [m.event for m in messages if m.event.event_id in picked]  # arrival order, as the API does
        if ordered:
            self.service.analyze(ordered, self.actor)

    def after(self, messages: Sequence[Message]) -> None:
        pass

    def close(self) -> None:
        pass


class GraphConsumer:
    name = "graph"
    transactional = False

    def __init__(
        self, guard: Any, *, window_days: int = 90, analyse_every_s: float = 60.0, actor: str = "bus.graph"
    ) -> None:
        from riskguard.graph.build import GraphConfig
        from riskguard.graph.refresh import RefreshConfig

        self.guard = guard
        self.config = RefreshConfig(graph=GraphConfig(window_days=window_days))
        self.window_days = window_days
        self.analyse_every_s = analyse_every_s
        self.actor = actor
        self.graph: Any = None
        self.seen: dict[str, int] = {}  # event ids folded in → event time (ms), forgotten past the window
        self._dirty = False
        self._analysed_at = 0.0
        self.analyses = 0

    def start(self) -> None:
        from riskguard.graph.build import EntityGraph
        from riskguard.graph.refresh import events_from_store

        self.graph = EntityGraph(self.config.graph)
        frame = events_from_store(self.guard, self.window_days)
        if frame.height:
            self.graph.update(frame)
            times = [_ms(datetime.fromisoformat(text)) for text in frame["occurred_at"].to_list()]
            self.seen = dict(zip(frame["event_id"].to_list(), times, strict=True))
        self._dirty = True
        self._analyse()

    def apply(self, connection: Connection | None, messages: Sequence[Message]) -> None:
        rows = []
        for message in messages:
            if message.event_id in self.seen:
                continue
            body = json.loads(to_json(message.event))
            body["attributes"] = json.dumps(body.get("attributes") or {}, ensure_ascii=False)
            rows.append(body)
        if rows:
            self.graph.update(pl.DataFrame(rows, infer_schema_length=None))
            self.seen.update((m.event_id, _ms(m.event.occurred_at)) for m in messages)
            self._dirty = True

    def after(self, messages: Sequence[Message]) -> None:
        if time.monotonic() - self._analysed_at >= self.analyse_every_s:
            self._analyse()

    def _analyse(self) -> None:
        from riskguard.graph.alerts import GraphAlertRepository
        from riskguard.graph.refresh import analyse, labels_from_store

        if not self._dirty or self.graph is None or self.graph.edges == 0:
            return
        if self.graph.latest_ms is not None:  # what fell out of the window is gone from the graph too
            since = self.graph.latest_ms - self.window_days * DAY_MS
            self.seen = {event_id: at for event_id, at in self.seen.items() if at >= since}
        result = analyse(self.graph, labels_from_store(self.guard), self.config)
        for source, values in result.features.items():
            self.guard.published.publish(source, values, replace=True, actor=self.actor)
        GraphAlertRepository(self.guard.engine).upsert(result.alerts(), utcnow())
        self._dirty = False
        self._analysed_at = time.monotonic()
        self.analyses += 1

    def close(self) -> None:
        pass


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


CONSUMERS = {"flows": FlowsConsumer, "complaints": ComplaintsConsumer, "graph": GraphConsumer}


def make_consumer(name: str, guard: Any) -> Any:
    return CONSUMERS[name](guard)
