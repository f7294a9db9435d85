"""``riskguard serve --workers N``: several decision worker processes behind one listening socket.

The rules: more than one worker needs the shared back ends — PostgreSQL for the store and the Redis
feature back end (with the memory back end each worker would count only the events it saw itself, and
every velocity feature would be wrong by a factor of up to N), and decision claims on (the same event id
arriving at two workers is decided once). Other configurations are refused with a message saying what
to set; nothing is switched silently.

What must happen once happens once: the parent process migrates the schema, deploys the starter strategy
on an empty installation and creates the first admin key, under a PostgreSQL advisory lock (so several
hosts started together also take turns), and only then starts the workers, which find everything in place.
Each worker then builds its own RiskGuard (its own connections, group-commit writer, pipeline, listener
for change notices) from the same ``RISKGUARD_*`` environment — uvicorn starts them as fresh processes.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from riskguard.config import Settings
from riskguard.errors import ConfigError

#: the advisory lock every riskguard process takes while preparing an installation (schema, starter
#: strategy, first key); a constant of this project, so unrelated applications do not collide with it
STARTUP_LOCK = int.from_bytes(hashlib.sha256(b"riskguard startup").digest()[:8], "big", signed=True)


def check_layout(settings: Settings, workers: int) -> None:
    """Refuses a worker count the configured back ends cannot serve correctly (ConfigError says why)."""
    if not (1 <= workers <= 64):
        raise ConfigError(f"--workers must be 1..64, got {workers}")
    if workers == 1:
        return
    if settings.is_sqlite:
        raise ConfigError(
            f"--workers {workers} needs PostgreSQL: the embedded SQLite database serves one worker process. "
            "Set RISKGUARD_DATABASE_URL=postgresql://... (see docs/scale-out.md) or serve with --workers 1."
        )
    if settings.feature_backend != "redis":
        raise ConfigError(
            f"--workers {workers} needs the shared feature back end: with RISKGUARD_FEATURE_BACKEND=memory each "
            "worker would hold only the events it saw itself. Set RISKGUARD_FEATURE_BACKEND=redis and "
            "RISKGUARD_REDIS_URL, or serve with --workers 1."
        )
    if settings.decision_claims == "off":
        raise ConfigError(
            f"--workers {workers} needs RISKGUARD_DECISION_CLAIMS=auto or redis: without claims the same event id "
            "sent to two workers at once would be decided twice."
        )


@contextlib.contextmanager
def startup_lock(settings: Settings) -> Iterator[None]:
    """Holds the installation's start-up lock on PostgreSQL (a session advisory lock, released when the
    block ends or the process dies); on SQLite, whose migrations are serialised by the file lock, nothing."""
    if settings.is_sqlite:
        yield
        return
    from sqlalchemy import text

    from riskguard.store.db import open_engine

    engine = open_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": STARTUP_LOCK})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STARTUP_LOCK})
                connection.commit()
    finally:
        engine.dispose()


@dataclass
class Prepared:
    """What the first start of an installation created (each shown once to the operator)."""

    admin_key: str | None = None
    keyring_path: str | None = None
    console_password: str | None = None


def prepare(settings: Settings) -> Prepared:
    """Migrates, deploys the starter strategy where none is live, creates the field-encryption keyring,
    the first admin key and the console's admin user, once (under the start-up lock)."""
    from riskguard.app import RiskGuard
    from riskguard.console.users import UserRepository

    with startup_lock(settings):
        guard = RiskGuard(settings, background=False, warm_features=False)
        try:
            privacy = getattr(guard, "privacy", None)
            created = privacy is not None and privacy.keyring_created
            return Prepared(
                admin_key=guard.ensure_admin_key(),
                keyring_path=str(privacy.keyring_path) if created else None,
                console_password=UserRepository.for_settings(guard.engine, guard.settings).ensure_admin(),
            )
        finally:
            guard.close()


def run_workers(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """Starts ``workers`` uvicorn worker processes on ``host:port`` (returns when they have stopped)."""
    import uvicorn

    uvicorn.run(
        "riskguard.scale.worker:create_worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def describe(settings: Settings, workers: int) -> dict[str, Any]:
    """What a multi-worker service shares and what it runs (printed at start, for operators)."""
    return {
        "workers": workers,
        "database": "postgresql" if not settings.is_sqlite else "sqlite",
        "features": settings.feature_backend,
        "claims": settings.decision_claims,
        "notices": settings.change_notices,
        "poll_ms": settings.strategy_poll_ms,
    }
