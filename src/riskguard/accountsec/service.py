"""Account security for one riskguard instance: the ``accountsec`` decision stage (takeover sequence and
leak watch), the breached-password corpus and the leak registry, built from the RiskGuard object."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from riskguard.accountsec.breach import BreachCorpus
from riskguard.accountsec.leaks import LeakRegistry
from riskguard.accountsec.sequence import MemorySequenceStore, RedisSequenceStore
from riskguard.accountsec.variables import DECLARATIONS
from riskguard.accountsec.watch import LeakWatch
from riskguard.decision.stages import Context
from riskguard.events.schema import from_stored

if TYPE_CHECKING:
    from riskguard.app import RiskGuard

__all__ = ["DECLARATIONS", "AccountSecurity", "AccountSecurityStage"]
log = logging.getLogger("riskguard.accountsec")


def cipher_of(guard: Any) -> Any:
    """The privacy helper's FieldCipher of this instance (keyed tokens for leaked identifiers)."""
    return guard.privacy.cipher


class _LazyCipher:
    """Resolves the instance's cipher on first use (the RiskGuard object may build it after this one)."""

    def __init__(self, guard: Any) -> None:
        self._guard = guard
        self._cipher: Any = None

    def _get(self) -> Any:
        if self._cipher is None:
            self._cipher = cipher_of(self._guard)
        return self._cipher

    def token(self, kind: str, value: str) -> str:
        return str(self._get().token(kind, value))

    def token_with(self, key_id: str, kind: str, value: str) -> str:
        return str(self._get().token_with(key_id, kind, value))


class AccountSecurityStage:
    """Binds ``takeover.*`` and ``account.*`` (see variables.py); runs before ``rules``."""

    name = "accountsec"

    def __init__(self, service: AccountSecurity) -> None:
        self.service = service

    def run(self, ctx: Context) -> None:
        ctx.extra.update(self.service.evaluate(ctx.event, observe=ctx.observe))


class AccountSecurity:
    def __init__(self, guard: RiskGuard, *, warm: bool = True) -> None:
        settings = guard.settings
        self.guard = guard
        self.window_s = settings.takeover_window_minutes * 60
        self.memory_s = settings.takeover_device_memory_days * 86400
        if settings.feature_backend == "redis":  # beside the feature state, on the feature engine's client
            client = guard.feature_engine.client  # type: ignore[attr-defined]
            self.sequences: MemorySequenceStore | RedisSequenceStore = RedisSequenceStore(
                client, namespace=settings.feature_namespace, window_s=self.window_s, memory_s=self.memory_s
            )
        else:
            self.sequences = MemorySequenceStore(window_s=self.window_s, memory_s=self.memory_s)
        self.cipher = _LazyCipher(guard)
        self.corpus = BreachCorpus(guard.engine)
        self.leaks = LeakRegistry(guard.engine, self.cipher)
        self.watch = LeakWatch(self.leaks)
        self.stage = AccountSecurityStage(self)
        self.rebuilt = 0
        if warm and isinstance(self.sequences, MemorySequenceStore):
            self.rebuild()

    def evaluate(self, event: Any, *, observe: bool = True) -> dict[str, Any]:
        values = self.sequences.evaluate(event, observe=observe)
        values.update(self.watch.evaluate(event))
        return values

    def rebuild(self) -> int:
        """Memory back end: folds the logged events of the device-memory horizon into the sequence
        state (what a restarted process knew). Redis keeps its state; nothing to do there."""
        from sqlalchemy import func, select

        from riskguard.store.tables import events as events_table

        with self.guard.engine.connect() as connection:
            latest = connection.execute(select(func.max(events_table.c.occurred_at))).scalar()
        if latest is None:
            return 0
        started = time.perf_counter()
        since = latest - timedelta(seconds=self.memory_s)
        events = (from_stored(payload) for _type, payload in self.guard.events.stream_since(since))
        self.rebuilt = self.sequences.rebuild(events)
        log.info(
            "takeover sequences rebuilt from %d logged events in %.2fs", self.rebuilt, time.perf_counter() - started
        )
        return self.rebuilt

    def refresh(self) -> None:
        """Leak flags imported by this or another process (the instance's poll calls this)."""
        self.watch.refresh()

    def close(self) -> None:
        self.sequences.close()
