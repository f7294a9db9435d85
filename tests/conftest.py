"""Shared fixtures: the same tests run on SQLite and on the real PostgreSQL server.

Back-end tests talk to real servers (PostgreSQL at 127.0.0.1:5432, database ``test``; Redis at
127.0.0.1:6379). Where a server is unreachable they skip, unless ``RISKGUARD_REQUIRE_SERVICES=1``
(set by .ci/run), under which they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from riskguard.api.http import create_asgi
from riskguard.app import RiskGuard
from riskguard.config import Settings

POSTGRES_URL = os.environ.get("RISKGUARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RISKGUARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("RISKGUARD_TEST_NATS_URL", "nats://127.0.0.1:14222")  # .ci/run starts it (JetStream)
REQUIRE = os.environ.get("RISKGUARD_REQUIRE_SERVICES") == "1"

EXAMPLE_STRATEGY = (Path(__file__).parent / "data" / "payments.yaml").read_text(encoding="utf-8")


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is unreachable ({exc})"
    if REQUIRE:
        pytest.fail(message + "; RISKGUARD_REQUIRE_SERVICES=1 requires it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        _unavailable("PostgreSQL at " + POSTGRES_URL, exc)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_server() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:
        _unavailable("Redis at " + REDIS_URL, exc)
    return REDIS_URL


@pytest.fixture(scope="session")
def nats_server() -> str:
    """A NATS server with JetStream on a non-default loopback port (``.ci/run`` starts one on 14222)."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(NATS_URL)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=3) as sock:
            info = sock.recv(4096)
        if not info.startswith(b"INFO") or b'"jetstream":true' not in info:
            raise OSError("not a NATS server with JetStream (-js)")
    except OSError as exc:
        _unavailable("NATS at " + NATS_URL, exc)
    return NATS_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh schema per test, so tests never see each other's rows."""
    import sqlalchemy

    schema = "rg_" + uuid.uuid4().hex[:12]
    admin = sqlalchemy.create_engine(postgres_server)
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/riskguard.db"
    return request.getfixturevalue("postgres_url")


def make_settings(db_url: str, **overrides: Any) -> Settings:
    return Settings.from_env(environ={}, database_url=db_url, **overrides)


@pytest.fixture
def guard(db_url: str) -> Iterator[RiskGuard]:
    rg = RiskGuard(make_settings(db_url), background=False)
    yield rg
    rg.close()


@pytest.fixture
def example_guard(guard: RiskGuard) -> RiskGuard:
    """A guard running the product spec's example `payments` strategy."""
    guard.publish(EXAMPLE_STRATEGY, actor="test")
    return guard


@pytest.fixture
def admin_token(guard: RiskGuard) -> str:
    token = guard.ensure_admin_key()
    assert token is not None
    return token


@pytest.fixture
def client(guard: RiskGuard, admin_token: str) -> Iterator[TestClient]:
    with TestClient(create_asgi(guard), headers={"Authorization": f"Bearer {admin_token}"}) as test_client:
        yield test_client


def transfer(event_id: str, **fields: Any) -> dict[str, Any]:
    event = {
        "event_id": event_id,
        "type": "transfer",
        "occurred_at": "2026-11-25T10:00:00Z",
        "account_id": "acc-1",
        "amount": "6000.00",
        "currency": "CNY",
        "counterparty_id": "payee-1",
        "device_id": "dev-1",
    }
    event.update(fields)
    return event
