"""The bus contract, the same on Redis Streams and NATS JetStream (real servers): ordered publication,
consumer groups, acknowledgement, redelivery after the timeout, dead letters after the limit, lag."""

from __future__ import annotations

import time

import pytest

from bus_helpers import bus_names
from riskguard.bus.service import open_bus
from riskguard.config import Settings


@pytest.fixture(params=["redis", "nats"])
def bus(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    settings = Settings.from_env(
        environ={}, bus_redeliver_s=0.3, bus_max_deliveries=2, **bus_names(request, request.param)
    )
    opened = open_bus(settings)
    opened.reset()
    yield opened
    opened.reset()
    opened.close()


def test_group_members_share_messages_and_acknowledged_ones_are_done(bus) -> None:  # type: ignore[no-untyped-def]
    bus.publish([(f"e{i}", f"body {i}".encode()) for i in range(10)])
    assert bus.lag("g").waiting == 10  # a group that does not exist yet starts at the beginning
    first = bus.fetch("g", "m1", 4, 100)
    second = bus.fetch("g", "m2", 100, 100)
    assert [d.id for d in first] + [d.id for d in second] == [f"e{i}" for i in range(10)]
    assert [d.body for d in first] == [b"body 0", b"body 1", b"body 2", b"body 3"]
    assert all(d.deliveries == 1 for d in first + second)
    bus.ack("g", first + second[:2])
    lag = bus.lag("g")
    assert (lag.waiting, lag.in_flight, lag.dead) == (0, 4, 0)
    other = bus.fetch("other", "m1", 100, 100)  # another group sees everything again
    assert len(other) == 10
    assert bus.groups() == ["g", "other"]


def test_unacknowledged_messages_come_back_then_go_to_dead_letters(bus) -> None:  # type: ignore[no-untyped-def]
    bus.publish([("a", b"1"), ("b", b"2"), ("c", b"3")])
    got = bus.fetch("g", "m1", 10, 100)
    bus.ack("g", [got[0]])
    assert bus.fetch("g", "m1", 10, 50) == []  # nothing new, and the hand-outs have not timed out
    time.sleep(0.5)
    again = bus.fetch("g", "m2", 10, 100)  # m1 "died": its messages go to m2
    assert [(d.id, d.deliveries) for d in again] == [("b", 2), ("c", 2)]
    bus.ack("g", [again[0]])
    time.sleep(0.5)
    assert bus.fetch("g", "m2", 10, 100) == []  # "c" was handed out twice: dead, not handed out again
    letters = bus.dead_letters("g")
    assert [(d.id, d.body, d.deliveries) for d in letters] == [("c", b"3", 3)]
    assert "2 deliveries" in letters[0].reason
    lag = bus.lag("g")
    assert (lag.waiting, lag.in_flight, lag.dead) == (0, 0, 1)


def test_dead_letter_with_a_reason(bus) -> None:  # type: ignore[no-untyped-def]
    bus.publish([("x", b"{}")])
    [delivery] = bus.fetch("g", "m1", 10, 100)
    bus.dead_letter("g", delivery, "ValueError: bad amount")
    assert [(d.id, d.reason) for d in bus.dead_letters("g")] == [("x", "ValueError: bad amount")]
    time.sleep(0.5)
    assert bus.fetch("g", "m1", 10, 50) == []
    assert bus.lag("g").total == 0


def test_an_unreachable_server_is_reported_not_hung() -> None:
    from riskguard.bus.base import BusUnavailable
    from riskguard.bus.redis_streams import RedisStreamBus

    bus = RedisStreamBus("redis://127.0.0.1:1/0", prefix="bust_down", timeout_s=0.5)
    with pytest.raises(BusUnavailable):
        bus.publish([("a", b"1")])
    bus.close()


def test_a_redis_stream_lost_in_a_restart_gets_its_group_back(redis_server: str) -> None:
    import redis

    from riskguard.bus.base import BusUnavailable
    from riskguard.bus.redis_streams import RedisStreamBus

    bus = RedisStreamBus(redis_server, prefix="bust_lost")
    bus.reset()
    try:
        bus.publish([("a", b"1")])
        assert [d.id for d in bus.fetch("g", "m", 10, 10)] == ["a"]
        redis.Redis.from_url(redis_server).delete(bus.stream)  # a Redis without persistence restarted
        with pytest.raises(BusUnavailable, match="vanished"):
            bus.fetch("g", "m", 10, 10)
        bus.publish([("b", b"2")])
        assert [d.id for d in bus.fetch("g", "m", 10, 10)] == ["b"]
    finally:
        bus.reset()
        bus.close()
