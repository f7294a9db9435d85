"""The ordered takeover sequence (accountsec/sequence.py): new device → credential change → money out,
in event-time order, idempotent on event id, on the memory store (rebuilt after a restart) and on Redis
(shared by workers)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from riskguard.accountsec.sequence import MemorySequenceStore, RedisSequenceStore, step
from riskguard.app import RiskGuard
from riskguard.events.schema import Event
from riskguard.events.validate import parse_event_obj

from conftest import make_settings

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
WINDOW_S = 3 * 3600
MEMORY_S = 30 * 86400


def body(n: int, minute: float, kind: str, *, account: str = "acc-1", **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"{account}-e{n}",
        "type": kind,
        "occurred_at": (T0 + timedelta(minutes=minute)).isoformat(),
        "account_id": account,
    }
    if kind in ("transfer", "withdrawal"):
        event.update(amount="8000.00", currency="CNY")
        if kind == "transfer":
            event["counterparty_id"] = "mule-1"
    event.update(fields)
    return event


def ev(n: int, minute: float, kind: str, **fields: Any) -> Event:
    return parse_event_obj(body(n, minute, kind, **fields), max_future_skew_s=10**9)


def takeover(account: str = "acc-1", phone: bool = True) -> list[dict[str, Any]]:
    """The owner's history on their phone, then a takeover in order: login on a new device, bind it,
    change the password (and the phone), drain."""
    rows = [
        body(1, 0, "login", account=account, device_id="own", attributes={"success": True}),
        body(2, 30, "transfer", account=account, device_id="own"),
        body(3, 600, "login", account=account, device_id="evil", attributes={"success": True}),
        body(4, 605, "device_bind", account=account, device_id="evil"),
        body(5, 609, "password_change", account=account, device_id="evil"),
    ]
    if phone:
        rows.append(body(6, 612, "profile_change", account=account, device_id="evil", attributes={"field": "phone"}))
    rows.append(body(7, 620, "transfer", account=account, device_id="evil"))
    return rows


def run(store: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [store.evaluate(parse_event_obj(row, max_future_skew_s=10**9)) for row in rows]


def test_the_sequence_in_order_reaches_stage_three_on_the_drain() -> None:
    out = run(MemorySequenceStore(window_s=WINDOW_S, memory_s=MEMORY_S), takeover())
    stages = [v["takeover.sequence_stage"] for v in out]
    assert stages == [0, 0, 1, 1, 2, 2, 3]
    drain = out[-1]
    assert drain["takeover.changed"] == ["password", "phone"]
    assert drain["takeover.seconds_since_new_device"] == 20 * 60
    assert drain["takeover.seconds_since_change"] == 8 * 60
    assert [v["takeover.new_device"] for v in out] == [False, False, True, True, True, True, True]


def test_order_matters_not_co_occurrence() -> None:
    # the same three kinds of event inside the window, but the password change came BEFORE the new device
    rows = [
        body(1, 0, "login", device_id="own", attributes={"success": True}),
        body(2, 10, "password_change", device_id="own"),
        body(3, 20, "login", device_id="new", attributes={"success": True}),
        body(4, 30, "transfer", device_id="new"),
    ]
    out = run(MemorySequenceStore(window_s=WINDOW_S, memory_s=MEMORY_S), rows)
    assert [v["takeover.sequence_stage"] for v in out] == [0, 0, 1, 1]
    # money out before the change does not complete it either
    rows = [
        body(1, 0, "login", device_id="own", attributes={"success": True}),
        body(2, 10, "login", device_id="new", attributes={"success": True}),
        body(3, 20, "transfer", device_id="new"),
        body(4, 30, "password_change", device_id="new"),
    ]
    out = run(MemorySequenceStore(window_s=WINDOW_S, memory_s=MEMORY_S), rows)
    assert [v["takeover.sequence_stage"] for v in out] == [0, 1, 1, 2]


def test_a_late_arriving_change_does_not_advance_the_sequence() -> None:
    store = MemorySequenceStore(window_s=WINDOW_S, memory_s=MEMORY_S)
    rows = [
        body(1, 0, "login", device_id="own", attributes={"success": True}),
        body(2, 100, "login", device_id="new", attributes={"success": True}),
        body(3, 90, "password_change", device_id="own"),  # occurred before the new device: arrives late
        body(4, 110, "transfer", device_id="new"),
    ]
    out = run(store, rows)
    assert [v["takeover.sequence_stage"] for v in out] == [0, 1, 0, 1]  # the change is before the sequence
    assert out[-1]["takeover.seconds_since_new_device"] == 10 * 60  # ... which it left open


def test_the_window_closes_the_sequence() -> None:
    store = MemorySequenceStore(window_s=WINDOW_S, memory_s=MEMORY_S)
    rows = takeover(phone=False)
    rows[-1] = body(7, 600 + 4 * 60, "transfer", device_id="evil")  # four hours after the new device
    out = run(store, rows)
    assert out[-1]["takeover.sequence_stage"] == 0
    assert out[-1]["takeover.new_device"] is False


def test_failed_logins_introduce_no_device_and_signup_devices_are_not_new() -> None:
    rows = [
        body(1, 0, "signup", device_id="first"),
        body(2, 1, "device_bind", device_id="first"),  # apps bind the sign-up phone: not a new device
        body(3, 60, "login", device_id="evil", attributes={"success": False}),
        body(4, 61, "login", device_id="evil", attributes={"success": False}),
        body(5, 62, "login", device_id="evil", attributes={"success": True}),
    ]
    out = run(MemorySequenceStore(window_s=WINDOW_S, memory_s=MEMORY_S), rows)
    assert [v["takeover.new_device"] for v in out] == [False, False, False, False, True]
    assert out[-1]["takeover.seconds_since_new_device"] == 0  # first real use: the successful login


def test_an_account_without_history_opens_the_sequence_when_the_device_is_bound() -> None:
    rows = takeover()[2:]  # the world began after the owner's last login: no device history
    out = run(MemorySequenceStore(window_s=WINDOW_S, memory_s=MEMORY_S), rows)
    assert [v["takeover.sequence_stage"] for v in out] == [0, 1, 2, 2, 3]
    assert out[1]["takeover.seconds_since_new_device"] == 5 * 60  # measured from the device's first use


def test_idempotent_on_event_id() -> None:
    store = MemorySequenceStore(window_s=WINDOW_S, memory_s=MEMORY_S)
    rows = takeover()
    first = run(store, rows)
    again = run(store, rows)  # every event retried: the same answers, nothing folded twice
    assert again == first
    state = store._states["acc-1"]
    assert sorted(state.devices) == ["evil", "own"]
    assert [eid for eid, _ in state.recent] == [r["event_id"] for r in rows]
    values, after = step(state, ev(5, 609, "password_change", device_id="evil"), window_ms=1, memory_ms=1)
    assert after is None and values["takeover.sequence_stage"] == 2


def test_a_dry_run_folds_nothing() -> None:
    store = MemorySequenceStore(window_s=WINDOW_S, memory_s=MEMORY_S)
    run(store, takeover()[:2])
    probe = parse_event_obj(body(3, 600, "login", device_id="evil", attributes={"success": True}))
    assert store.evaluate(probe, observe=False)["takeover.new_device"] is True
    assert "evil" not in store._states["acc-1"].devices


@pytest.fixture
def redis_client(redis_server: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server)
    yield client
    client.close()


def test_redis_workers_share_one_sequence(redis_client: redis.Redis) -> None:
    namespace = "acctsec-" + uuid.uuid4().hex[:10]
    workers = [
        RedisSequenceStore(redis_client, namespace=namespace, window_s=WINDOW_S, memory_s=MEMORY_S) for _ in range(2)
    ]
    try:
        rows = takeover()
        # the steps land on alternating workers, some twice (a retry on the other worker)
        out = [workers[i % 2].evaluate(parse_event_obj(row)) for i, row in enumerate(rows)]
        retried = workers[1].evaluate(parse_event_obj(rows[4]))
        assert retried == out[4]
        assert [v["takeover.sequence_stage"] for v in out] == [0, 0, 1, 1, 2, 2, 3]
        assert out == run(MemorySequenceStore(window_s=WINDOW_S, memory_s=MEMORY_S), rows)
        ttl = redis_client.pttl("{" + namespace + "}:ats:acc-1")
        assert 0 < ttl <= MEMORY_S * 1000
    finally:
        workers[0].clear()


def test_redis_concurrent_workers_lose_no_step(redis_client: redis.Redis) -> None:
    namespace = "acctsec-" + uuid.uuid4().hex[:10]
    stores = [
        RedisSequenceStore(
            redis.Redis(connection_pool=redis_client.connection_pool),
            namespace=namespace,
            window_s=WINDOW_S,
            memory_s=MEMORY_S,
        )
        for _ in range(4)
    ]
    try:

        def work(i: int) -> None:
            for n in range(i, 40, 4):  # 40 logins of one account on 40 devices, four workers at once
                stores[i].evaluate(
                    parse_event_obj(body(n, n, "login", device_id=f"dev-{n}", attributes={"success": True}))
                )

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        from riskguard.accountsec.sequence import MAX_DEVICES, MAX_RECENT, _decode

        state = _decode(redis_client.get("{" + namespace + "}:ats:acc-1"))
        assert len(state.devices) == MAX_DEVICES and len(state.recent) == MAX_RECENT
        # every fold survived: the newest devices by event time are those kept
        assert set(state.devices) == {f"dev-{n}" for n in range(40 - MAX_DEVICES, 40)}
    finally:
        stores[0].clear()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_memory_state_survives_a_restart_through_the_event_log(db_url: str) -> None:
    rows = takeover()
    settings = make_settings(db_url)
    with RiskGuard(settings, background=False) as guard:
        for row in rows[:-1]:
            guard.decide(row)
    with RiskGuard(settings, background=False) as guard:  # a new process: state rebuilt from the log
        assert guard.accountsec.rebuilt == len(rows) - 1
        decided = guard.decide(rows[-1], with_explain=True)
    assert decided["explain"]["variables"]["takeover.sequence_stage"] == 3
    assert "takeover_sequence_drain" in [r["rule"] for r in decided["reasons"]]
    assert decided["decision"] != "allow"


def test_redis_state_is_shared_by_two_services(tmp_path: Path, redis_server: str) -> None:
    namespace = "acctsec-" + uuid.uuid4().hex[:10]
    db = f"sqlite:///{tmp_path}/rg.db"
    rows = takeover()
    options = {"feature_backend": "redis", "redis_url": redis_server, "feature_namespace": namespace}
    first = RiskGuard(make_settings(db, **options), background=False)
    second = RiskGuard(make_settings(db, **options), background=False)
    try:
        for i, row in enumerate(rows[:-1]):
            (first if i % 2 else second).decide(row)
        decided = second.decide(rows[-1], with_explain=True)
        assert decided["explain"]["variables"]["takeover.sequence_stage"] == 3
    finally:
        first.accountsec.sequences.clear()  # type: ignore[union-attr]
        from riskguard.features.redis_backend import clear_namespace

        clear_namespace(first.feature_engine.client, namespace)  # type: ignore[attr-defined]
        first.close()
        second.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_dormant_account_waking_on_a_new_device_is_challenged(guard: RiskGuard) -> None:
    now = datetime.now(UTC)

    def login(n: int, account: str, device: str, at: datetime, success: bool = True) -> dict[str, Any]:
        return {
            "event_id": f"dormant-{n}",
            "type": "login",
            "occurred_at": at.isoformat(),
            "account_id": account,
            "device_id": device,
            "attributes": {"success": success},
        }

    for n, account in enumerate(("sleeper", "regular", "sleeper2")):
        guard.decide(login(n, account, f"{account}-phone", now - timedelta(days=40)))
    guard.decide(login(5, "regular", "regular-phone", now - timedelta(days=3)))
    fired = {}
    for n, (account, device, success) in enumerate(
        (
            ("sleeper", "sleeper-phone", True),  # its own phone
            ("regular", "new-phone", True),  # not dormant
            ("sleeper2", "thief-phone", False),  # a failure proves no access ...
            ("sleeper2", "thief-phone", True),  # ... and does not wake the account
        ),
        start=10,
    ):
        decided = guard.decide(login(n, account, device, now, success))
        fired[(account, success)] = decided
    for key in (("sleeper", True), ("regular", True), ("sleeper2", False)):
        assert "dormant_account_new_device" not in [r["rule"] for r in fired[key]["reasons"]], key
    woke = fired[("sleeper2", True)]
    assert woke["decision"] != "allow" and "dormant_account_new_device" in [r["rule"] for r in woke["reasons"]]
    assert woke["warning"]["key"] == "account_takeover"
