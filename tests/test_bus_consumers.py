"""The consumers run from the bus: exact effects, nothing counted twice when messages come again, a
message that always fails ends in the dead-letter stream, and the complaint and graph jobs file and
analyse what they are sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, insert, select

from bus_helpers import bus_names, decide_all, published_flows, transfers
from riskguard.app import RiskGuard
from riskguard.bus.consumers import ComplaintsConsumer, FlowsConsumer, GraphConsumer
from riskguard.bus.runner import ConsumerRunner, decode
from riskguard.bus.tables import bus_outbox, bus_processed
from riskguard.complaints.tables import complaint_records
from riskguard.store.tables import published_features

from conftest import make_settings


@pytest.fixture(params=["redis", "nats"])
def bus_guard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RiskGuard]:
    settings = make_settings(
        f"sqlite:///{tmp_path}/c.db",
        bus_enabled=True,
        bus_redeliver_s=0.3,
        bus_max_deliveries=2,
        **bus_names(request, request.param),
    )
    with RiskGuard(settings, background=False) as guard:
        guard.bus_relay.bus.reset()
        try:
            yield guard
        finally:
            guard.bus_relay.bus.reset()


def _run(guard: RiskGuard, consumer: Any) -> ConsumerRunner:
    runner = ConsumerRunner(guard.engine, guard.bus_relay.bus, consumer, max_deliveries=2, batch=64, block_ms=50)
    runner.run(threading.Event(), until_idle=True)
    return runner


def test_flows_are_exact_and_a_redelivery_counts_nothing_twice(bus_guard: RiskGuard) -> None:
    guard = bus_guard
    decide_all(guard, transfers(240))
    assert guard.bus_relay.drain() == 240
    flows = FlowsConsumer(guard)
    first = _run(guard, flows)
    assert first.processed == 240
    expected = published_flows(guard.bus_relay.bus)
    assert flows.totals() == expected
    assert sum(c[0] for a in expected.values() for c in a.values()) > 100  # most transfers were allowed
    # the same events published again (a relay that died before deleting its rows): no effect
    with guard.engine.begin() as connection:
        connection.execute(insert(bus_outbox), [{"event_id": f"t{i}"} for i in range(0, 240, 3)])
    assert guard.bus_relay.drain() == 80
    bus = guard.bus_relay.bus
    if bus.name == "nats":
        assert bus.length() == 240  # JetStream dropped the repeated message ids (its duplicate window)
    # and the same bodies under new transport ids, which no bus can recognise
    repeats = bus.fetch("probe2", "p", 20, 50)
    bus.publish([(f"{d.id}#again", d.body) for d in repeats])
    again = _run(guard, flows)
    assert (again.processed, again.skipped) == (0, 20 + (80 if bus.name == "redis" else 0))
    assert flows.totals() == expected
    with guard.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(bus_processed)).scalar_one() == 240
        ratios = dict(
            connection.execute(
                select(published_features.c.entity, published_features.c.value).where(
                    published_features.c.source == "bus.pass_through"
                )
            ).all()
        )
    wanted = {}
    for account, per_currency in expected.items():
        shares = [float(min(sa, ra) / ra) for rc, ra, _sc, sa in per_currency.values() if rc >= 2 and ra > 0]
        if shares:
            wanted[account] = max(shares)  # of the money received, the share sent on (the most mule-like currency)
    assert wanted and ratios == pytest.approx(wanted)


def test_a_message_that_always_fails_goes_to_dead_letters(bus_guard: RiskGuard) -> None:
    guard = bus_guard
    decide_all(guard, transfers(10))
    guard.bus_relay.drain()
    good = guard.bus_relay.bus.fetch("probe", "p", 1, 50)[0]
    broken = msgspec.json.decode(good.body)
    broken["event_id"], broken["payload"] = "broken-1", '{"event_id": "broken-1", "type": "nonsense"}'
    guard.bus_relay.bus.publish([("broken-1", msgspec.json.encode(broken))])
    runner = _run(guard, FlowsConsumer(guard))
    assert runner.processed == 10 and runner.dead == 1 and runner.failures == 2
    [letter] = guard.bus_relay.bus.dead_letters("flows")
    assert letter.id == "broken-1" and "ValidationError" in letter.reason
    lag = guard.bus_relay.bus.lag("flows")
    assert (lag.total, lag.dead) == (0, 1)


def _complaint(i: int) -> dict[str, Any]:
    return {
        "event_id": f"c-{i}",
        "type": "complaint",
        "occurred_at": f"2026-11-20T02:{10 + 3 * i:02d}:00Z",
        "account_id": f"cust-{i}",
        "device_id": "agent-phone-1",
        "attributes": {
            "text": f"本人因疫情失业，无力偿还贵司借款{20000 + i}元。现要求停息挂账、减免全部罚息，"
            "否则向金融监管总局投诉。",
            "contact_phone": "+8616612345678",
        },
    }


def test_complaints_are_filed_once_per_event(bus_guard: RiskGuard) -> None:
    guard = bus_guard
    decide_all(guard, [_complaint(i) for i in range(4)] + transfers(6, prefix="x"))
    guard.bus_relay.drain()
    assert _run(guard, ComplaintsConsumer(guard)).processed == 10
    # a restarted consumer handed the same events again, past the processed ids (the crash came after
    # its effects, before their record): the analyser files each event id once
    messages = [decode(d) for d in guard.bus_relay.bus.fetch("probe", "p", 100, 50)]
    consumer = ComplaintsConsumer(guard)
    consumer.apply(None, messages)
    consumer.apply(None, messages)
    with guard.engine.connect() as connection:
        kinds = connection.execute(select(complaint_records.c.event_id, complaint_records.c.kind)).all()
    assert sorted(kinds) == [(f"c-{i}", "complaint") for i in range(4)]  # strangers' transfers are not filed
    consumer.apply(None, [])  # nothing to do is nothing done


def test_graph_increments_publish_motif_features(bus_guard: RiskGuard) -> None:
    guard = bus_guard
    consumer = GraphConsumer(guard, analyse_every_s=0)
    consumer.start()  # an empty log: nothing to analyse yet
    assert consumer.analyses == 0
    fan_in = [
        {**body, "account_id": f"payer-{i}", "counterparty_id": "collector", "amount": "900.00", "currency": "CNY"}
        for i, body in enumerate(transfers(6, prefix="f"))
    ]
    decide_all(guard, fan_in)
    guard.bus_relay.drain()
    runner = ConsumerRunner(guard.engine, guard.bus_relay.bus, consumer, max_deliveries=2, block_ms=50)
    while runner.step():
        pass
    assert consumer.analyses >= 1 and set(consumer.seen) == {f"f{i}" for i in range(6)}
    with guard.engine.connect() as connection:
        value = connection.execute(
            select(published_features.c.value).where(
                published_features.c.source == "graph.fan_in", published_features.c.entity == "collector"
            )
        ).scalar()
    assert value == 6.0
    restarted = GraphConsumer(guard, analyse_every_s=0)
    restarted.start()  # rebuilt from the event log: the six events are known, and analysed again
    assert set(restarted.seen) == set(consumer.seen) and restarted.analyses == 1
    restarted.apply(None, [decode(d) for d in guard.bus_relay.bus.fetch("probe", "p", 10, 50)])
    assert restarted.graph.flows.height == 6 and not restarted._dirty  # redelivered: nothing folded twice


def test_flows_on_postgresql_with_two_members(postgres_url: str, request: pytest.FixtureRequest) -> None:
    settings = make_settings(postgres_url, bus_enabled=True, **bus_names(request, "redis"))
    with RiskGuard(settings, background=False) as guard:
        bus = guard.bus_relay.bus
        try:
            decide_all(guard, transfers(90))
            assert guard.bus_relay.drain() == 90
            flows = FlowsConsumer(guard)
            members = [
                ConsumerRunner(guard.engine, bus, flows, max_deliveries=2, member=f"m{i}", batch=16, block_ms=20)
                for i in range(2)
            ]
            while sum(member.step() for member in members):  # two members of one group, turn about
                pass
            assert sum(member.processed for member in members) == 90 and all(m.processed for m in members)
            assert flows.totals() == published_flows(bus)
        finally:
            bus.reset()
