"""Two real worker processes (two ``riskguard serve`` on two ports, as on two hosts) over one
PostgreSQL schema and one Redis namespace: the same event ids hammered at both at once are decided
once, and strategy and list changes made through one reach the other by notice, not by poll."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import create_engine, func, select

from riskguard.config import STARTER_STRATEGY
from riskguard.features.redis_backend import clear_namespace
from riskguard.scale.loadgen import Service, installation
from riskguard.store.tables import decisions

from conftest import transfer


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[dict[str, Any]]:
    import sqlalchemy

    from conftest import POSTGRES_URL

    try:
        admin = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        schema = "rg_" + uuid.uuid4().hex[:12]
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # the postgres_server fixture is function-scoped in spirit; same rule here
        from conftest import _unavailable

        _unavailable("PostgreSQL at " + POSTGRES_URL, exc)
    namespace = "scale_" + uuid.uuid4().hex[:10]
    folder = tmp_path_factory.mktemp("workers")
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    env, token = installation(
        url,
        keyring_file=str(folder / "keyring.json"),
        feature_backend="redis",
        redis_url=redis_server,
        feature_namespace=namespace,
        strategy_poll_ms="600000",  # ten minutes: only a change notice can be this fast
    )
    services = [Service(env, log_path=folder / f"worker{i}.log") for i in range(2)]
    try:
        for service in services:
            service.launch()
        for service in services:
            service.wait_ready()
        yield {"services": services, "token": token, "url": url}
    finally:
        for service in services:
            service.stop()
        client = redis.Redis.from_url(redis_server)
        clear_namespace(client, namespace)
        client.close()
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _client(service: Service, token: str) -> httpx.Client:
    return httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)


def test_same_ids_hammered_at_two_processes_are_decided_once(two_workers: dict[str, Any]) -> None:
    services, token = two_workers["services"], two_workers["token"]
    clients = [_client(service, token) for service in services]
    ids = [f"p-{i}" for i in range(60)]
    sends = [(event_id, clients[copy % 2]) for event_id in ids for copy in range(4)]

    def send(item: tuple[str, httpx.Client]) -> tuple[str, int, dict[str, Any]]:
        event_id, client = item
        event = transfer(event_id, account_id="acc-hammer", counterparty_id=f"payee-{event_id}")
        response = client.post("/v1/decisions", json=event)
        return event_id, response.status_code, response.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, sends))
    by_id: dict[str, list[dict[str, Any]]] = {}
    for event_id, status, body in answers:
        assert status == 200, body
        by_id.setdefault(event_id, []).append(body)
    for event_id, bodies in by_id.items():
        assert all(body == bodies[0] for body in bodies), event_id
    engine = create_engine(two_workers["url"])
    with engine.connect() as connection:
        stored = dict(
            connection.execute(
                select(decisions.c.event_id, func.count())
                .where(decisions.c.event_id.like("p-%"))
                .group_by(decisions.c.event_id)
            ).all()
        )
    engine.dispose()
    assert stored == dict.fromkeys(ids, 1)
    # other content under a used id is refused by either worker
    for client in clients:
        refused = client.post("/v1/decisions", json=transfer(ids[0], account_id="acc-hammer", amount="1.00"))
        assert refused.status_code == 409
    # folded once into the shared features, whichever process decided
    probe = clients[1].post(
        "/v1/decisions?explain=true", json=transfer("p-probe", account_id="acc-hammer", counterparty_id="payee-x")
    )
    assert probe.json()["explain"]["features"]["account_transfers_1h"] == len(ids) + 1
    for client in clients:
        client.close()


def _wait_for(check: Any, timeout: float = 15.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError("the change did not reach the other worker")


def test_a_strategy_published_on_one_worker_reaches_the_other_by_notice(two_workers: dict[str, Any]) -> None:
    services, token = two_workers["services"], two_workers["token"]
    first, second = (_client(service, token) for service in services)
    live = second.get("/healthz").json()["strategy"]
    source = Path(STARTER_STRATEGY).read_text(encoding="utf-8")
    bumped = source.replace(f"\nversion: {live['version']}\n", f"\nversion: {live['version'] + 1}\n", 1)
    assert bumped != source
    published = first.post("/v1/strategies", content=bumped.encode())
    assert published.status_code == 201, published.text
    delay = _wait_for(lambda: second.get("/healthz").json()["strategy"]["version"] == live["version"] + 1)
    print(f"strategy publication reached the other worker in {delay * 1000:.0f} ms (poll every 600 s)")
    metrics = second.get("/metrics").text
    assert "riskguard_change_notices_total" in metrics

    added = first.post("/v1/lists/blocked_accounts/entries", json={"values": ["acc-listed"], "reason": "test"})
    assert added.status_code in (200, 201), added.text
    counter = iter(range(10_000))

    def blocked() -> bool:
        event = transfer(f"l-{next(counter)}", account_id="acc-listed")
        return second.post("/v1/decisions", json=event).json()["decision"] == "block"

    delay = _wait_for(blocked)
    print(f"a list change reached the other worker in {delay * 1000:.0f} ms")
    first.close()
    second.close()
