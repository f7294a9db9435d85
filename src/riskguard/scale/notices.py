"""Change notices: a strategy deployment, a list change or published feature values reach every worker
within milliseconds instead of at the next poll.

The process that made the change announces it once — PostgreSQL ``NOTIFY`` (on PostgreSQL) or a Redis
``PUBLISH`` (with the Redis back end) — and every worker's listener thread calls ``RiskGuard.refresh()``,
which reloads only what changed (the deployment and audit ids tell). A notice carries no data: a lost
one (a listener reconnecting, a network blip) costs nothing but time, because the poll
(``RISKGUARD_STRATEGY_POLL_MS``) still runs underneath as the fallback.

PostgreSQL notices are database-wide, so the channel is named after the schema the installation lives
in: installations sharing one database in separate schemas never wake each other. Redis notices use the
feature namespace the same way.
"""

from __future__ import annotations

import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine, text

log = logging.getLogger("riskguard.scale.notices")

CHANNEL = "riskguard_changes"


class ChangeNotices(ABC):
    """Announces changes and listens for other processes' announcements (one back end each)."""

    kind = "off"

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.received = Counter(
            "riskguard_change_notices",
            "Change notices received from any worker (this one included)",
            registry=registry,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def announce(self, what: str) -> None:
        """Tells every worker that ``what`` (strategy, lists, published) changed; never raises."""
        try:
            self._send(what)
        except Exception as exc:
            log.warning("announcing a %s change failed (%s); other workers see it at their next poll", what, exc)

    @abstractmethod
    def _send(self, what: str) -> None:
        """Publishes one notice (the back end's NOTIFY or PUBLISH)."""

    def listen(self, on_change: Callable[[str], None]) -> None:
        """Starts the listener thread: ``on_change(what)`` for every notice; reconnects on failure."""
        self._thread = threading.Thread(target=self._run, args=(on_change,), name="riskguard-notices", daemon=True)
        self._thread.start()

    def _run(self, on_change: Callable[[str], None]) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                for what in self._receive():
                    self.received.inc()
                    backoff = 0.5
                    try:
                        on_change(what)
                    except Exception:
                        log.exception("applying a change notice failed; the poll will pick the change up")
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("change notices interrupted (%s); reconnecting in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    @abstractmethod
    def _receive(self) -> Any:
        """Yields each notice's ``what`` as it arrives; returns or raises when the connection ends."""

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3)


class RedisNotices(ChangeNotices):
    kind = "redis"

    def __init__(self, url: str, namespace: str, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.channel = "{" + namespace + "}:" + CHANNEL
        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    def _send(self, what: str) -> None:
        self._client.publish(self.channel, what)

    def _receive(self) -> Any:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel)
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is not None and message["type"] == "message":
                    yield message["data"].decode()
        finally:
            pubsub.close()

    def close(self) -> None:
        super().close()
        self._client.close()


class PostgresNotices(ChangeNotices):
    kind = "postgres"

    def __init__(self, engine: Engine, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self._engine = engine
        with engine.connect() as connection:
            schema = connection.execute(text("SELECT current_schema()")).scalar() or "public"
        self.channel = (CHANNEL + "_" + re.sub(r"[^a-z0-9_]", "_", schema.lower()))[:63]

    def _send(self, what: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(text("SELECT pg_notify(:channel, :what)"), {"channel": self.channel, "what": what})

    def _receive(self) -> Any:
        raw = self._engine.raw_connection()  # a connection of its own, held while listening
        try:
            driver = raw.dbapi_connection
            driver.autocommit = True
            driver.execute(f'LISTEN "{self.channel}"')
            while not self._stop.is_set():
                for notice in driver.notifies(timeout=1.0):
                    yield notice.payload
        finally:
            try:
                raw.invalidate()  # a LISTENing session must not go back to the pool
            finally:
                raw.close()


def open_notices(settings: Any, engine: Engine, registry: CollectorRegistry | None = None) -> ChangeNotices | None:
    """The notices ``RISKGUARD_CHANGE_NOTICES`` chooses: ``auto`` is PostgreSQL on PostgreSQL, else Redis
    with the Redis feature back end, else none (a lone embedded worker; the poll still runs)."""
    kind = settings.change_notices
    if kind == "auto":
        if engine.dialect.name == "postgresql":
            kind = "postgres"
        elif settings.feature_backend == "redis":
            kind = "redis"
        else:
            kind = "off"
    if kind == "postgres":
        if engine.dialect.name != "postgresql":
            from riskguard.errors import ConfigError

            raise ConfigError("RISKGUARD_CHANGE_NOTICES=postgres needs a PostgreSQL RISKGUARD_DATABASE_URL")
        return PostgresNotices(engine, registry)
    if kind == "redis":
        return RedisNotices(settings.redis_url, settings.feature_namespace, registry)
    return None
