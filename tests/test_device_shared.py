"""Trusted devices across service workers: two RiskGuard instances on one database (SQLite and
PostgreSQL; Redis for nonce uses) share nonces, key bindings and counters; group-commit steps fail alone."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from riskguard.app import RiskGuard
from riskguard.device import codes
from riskguard.device.client import DeviceClient, InProcessTransport
from riskguard.device.errors import DeviceRefused
from riskguard.device.nonces import NonceStore
from riskguard.device.tables import device_keys, device_nonces
from riskguard.device.testing import TestAuthority, trust_config
from riskguard.errors import Unavailable
from riskguard.store.writer import GroupCommitWriter, WriteRequest

from conftest import make_settings, transfer

T0 = datetime(2026, 11, 25, 10, tzinfo=UTC)
LONG_AGO = T0 - timedelta(days=400)


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority()


def workers(url: str, authority: TestAuthority, **overrides: Any) -> Iterator[tuple[RiskGuard, RiskGuard]]:
    first = RiskGuard(make_settings(url, **overrides), background=False)
    second = RiskGuard(make_settings(url, **overrides), background=False)
    for guard in (first, second):
        guard.devices.configure(trust_config(authority))
    try:
        yield first, second
    finally:
        first.close()
        second.close()


@pytest.fixture
def pair(db_url: str, authority: TestAuthority) -> Iterator[tuple[RiskGuard, RiskGuard]]:
    yield from workers(db_url, authority)


def device_vars(guard: RiskGuard, body: dict[str, Any]) -> dict[str, Any]:
    return guard.decide(body, with_explain=True)["explain"]["variables"]  # type: ignore[no-any-return]


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def test_nonces_and_counters_are_used_once_across_workers(
    pair: tuple[RiskGuard, RiskGuard], authority: TestAuthority, db_url: str
) -> None:
    a, b = pair
    phone = DeviceClient("acc-1", "dev-1", InProcessTransport(a.devices), authority=authority)
    phone.register(occurred_at=LONG_AGO)
    signed = phone.sign(transfer("t1", occurred_at=at(0)))  # a nonce issued by worker A
    assert device_vars(b, signed)["device.signature_ok"]  # ... used on B, which had not seen the key yet
    replay = dict(signed, event_id="t2")
    with pytest.raises(Unavailable):  # A's own view let it through; the commit refused the second use
        a.decide(replay)
    assert device_vars(a, replay)["device.failure"] == codes.NONCE_REPLAYED  # the client's retry
    assert device_vars(b, replay)["device.failure"] == codes.NONCE_REPLAYED
    # counters: the phone signs 5 through A; a clone of its key sends 3 with a fresh nonce to B
    assert device_vars(a, phone.sign(transfer("t3", occurred_at=at(1)), counter=5))["device.signature_ok"]
    clone = DeviceClient("acc-1", "dev-1", InProcessTransport(b.devices), authority=authority, key=phone.key)
    cloned = clone.sign(transfer("t4", occurred_at=at(2)), counter=3)
    with pytest.raises(Unavailable):  # B still had counter 1; the conditional update found 5
        b.decide(cloned)
    assert device_vars(b, cloned)["device.failure"] == codes.COUNTER_REGRESSION
    assert device_vars(b, phone.sign(transfer("t5", occurred_at=at(3)), counter=6))["device.signature_ok"]
    with a.engine.connect() as connection:
        counter, last = connection.execute(select(device_keys.c.counter, device_keys.c.last_event)).one()
        uses = connection.execute(select(func.count()).select_from(device_nonces)).scalar_one()
    assert (counter, last, uses) == (6, "t5", 4)  # t1, t3, t5 and the registration; nothing refused
    # the counter is stored with its decision: a worker started now (nothing flushed, nobody closed)
    third = RiskGuard(make_settings(db_url), background=False)
    try:
        third.devices.configure(trust_config(authority))
        late = phone.sign(transfer("t6", occurred_at=at(4)), counter=6)
        assert device_vars(third, late)["device.failure"] == codes.COUNTER_REGRESSION
    finally:
        third.close()


def test_bindings_and_revocations_reach_the_other_worker(
    pair: tuple[RiskGuard, RiskGuard], authority: TestAuthority
) -> None:
    a, b = pair
    phone = DeviceClient("acc-1", "dev-1", InProcessTransport(a.devices), authority=authority)
    phone.register(occurred_at=LONG_AGO)
    unsigned = transfer("u1", occurred_at=at(0))
    assert not device_vars(b, unsigned)["device.registered"]  # B has not polled yet
    b.refresh()  # what its poll loop does every RISKGUARD_STRATEGY_POLL_MS
    assert device_vars(b, dict(unsigned, event_id="u2"))["device.registered"]
    a.devices.revoke(phone.key_id, actor="test")
    b.refresh()
    assert device_vars(b, phone.sign(transfer("s1", occurred_at=at(1))))["device.failure"] == codes.KEY_REVOKED
    assert a.audit.recent(action="device.revoke")
    # revoked on A between B's polls: B's signed decision is refused when it is written, then named
    other = DeviceClient("acc-2", "dev-2", InProcessTransport(b.devices), authority=authority)
    other.register(occurred_at=LONG_AGO)
    a.devices.revoke(other.key_id, actor="test")
    late = other.sign(transfer("s2", account_id="acc-2", device_id="dev-2", occurred_at=at(2)))
    with pytest.raises(Unavailable):
        b.decide(late)
    assert device_vars(b, late)["device.failure"] == codes.KEY_REVOKED
    revoked = b.devices.registry.current(other.key_id)
    assert revoked is not None and revoked.status == "revoked" and isinstance(revoked.ended_at, datetime)
    # one key, bound by two workers at once to two accounts: the database keeps the first
    key = ec.generate_private_key(ec.SECP256R1())
    first = DeviceClient("acc-7", "dev-7", InProcessTransport(a.devices), authority=authority, key=key)
    second = DeviceClient("acc-8", "dev-7", InProcessTransport(b.devices), authority=authority, key=key)
    first.register(occurred_at=LONG_AGO)
    with pytest.raises(DeviceRefused) as caught:
        second.register(occurred_at=LONG_AGO)  # B had not seen A's binding; the unique index had
    assert caught.value.code == codes.KEY_BOUND_TO_OTHER_ACCOUNT and caught.value.status == 409
    bound = b.devices.registry.current(first.key_id)
    assert bound is not None and bound.account_id == "acc-7" and b.devices.registry.for_pair("acc-8", "dev-7") is None
    # a queued registration (the demo's way) that the database refuses is taken back out of the index
    queued = InProcessTransport(a.devices, durable=False)
    third = DeviceClient("acc-9", "dev-9", queued, authority=authority, key=key)
    a.devices.registry.withdraw(a.devices.registry.current(first.key_id), None)  # A forgets it (a stale view)
    assert third.register(occurred_at=LONG_AGO)["registered"]
    with pytest.raises(DeviceRefused) as caught:
        queued.settle()
    assert caught.value.code == codes.DEVICE_MISMATCH and a.devices.registry.for_pair("acc-9", "dev-9") is None
    # the same binding registered again on the other worker is a repeat, not a refusal
    again = DeviceClient("acc-7", "dev-7", InProcessTransport(b.devices), authority=authority, key=key)
    assert again.register(occurred_at=LONG_AGO)["already"]


def test_redis_shares_nonce_uses_at_once(redis_server: str, tmp_path: Any, authority: TestAuthority) -> None:
    import redis

    namespace = "dev" + uuid.uuid4().hex[:8]
    options = {"feature_backend": "redis", "redis_url": redis_server, "feature_namespace": namespace}
    client = redis.Redis.from_url(redis_server)
    try:
        for a, b in workers(f"sqlite:///{tmp_path}/rg.db", authority, **options):
            phone = DeviceClient("acc-1", "dev-1", InProcessTransport(a.devices), authority=authority)
            phone.register(occurred_at=LONG_AGO)
            signed = phone.sign(transfer("t1", occurred_at=at(0)))
            assert device_vars(b, signed)["device.signature_ok"]
            # no optimistic pass: A asks Redis before deciding
            assert device_vars(a, dict(signed, event_id="t2"))["device.failure"] == codes.NONCE_REPLAYED
            assert client.keys(f"{{{namespace}}}:device:nonce:*")
            with a.engine.connect() as connection:
                assert connection.execute(select(func.count()).select_from(device_nonces)).scalar_one() == 0
    finally:
        for name in client.scan_iter(f"{{{namespace}}}:*"):
            client.delete(name)
        client.close()


def test_a_failed_step_fails_its_own_request_only(guard: RiskGuard) -> None:
    writer = GroupCommitWriter(guard.engine)
    mark = "?" if guard.engine.dialect.name == "sqlite" else "%s"
    insert = f"INSERT INTO device_nonces (nonce_id, consumed_by, expires_ms) VALUES ({mark}, {mark}, 0)"
    started, gate = threading.Event(), threading.Event()

    def hold(_cursor: Any) -> None:
        started.set()
        gate.wait(10)

    def use(name: str, *, fail: bool = False) -> Any:
        def step(cursor: Any) -> None:
            cursor.execute(insert, (name, "test"))
            if fail:
                raise DeviceRefused(codes.NONCE_REPLAYED)

        return step

    try:
        blocker = writer.submit(WriteRequest(steps=[hold]))  # holds the writer in a batch of its own
        assert started.wait(10)
        tickets = [
            writer.submit(WriteRequest(steps=[use("n1")])),
            writer.submit(WriteRequest(steps=[use("n2"), use("n3", fail=True)])),
            writer.submit(WriteRequest(steps=[use("n4")])),
        ]
        gate.set()  # the three are now one batch
        assert all(ticket.wait(10) for ticket in [blocker, *tickets])
        assert [type(t.error) for t in tickets] == [type(None), DeviceRefused, type(None)]
        with guard.engine.connect() as connection:
            stored = connection.execute(select(device_nonces.c.nonce_id).order_by(device_nonces.c.nonce_id)).scalars()
            assert list(stored) == ["n1", "n4"]
        assert writer.batches == 2
    finally:
        writer.close()


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0, max_value=200), bit=st.integers(min_value=0, max_value=7))
def test_an_altered_nonce_is_never_accepted(position: int, bit: int) -> None:
    store = NonceStore(b"k" * 32, clock=lambda: 1_000.0)
    digest = bytes(32)
    nonce, _ = store.issue(digest)
    assert store.check(nonce, digest, "e1") is None
    index = position % len(nonce)
    altered = nonce[:index] + bytes([nonce[index] ^ (1 << bit)]) + nonce[index + 1 :]
    assert store.check(altered, digest, "e1") in (codes.NONCE_UNKNOWN, codes.DIGEST_MISMATCH)
    assert store.check(nonce, bytes([1]) + digest[1:], "e1") == codes.DIGEST_MISMATCH
    assert NonceStore(b"x" * 32, clock=lambda: 1_000.0).check(nonce, digest, "e1") == codes.NONCE_UNKNOWN


def test_a_queued_registration_is_stored_as_registered(guard: RiskGuard, authority: TestAuthority) -> None:
    """Decisions made before a queued registration is written do not leak into its row."""
    from riskguard.events.validate import parse_event_obj

    guard.devices.configure(trust_config(authority))
    started, gate = threading.Event(), threading.Event()

    def hold(_cursor: Any) -> None:
        started.set()
        gate.wait(10)

    guard.writer.submit(WriteRequest(steps=[hold]))  # the writer is busy until the gate opens
    assert started.wait(10)
    transport = InProcessTransport(guard.devices, durable=False)
    phone = DeviceClient("acc-1", "dev-1", transport, authority=authority)
    assert phone.register(occurred_at=LONG_AGO)["registered"]
    submitted = [guard.submit(parse_event_obj(phone.sign(transfer(f"q{i}", occurred_at=at(i))))) for i in (1, 2)]
    gate.set()
    transport.settle()
    assert all(s.ticket.wait(10) and s.ticket.error is None for s in submitted)
    assert all(s.body["explain"]["variables"]["device.signature_ok"] for s in submitted)
    with guard.engine.connect() as connection:
        assert tuple(connection.execute(select(device_keys.c.counter, device_keys.c.last_event)).one()) == (2, "q2")
