"""The Redis feature back end beyond the conformance suite (tests/test_features.py runs that on Redis too):
one round trip per event, keys that expire with their windows, state shared by workers, backfill done by
one worker, rebuild after a feature was retired, exact integers, namespaces, and two RiskGuard services
sharing velocity through Redis."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

import msgspec
import pytest
import redis

from riskguard.app import RiskGuard
from riskguard.config import Settings
from riskguard.errors import ConfigError
from riskguard.events.schema import Event
from riskguard.features.redis_backend import REBUILD_GAP_US, RedisFeatureEngine, signature_id
from riskguard.features.values import micros
from riskguard.rules.activation import event_variables
from test_features import BASE, ENV, SPECS, make_event, spec

from conftest import EXAMPLE_STRATEGY, make_settings, transfer

pytestmark = pytest.mark.redis


class CountingConnection(redis.Connection):
    """Records every write to the socket (one per round trip) and the commands packed into it."""

    writes: ClassVar[list[int]] = []
    commands: ClassVar[list[bytes]] = []

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).writes.append(1)
        super().send_packed_command(command, check_health)

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self._record(args[0])
        super().send_command(*args, **kwargs)

    def pack_commands(self, commands: Any) -> list[bytes]:  # a pipeline's
        for command in commands:
            self._record(command[0])
        return super().pack_commands(commands)

    def _record(self, name: Any) -> None:
        type(self).commands.append(name.encode() if isinstance(name, str) else name)


@pytest.fixture
def client(redis_server: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_server)
    yield connection
    connection.close()


@pytest.fixture
def namespace(client: redis.Redis) -> Iterator[str]:
    name = "t" + uuid.uuid4().hex[:16]
    yield name
    RedisFeatureEngine(client, namespace=name).clear()


def feed(engine: RedisFeatureEngine, events: list[Event]) -> list[dict[str, Any]]:
    return [engine.process(engine.prepare(e, event_variables(e)), [SPECS])[0] for e in events]


def values_at(engine: RedisFeatureEngine, event: Event, specs: list[Any] = SPECS) -> dict[str, Any]:
    return engine.compute(engine.prepare(event, event_variables(event)), specs)


def test_every_event_is_one_round_trip(redis_server: str, namespace: str) -> None:
    pool = redis.ConnectionPool.from_url(redis_server, connection_class=CountingConnection)
    counted = redis.Redis(connection_pool=pool)
    engine = RedisFeatureEngine(counted, namespace=namespace)
    engine.declare(SPECS, ENV)  # loads the scripts
    CountingConnection.writes.clear()
    CountingConnection.commands.clear()
    events = [make_event(i, i * 97, f"a{i % 3}", ("transfer", "login")[i % 2], f"p{i % 5}", 100 + i) for i in range(40)]
    feed(engine, events)
    engine.observe(engine.prepare(events[0], event_variables(events[0])))
    values_at(engine, events[1])
    assert len(CountingConnection.writes) == len(events) + 2
    assert set(CountingConnection.commands) == {b"EVALSHA"}
    counted.close()


def test_keys_expire_with_their_windows(client: redis.Redis, namespace: str) -> None:
    engine = RedisFeatureEngine(client, namespace=namespace, lateness_seconds=600)
    specs = [
        spec("n_1h", "count"),
        spec("sum_7d", "sum", field="amount", window="7d"),
        spec("payees_1d", "distinct", field="counterparty_id", window="1d"),
    ]
    engine.declare(specs, ENV)
    event = make_event(1, 0, "a1", "transfer", "p1", 100)
    engine.observe(engine.prepare(event, event_variables(event)))
    tag = "{" + namespace + "}"
    expected = {  # window + lateness + one bucket (1h: 60 s buckets; 7d: 2 h; 1d: 15 min)
        f"{tag}:{signature_id(specs[0])}:s:a1": 3600 + 600 + 60,
        f"{tag}:{signature_id(specs[1])}:s:a1": 7 * 86400 + 600 + 7200,
        f"{tag}:{signature_id(specs[2])}:s:a1": 86400 + 600 + 900,
        f"{tag}:{signature_id(specs[2])}:z:a1": 86400 + 600 + 900,
    }
    for key, seconds in expected.items():
        ttl = client.pttl(key)
        assert seconds * 1000 - 5000 < ttl <= seconds * 1000, key
    for key in (f"{tag}:wm", f"{tag}:seen", f"{tag}:features"):
        assert 0 < client.pttl(key) <= (7 * 86400 + 600 + 7200) * 1000  # the longest feature's
    assert engine.size() == len(expected) + 3


def test_sketch_buckets_expire_too(client: redis.Redis, namespace: str) -> None:
    engine = RedisFeatureEngine(client, namespace=namespace, distinct_exact_limit=3)
    payees = spec("payees", "distinct", field="counterparty_id", window="1h")
    engine.declare([payees], ENV)
    for i in range(6):
        event = make_event(i, i * 60, "a1", "transfer", f"p{i}", 100)
        engine.observe(engine.prepare(event, event_variables(event)))
    sketches = list(client.scan_iter(match="{" + namespace + "}:" + signature_id(payees) + ":h:*"))
    assert len(sketches) == 6  # one HyperLogLog per one-minute bucket
    assert all(0 < client.pttl(key) <= (3600 + 3600 + 60) * 1000 for key in sketches)
    assert values_at(engine, make_event(9, 400, "a1", "transfer", "p0", 1), [payees]) == {"payees": 6}


def test_workers_share_watermark_duplicates_and_state(redis_server: str, namespace: str) -> None:
    first = RedisFeatureEngine(redis_server, namespace=namespace, lateness_seconds=600)
    second = RedisFeatureEngine(redis_server, namespace=namespace, lateness_seconds=600)
    for engine in (first, second):
        engine.declare(SPECS, ENV)
    events = [make_event(i, 10_000 + i * 30, "a1", "transfer", f"p{i % 2}", 100) for i in range(6)]
    feed(first, events[:3])
    got = feed(second, events[3:])
    assert got[0]["n_1h"] == 4 and got[0]["payees_1h"] == 2  # the other worker's three events, and this one
    again = feed(second, events[:1])[0]  # re-sent to the other worker: a duplicate, not folded twice
    assert again["n_1h"] == 1 and second.duplicate_events == 1
    late = feed(second, [make_event(99, 10_000 - 1200, "a1", "transfer", "p9", 100)])[0]
    assert late["n_1h"] == 1 and second.late_events == 1  # late for the watermark the first worker moved
    assert first.watermark == second.watermark == micros(events[-1].occurred_at)
    assert values_at(first, make_event(100, 10_200, "a1", "transfer", "p1", 1))["n_1h"] == 7
    first.close()
    second.close()


def test_amounts_and_times_stay_exact(client: redis.Redis, namespace: str) -> None:
    engine = RedisFeatureEngine(client, namespace=namespace)
    specs = [
        spec("total", "sum", field="amount", window="1d"),
        spec("top", "max", field="amount", window="1d"),
        spec("first", "first_seen", window="1d", include_current=False),
    ]
    engine.declare(specs, ENV)
    big = Decimal("123456789012.3456")  # 1.23e15 units: five of them stay below 2^53
    for i in range(5):
        event = msgspec.structs.replace(
            make_event(i, 0, "a1", "transfer", "p", 0),
            amount=big,
            occurred_at=BASE + timedelta(microseconds=123_457 + i),
        )
        engine.observe(engine.prepare(event, event_variables(event)))
    probe = make_event(9, 1, "a1", "login", "", 0)
    values = values_at(engine, probe, specs)
    assert values["total"] == big * 5
    assert values["top"] == big
    assert values["first"] == (1_000_000 - 123_457) / 1_000_000


def test_backfill_is_done_by_one_worker(client: redis.Redis, namespace: str) -> None:
    first = RedisFeatureEngine(client, namespace=namespace)
    second = RedisFeatureEngine(client, namespace=namespace)
    new = spec("new", "sum", field="amount")
    history = [make_event(i, i * 60, "a1", "transfer", "p1", 100) for i in range(5)]
    assert first.declare([new], ENV) == [new]
    assert second.declare([new], ENV) == [new]  # both start before either has built it
    assert first.backfill([new], ((e, event_variables(e)) for e in history)) == 5
    assert second.backfill([new], ((e, event_variables(e)) for e in history)) == 0  # built: skipped
    probe = make_event(9, 400, "a1", "login", "", 0)
    assert values_at(second, probe, [new]) == {"new": Decimal(5)}
    third = RedisFeatureEngine(client, namespace=namespace)
    assert third.declare([new], ENV) == []  # a later worker finds it maintained


@pytest.mark.parametrize("builder_finishes", [True, False])
def test_a_worker_waits_for_the_backfill_lock(client: redis.Redis, namespace: str, builder_finishes: bool) -> None:
    engine = RedisFeatureEngine(client, namespace=namespace)
    new = spec("new", "count")
    engine.declare([new], ENV)
    lock = "{" + namespace + "}:lock:" + signature_id(new)
    client.set(lock, "another worker")
    history = [make_event(i, i * 60, "a1", "login", "", 0) for i in range(3)]
    result: list[int] = []
    waiter = threading.Thread(target=lambda: result.append(engine.backfill([new], ((e, {}) for e in history))))
    waiter.start()
    assert engine.backfill_waiting.wait(10)
    if builder_finishes:  # the other worker built it: this one skips
        client.hset("{" + namespace + "}:features", signature_id(new), "0")
    client.delete(lock)  # released, or expired with a crashed holder: this one builds
    waiter.join(10)
    assert result == [0 if builder_finishes else 3]
    assert client.get(lock) is None


def test_a_retired_feature_declared_again_is_rebuilt(client: redis.Redis, namespace: str) -> None:
    engine = RedisFeatureEngine(client, namespace=namespace)
    kept, retired = spec("kept", "count", window="1d"), spec("retired", "count", window="2d")
    engine.declare([kept, retired], ENV)
    log = [make_event(i, i * 60, "a1", "login", "", 0) for i in range(3)]
    for event in log:
        engine.observe(engine.prepare(event, event_variables(event)))
    engine.declare([kept], ENV)  # retired by every worker while events go on
    gap = REBUILD_GAP_US // 1_000_000 + 600
    for i in range(3, 6):
        event = make_event(i, gap + i * 60, "a1", "login", "", 0)
        log.append(event)
        engine.observe(engine.prepare(event, event_variables(event)))
    assert engine.declare([kept, retired], ENV) == [retired]  # its state missed events: rebuild it
    assert engine.backfill([retired], ((e, {}) for e in log)) == 6
    probe = make_event(9, gap + 400, "a1", "login", "", 0)
    assert values_at(engine, probe, [kept, retired]) == {"kept": 7, "retired": 7}  # not 10: no double count


def test_clearing_a_namespace_leaves_the_others(client: redis.Redis, namespace: str) -> None:
    other = RedisFeatureEngine(client, namespace=namespace + "x")
    mine = RedisFeatureEngine(client, namespace=namespace)
    for engine in (mine, other):
        engine.declare(SPECS, ENV)
        feed(engine, [make_event(1, 0, "a1", "transfer", "p1", 100)])
    assert mine.size() > 0
    held = other.size()
    assert mine.clear() > 0 and mine.size() == 0
    assert other.size() == held
    other.clear()
    with pytest.raises(ValueError, match="namespace"):
        RedisFeatureEngine(client, namespace="bad{tag}")


def test_settings_choose_the_back_end() -> None:
    settings = Settings.from_env(
        environ={
            "RISKGUARD_FEATURE_BACKEND": "redis",
            "RISKGUARD_REDIS_URL": "redis://:secret@10.0.0.5:6380/2",
            "RISKGUARD_FEATURE_NAMESPACE": "payments-eu",
        }
    )
    assert (settings.feature_backend, settings.feature_namespace) == ("redis", "payments-eu")
    assert settings.feature_snapshot is None  # state outlives the process in Redis
    assert "secret" not in settings.redacted()["redis_url"]
    assert Settings.from_env(environ={}).redis_url == "redis://127.0.0.1:6379/0"
    for name, value in [
        ("RISKGUARD_FEATURE_BACKEND", "cassandra"),
        ("RISKGUARD_REDIS_URL", "http://x"),
        ("RISKGUARD_FEATURE_NAMESPACE", "a:b"),
    ]:
        with pytest.raises(ConfigError, match=name):
            Settings.from_env(environ={name: value})


def test_two_services_share_velocity_through_redis(
    db_url: str, redis_server: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    options = {"feature_backend": "redis", "redis_url": redis_server, "feature_namespace": namespace}
    one = RiskGuard(make_settings(db_url, **options), background=False)
    two = RiskGuard(make_settings(db_url, **options), background=False)
    try:
        one.publish(EXAMPLE_STRATEGY, actor="test")
        two.refresh()
        assert two.live is not None and two.live.name == "payments"
        one.decide(transfer("w1", account_id="acc-a", device_id="dev-9"))
        two.decide(transfer("w2", account_id="acc-b", device_id="dev-9"))
        one.decide(transfer("w3", account_id="acc-c", device_id="dev-9"))
        result = two.decide(transfer("w4", account_id="acc-d", device_id="dev-9", amount="7000.00"), with_explain=True)
        assert result["explain"]["features"]["device_accounts_7d"] == 4  # two accounts seen by each service
        assert result["decision"] == "review"
        again = one.decide(transfer("w5", account_id="acc-a"), with_explain=True)
        assert again["explain"]["features"]["account_transfers_1h"] == 2
    finally:
        one.close()
        two.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="riskguard"):
        restarted = RiskGuard(make_settings(db_url, **options), background=False)
    assert "rebuilt" not in caplog.text  # state lives in Redis: a new worker does not rebuild it
    try:
        result = restarted.decide(transfer("w6", account_id="acc-e", device_id="dev-9"), with_explain=True)
        assert result["explain"]["features"]["device_accounts_7d"] == 5
    finally:
        restarted.close()


def test_decisions_go_on_without_features_when_redis_fails(tmp_path: Any, redis_server: str, namespace: str) -> None:
    options = {"feature_backend": "redis", "redis_url": redis_server, "feature_namespace": namespace}
    rg = RiskGuard(make_settings(f"sqlite:///{tmp_path}/rg.db", **options), background=False)
    try:
        rg.publish(EXAMPLE_STRATEGY, actor="test")
        with socket.socket() as probe:  # a port nothing listens on: Redis is gone
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        pool = rg.feature_engine.client.connection_pool
        pool.disconnect()
        pool.connection_kwargs["port"] = port
        pool.reset()  # forget the open connections: the next one dials the dead port
        result = rg.decide(transfer("down"), with_explain=True)
        assert result["degraded"] is True
        # the takeover-sequence state lives in the same Redis: that stage fails open too
        assert [d["stage"] for d in result["degradations"]] == ["features", "accountsec"]
        assert result["decision"] == "allow"  # the features stage fails open by default
    finally:
        rg.close()
