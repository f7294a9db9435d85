"""``account.*``: the leak watch flags, held in memory for the decision path.

Two ways an event meets a leak: its account was flagged when the leak was imported (``leak_watch``), or
the event itself carries an identifier (phone, card, e-mail, ID number) whose token is in a leak — the
account that appeared after the import. The second needs every leaked token in memory, so it is used
while the registered leaks hold at most ``LIVE_TOKEN_LIMIT`` identifiers; above that, only accounts
flagged at import (or at ``riskguard leak match``) count.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from riskguard.accountsec.leaks import LeakRegistry, event_identifiers, token_key_ids
from riskguard.accountsec.tables import leak_identifiers, leaks
from riskguard.events.schema import Event

LIVE_TOKEN_LIMIT = 2_000_000
QUIET: dict[str, Any] = {"account.in_leak": False, "account.leak_kinds": [], "account.leak_age_days": -1}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class LeakWatch:
    def __init__(self, registry: LeakRegistry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._generation: tuple[Any, ...] | None = None
        # account → (kinds, newest discovery, latest expiry)
        self.accounts: dict[str, tuple[frozenset[str], datetime, datetime]] = {}
        # token → (kind, newest discovery, latest expiry)
        self.tokens: dict[str, tuple[str, datetime, datetime]] = {}
        self.live_tokens = True
        self.key_ids: list[str] = []

    def refresh(self, *, force: bool = False) -> bool:
        """Reloads the flags when a leak was imported, re-matched or removed; True when it did."""
        generation = self.registry.generation()
        if not force and generation == self._generation:
            return False
        now = datetime.now(UTC)
        accounts: dict[str, tuple[frozenset[str], datetime, datetime]] = {}
        engine = self.registry.engine
        from riskguard.accountsec.tables import leak_watch

        query = select(leak_watch.c.account_id, leak_watch.c.kinds, leak_watch.c.discovered_at, leak_watch.c.expires_at)
        with engine.connect() as connection:
            for row in connection.execute(query.where(leak_watch.c.expires_at > now)):
                kinds, found, expires = (
                    frozenset(row.kinds.split(",")),
                    _aware(row.discovered_at),
                    _aware(row.expires_at),
                )
                earlier = accounts.get(row.account_id)
                if earlier is not None:
                    kinds, found, expires = kinds | earlier[0], max(found, earlier[1]), max(expires, earlier[2])
                accounts[row.account_id] = (kinds, found, expires)
            total = sum(
                int(n) for (n,) in connection.execute(select(leaks.c.identifiers).where(leaks.c.expires_at > now))
            )
            tokens: dict[str, tuple[str, datetime, datetime]] = {}
            live = total <= LIVE_TOKEN_LIMIT
            if live and total:
                joined = (
                    select(leak_identifiers.c.token, leak_identifiers.c.kind, leaks.c.discovered_at, leaks.c.expires_at)
                    .select_from(leak_identifiers.join(leaks, leaks.c.id == leak_identifiers.c.leak_id))
                    .where(leaks.c.expires_at > now)
                )
                for row in connection.execute(joined):
                    found, expires = _aware(row.discovered_at), _aware(row.expires_at)
                    earlier_token = tokens.get(row.token)
                    if earlier_token is not None:
                        found, expires = max(found, earlier_token[1]), max(expires, earlier_token[2])
                    tokens[row.token] = (row.kind, found, expires)
        with self._lock:
            self.key_ids = token_key_ids(tokens)
            self.accounts, self.tokens, self.live_tokens = accounts, tokens, live
            self._generation = generation
        return True

    def evaluate(self, event: Event) -> dict[str, Any]:
        accounts, tokens = self.accounts, self.tokens
        if not accounts and not tokens:
            return dict(QUIET)
        at = event.occurred_at
        kinds: set[str] = set()
        newest: datetime | None = None
        flagged = accounts.get(event.account_id)
        if flagged is not None and flagged[2] > at:
            kinds |= flagged[0]
            newest = flagged[1]
        if tokens:
            token_with = self.registry.cipher.token_with
            for kind, value in event_identifiers(event):
                for key_id in self.key_ids:
                    hit = tokens.get(token_with(key_id, kind, value))
                    if hit is not None and hit[2] > at:
                        kinds.add(hit[0])
                        newest = hit[1] if newest is None else max(newest, hit[1])
        if newest is None:
            return dict(QUIET)
        return {
            "account.in_leak": True,
            "account.leak_kinds": sorted(kinds),
            "account.leak_age_days": max(0, (at - newest).days),
        }
