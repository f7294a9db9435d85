"""Decision claims across workers: two RiskGuard instances on one PostgreSQL schema and one Redis
namespace stand for two workers (tests/test_scale_workers.py does the same with real processes)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from riskguard.app import RiskGuard, digest_of
from riskguard.errors import Conflict, Unavailable
from riskguard.events.validate import parse_event_obj
from riskguard.features.redis_backend import clear_namespace
from riskguard.store.tables import decisions

from conftest import make_settings, transfer


@pytest.fixture
def namespace(redis_server: str) -> Iterator[str]:
    name = "scale_" + uuid.uuid4().hex[:10]
    yield name
    client = redis.Redis.from_url(redis_server)
    clear_namespace(client, name)
    client.close()


@pytest.fixture
def pair(postgres_url: str, redis_server: str, namespace: str) -> Iterator[tuple[RiskGuard, RiskGuard]]:
    settings = make_settings(postgres_url, feature_backend="redis", redis_url=redis_server, feature_namespace=namespace)
    first = RiskGuard(settings, background=False)
    second = RiskGuard(settings, background=False)
    yield first, second
    first.close()
    second.close()


def _stored(guard: RiskGuard) -> dict[str, int]:
    with guard.engine.connect() as connection:
        rows = connection.execute(select(decisions.c.event_id, func.count()).group_by(decisions.c.event_id))
        return {event_id: count for event_id, count in rows}


def test_same_ids_sent_to_two_workers_at_once_are_decided_once(pair: tuple[RiskGuard, RiskGuard]) -> None:
    first, second = pair
    assert first.claims is not None and second.claims is not None
    ids = [f"h-{i}" for i in range(40)]
    calls = [(guard, event_id) for event_id in ids for guard in (first, second, first, second)]
    start = threading.Barrier(4)  # the four copies of the first id leave together

    def send(call: tuple[RiskGuard, str]) -> tuple[str, dict[str, Any]]:
        guard, event_id = call
        if event_id == ids[0]:
            start.wait(5)
        return event_id, guard.decide(transfer(event_id, counterparty_id=f"payee-{event_id}"))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, calls))
    by_id: dict[str, list[dict[str, Any]]] = {}
    for event_id, body in answers:
        by_id.setdefault(event_id, []).append(body)
    for event_id, bodies in by_id.items():
        assert len(bodies) == 4
        assert all(body == bodies[0] for body in bodies), event_id  # one decision, the same answer to all
    assert _stored(first) == dict.fromkeys(ids, 1)
    # folded once: the account's transfer count is the number of distinct events (this one included)
    probe = first.decide(transfer("probe", counterparty_id="payee-probe"), with_explain=True)
    assert probe["explain"]["features"]["account_transfers_1h"] == len(ids) + 1
    followed = first.claims.followed._value.get() + second.claims.followed._value.get()
    duplicates = first.metrics.duplicates._value.get() + second.metrics.duplicates._value.get()
    assert duplicates == 3 * len(ids)  # every repeat was answered from the one decision…
    assert followed <= duplicates  # …some of them by waiting for the other worker's


def test_a_follower_waits_for_the_holders_decision(pair: tuple[RiskGuard, RiskGuard]) -> None:
    first, second = pair
    event = parse_event_obj(transfer("w-1"))
    assert first.claims is not None
    assert first.claims.claim("w-1", digest_of(event)) is None  # the first worker starts deciding
    result: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: result.update(second.decide(transfer("w-1"))))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()  # the second worker neither decides nor answers before the first has
    assert _stored(first) == {}
    decided = first.decide(transfer("w-1"))  # the holder decides (its own claim)
    waiter.join(5)
    assert result == decided
    assert _stored(first) == {"w-1": 1}


def test_other_content_under_a_claimed_id_is_a_conflict(pair: tuple[RiskGuard, RiskGuard]) -> None:
    first, second = pair
    assert first.claims is not None
    first.claims.claim("c-1", digest_of(parse_event_obj(transfer("c-1"))))
    with pytest.raises(Conflict):
        second.decide(transfer("c-1", amount="7000.00"))
    same_but_written_differently = transfer("c-1", amount="6000.0", occurred_at="2026-11-25T18:00:00+08:00")
    assert first.claims.claim("c-1", digest_of(parse_event_obj(same_but_written_differently))) is None


def test_a_released_claim_sends_the_follower_back_to_retry(pair: tuple[RiskGuard, RiskGuard]) -> None:
    first, second = pair
    assert first.claims is not None
    digest = digest_of(parse_event_obj(transfer("r-1")))
    first.claims.claim("r-1", digest)
    errors: list[Exception] = []

    def attempt() -> None:
        try:
            second.decide(transfer("r-1"))
        except Unavailable as exc:
            errors.append(exc)

    waiter = threading.Thread(target=attempt)
    waiter.start()
    time.sleep(0.2)
    first.claims.release("r-1", digest)  # the holder's commit failed: it gives the claim back
    waiter.join(5)
    assert len(errors) == 1 and "retry" in str(errors[0])
    retried = second.decide(transfer("r-1"))  # the client's retry decides
    assert retried["event_id"] == "r-1"
    assert _stored(first) == {"r-1": 1}


def test_a_release_never_frees_another_workers_claim(pair: tuple[RiskGuard, RiskGuard]) -> None:
    first, second = pair
    assert first.claims is not None and second.claims is not None
    digest = digest_of(parse_event_obj(transfer("x-1")))
    assert first.claims.claim("x-1", digest) is None
    second.claims.release("x-1", digest)  # not the holder: nothing happens
    follower = second.claims.claim("x-1", digest)
    assert follower is not None
    first.claims.release("x-1", digest)
    assert follower.ticket.wait(5) and isinstance(follower.ticket.error, Unavailable)


def test_claims_follow_the_feature_back_end(tmp_path: Any, redis_server: str) -> None:
    lone = RiskGuard(make_settings(f"sqlite:///{tmp_path}/one.db"), background=False)
    try:
        assert lone.claims is None and lone.notices is None  # the embedded default: one worker, nothing shared
        assert lone.decide(transfer("solo"))["event_id"] == "solo"
    finally:
        lone.close()


def test_every_waiter_on_one_in_flight_decision_is_woken() -> None:
    """A repeated event id in flight shares the first request's ticket: each waiting request is answered
    (the ticket once woke only the last future bound to it; the others ran into the commit timeout)."""
    import asyncio

    from riskguard.store.writer import Ticket

    async def main() -> list[bool]:
        ticket = Ticket()
        loop = asyncio.get_running_loop()
        futures = [ticket.bind_future(loop) for _ in range(3)]
        threading.Thread(target=ticket._finish, args=(None,)).start()
        done, _ = await asyncio.wait(futures, timeout=5)
        return [future in done for future in futures]

    assert asyncio.run(main()) == [True, True, True]
