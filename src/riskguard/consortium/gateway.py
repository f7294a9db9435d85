"""Turns consortium hits into what a riskguard strategy reads: published features and a watch list.

A member tells its gateway which of its own identifiers to watch (payees, counterparties, customers):
the gateway tokenises them with the token service and keeps token → identifier in its own database
(``consortium_watch``; it never leaves the member). On each refresh it intersects the watched tokens
with the live reports and publishes, keyed by the member's identifiers:

- ``consortium.reported``: 1 for every watched identifier with a live report;
- ``consortium.reporters``: how many members report it;
- ``consortium.categories``: how many categories; ``consortium.severity``: the highest severity;
- ``consortium.<category>`` (``consortium.mule``, ``consortium.telecom_fraud``, ...): 1 per category;
- ``consortium.under_appeal``: 1 while an appeal is open;

and keeps the list ``consortium_reported`` (a watch list, expiring with the reports) in step. Every
source is published with ``replace=True``, so a retraction, an overturned appeal or an expiry removes
the hit at the next refresh.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from riskguard.consortium.entries import CATEGORIES
from riskguard.consortium.signals import violations
from riskguard.consortium.state import LedgerState
from riskguard.consortium.tables import consortium_watch
from riskguard.consortium.tokens import TokenClient, normalise
from riskguard.errors import ConfigError
from riskguard.privacy.service import lookup_keys, open_rows, token_values
from riskguard.store.tables import utcnow

log = logging.getLogger("riskguard.consortium")
LIST_NAME = "consortium_reported"
ACTOR = "consortium-gateway"


def source_of(category: str) -> str:
    return "consortium." + category.replace("-", "_")


SOURCES = (
    "consortium.reported",
    "consortium.reporters",
    "consortium.categories",
    "consortium.severity",
    "consortium.under_appeal",
    *(source_of(c) for c in CATEGORIES),
)


class StrategyBreaksSignalRule(ConfigError):
    """The live strategy would block on consortium hits alone."""


class Gateway:
    def __init__(self, guard: Any, engine: Engine, tokens: TokenClient) -> None:
        self.guard = guard
        self.engine = engine
        self.tokens = tokens
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._published: dict[str, dict[str, float]] = {}
        self._listed: dict[str, datetime] | None = None

    def watch(self, kind: str, values: list[str]) -> int:
        """Tokenises ``values`` (identifiers of ``kind``, as this member's events spell them) and watches
        them; returns how many are new."""
        for value in values:
            normalise(kind, value)  # refuses what cannot be tokenised before anything is sent
        wanted = list(dict.fromkeys(values))
        known = self._known(kind, wanted)
        fresh = [v for v in wanted if v not in known]
        if not fresh:
            return 0
        tokens = self.tokens.tokens(kind, fresh)
        now = utcnow()
        with self.engine.begin() as connection:
            stored = token_values(connection, self.engine, fresh)  # our own token; the value sealed in the vault
            rows = [
                {"token": t, "subject_kind": kind, "value": stored[v], "added_at": now}
                for t, v in zip(tokens, fresh, strict=True)
            ]
            connection.execute(self._insert(consortium_watch).on_conflict_do_nothing(), rows)
        return len(rows)

    def _known(self, kind: str, values: list[str]) -> set[str]:
        found: set[str] = set()
        with self.engine.connect() as connection:
            for start in range(0, len(values), 500):
                query = select(consortium_watch.c.value).where(
                    consortium_watch.c.subject_kind == kind,
                    consortium_watch.c.value.in_(lookup_keys(self.engine, values[start : start + 500])),
                )
                rows = [{"value": v} for v in connection.execute(query).scalars()]
                found.update(row["value"] for row in open_rows(connection, rows, "value"))
        return found

    def unwatch(self, kind: str, values: list[str]) -> int:
        wanted = list(values)
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(consortium_watch).where(
                    consortium_watch.c.subject_kind == kind,
                    consortium_watch.c.value.in_(lookup_keys(self.engine, wanted)),
                )
            )
        return int(result.rowcount or 0)

    def watched(self) -> dict[str, str]:
        with self.engine.connect() as connection:
            rows = [r._asdict() for r in connection.execute(select(consortium_watch.c.token, consortium_watch.c.value))]
            return {row["token"]: row["value"] for row in open_rows(connection, rows, "value")}

    def check_strategy(self) -> list[str]:
        self.guard.refresh()
        return violations(self.guard.live) if self.guard.live is not None else []

    def refresh(self, state: LedgerState, now: datetime) -> dict[str, int]:
        """Publishes the current hits of the watched identifiers; returns {source: entities}."""
        problems = self.check_strategy()
        if problems:
            raise StrategyBreaksSignalRule(
                "the live strategy would block on consortium hits alone, so the gateway publishes nothing: "
                + "; ".join(problems)
            )
        watched = self.watched()
        hits = state.hits(now, set(watched))
        values: dict[str, dict[str, float]] = {source: {} for source in SOURCES}
        listed: dict[str, datetime] = {}
        for token, hit in hits.items():
            value = watched[token]
            values["consortium.reported"][value] = 1.0
            values["consortium.reporters"][value] = float(len(hit.reporters))
            values["consortium.categories"][value] = float(len(hit.categories))
            values["consortium.severity"][value] = float(hit.severity)
            if hit.under_appeal:
                values["consortium.under_appeal"][value] = 1.0
            for category in hit.categories:
                values[source_of(category)][value] = 1.0
            listed[value] = hit.expires_at
        for source, mapping in values.items():
            if self._published.get(source) != mapping:
                self.guard.publish_features(source, mapping, replace=True, actor=ACTOR)
                self._published[source] = mapping
        self._sync_list(listed)
        return {source: len(mapping) for source, mapping in values.items() if mapping}

    def _sync_list(self, listed: dict[str, datetime]) -> None:
        if self._listed is None:
            self._listed = {row["value"]: row["expires_at"] for row in self.guard.lists.entries(LIST_NAME)}
        gone = [v for v in self._listed if v not in listed]
        if gone:
            self.guard.remove_from_list(LIST_NAME, gone, actor=ACTOR)
        changed = {v: e for v, e in listed.items() if self._listed.get(v) != e}
        for expires in set(changed.values()):
            batch = [v for v, e in changed.items() if e == expires]
            self.guard.add_to_list(
                LIST_NAME, batch, reason="reported on the consortium ledger", expires_at=expires, actor=ACTOR
            )
        self._listed = dict(listed)
