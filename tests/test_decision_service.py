"""The decision service end to end through the in-process library, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from riskguard.app import RiskGuard
from riskguard.errors import Conflict, NotFound, StrategyError, ValidationFailed

from conftest import EXAMPLE_STRATEGY, make_settings, transfer


def test_example_strategy_blocks_a_listed_device(example_guard: RiskGuard) -> None:
    example_guard.add_to_list("blocked_devices", ["dev-bad"], reason="farm", expires_at=None, actor="test")
    result = example_guard.decide(transfer("e1", device_id="dev-bad", amount="10.00"))
    assert result["decision"] == "block"
    assert result["score"] == 100
    assert result["reasons"] == [
        {"code": "BLOCKED_DEVICE", "rule": "blocked_device", "message": "Device is on the block list"}
    ]
    assert result["strategy"] == {"name": "payments", "version": 1}


def test_example_strategy_reviews_large_transfer_from_shared_device(example_guard: RiskGuard) -> None:
    for i, account in enumerate(["acc-a", "acc-b"]):
        assert example_guard.decide(transfer(f"s{i}", account_id=account, amount="20.00"))["decision"] == "allow"
    small = example_guard.decide(transfer("small", account_id="acc-c", amount="5000.00"))
    assert small["decision"] == "allow"  # 5000.00 is not above 5000.0
    result = example_guard.decide(
        transfer("big", account_id="acc-d", amount="5000.01", locale="zh-CN"), with_explain=True
    )
    assert result["decision"] == "review"
    assert result["score"] == 60
    assert [r["rule"] for r in result["reasons"]] == ["shared_device_large_transfer"]
    assert result["warning"]["key"] == "scam_transfer"
    assert "安全账户" in result["warning"]["text"]
    assert result["explain"]["features"]["device_accounts_7d"] == 4
    assert result["explain"]["features"]["account_amount_24h"] == "5000.01"
    outcomes = {r["id"]: r["matched"] for r in result["explain"]["rules"]}
    assert outcomes == {"blocked_device": False, "shared_device_large_transfer": True}


def test_repeated_event_id_returns_stored_decision_without_counting_twice(example_guard: RiskGuard) -> None:
    first = example_guard.decide(transfer("dup", account_id="x1"))
    again = example_guard.decide(transfer("dup", account_id="x1"))
    assert again == first
    follow = example_guard.decide(transfer("next", account_id="x1"), with_explain=True)
    assert follow["explain"]["features"]["account_transfers_1h"] == 2  # dup counted once, plus this one
    assert example_guard.events.counts() == {"events": 2, "decisions": 2}


def test_reusing_an_event_id_for_another_event_is_refused(example_guard: RiskGuard) -> None:
    example_guard.decide(transfer("reuse"))
    with pytest.raises(Conflict):
        example_guard.decide(transfer("reuse", amount="1.00"))


def test_missing_fields_do_not_match_and_are_explained(example_guard: RiskGuard) -> None:
    login = {"event_id": "l1", "type": "login", "occurred_at": "2026-11-25T10:00:00Z", "account_id": "acc-1"}
    result = example_guard.decide(login, with_explain=True)
    assert result["decision"] == "allow"
    rules = {r["id"]: r for r in result["explain"]["rules"]}
    assert rules["blocked_device"]["matched"] is False
    assert "event.device_id" in rules["blocked_device"]["error"]
    assert "device_accounts_7d" in result["explain"]["missing_features"]


def test_bad_events_are_refused_with_the_field_named(guard: RiskGuard) -> None:
    with pytest.raises(ValidationFailed) as caught:
        guard.decide(transfer("bad", amount="-5"))
    assert caught.value.errors[0]["loc"] == ["body", "amount"]
    with pytest.raises(ValidationFailed):
        guard.decide({"event_id": "x", "type": "transfer"})
    assert guard.events.counts() == {"events": 0, "decisions": 0}


def test_shadow_rules_and_shadow_strategy_are_recorded_not_enforced(example_guard: RiskGuard) -> None:
    shadow_doc = EXAMPLE_STRATEGY.replace("name: payments", "name: challenger").replace(
        "features.device_accounts_7d >= 3", "features.device_accounts_7d >= 1"
    )
    example_guard.publish(shadow_doc, actor="test", role="shadow")
    live_doc = EXAMPLE_STRATEGY.replace("version: 1", "version: 2").replace(
        "thresholds:",
        "  - id: any_transfer_shadow\n    when: 'event.type == \"transfer\"'\n    action: block\n"
        "    score: 100\n    reason: shadow only\n    mode: shadow\nthresholds:",
    )
    example_guard.publish(live_doc, actor="test")
    result = example_guard.decide(transfer("sh1", amount="9000.00"))
    assert result["decision"] == "allow"
    assert result["strategy"] == {"name": "payments", "version": 2}
    assert result["shadow"]["rules"] == [{"id": "any_transfer_shadow", "action": "block", "score": 100}]
    assert result["shadow"]["decision_with_shadow_rules"] == "block"
    assert result["shadow"]["strategy"]["name"] == "challenger"
    assert result["shadow"]["strategy"]["decision"] == "review"
    assert result["shadow"]["strategy"]["rules"] == ["shared_device_large_transfer"]


def test_failing_stage_degrades_the_decision_by_its_policy(example_guard: RiskGuard) -> None:
    class Broken:
        name = "lists"

        def run(self, ctx: object) -> None:
            raise RuntimeError("list store down")

    stages = example_guard.pipeline.stages
    example_guard.pipeline.stages = [Broken() if s.name == "lists" else s for s in stages]
    result = example_guard.decide(transfer("deg1", amount="1.00"))
    assert result["degraded"] is True
    assert result["decision"] == "review"  # lists fail closed
    assert result["degradations"][0]["stage"] == "lists"
    assert {"code": "DEGRADED_LISTS", "rule": None, "message": "the lists stage failed; decided fail-closed"} in result[
        "reasons"
    ]

    class BrokenFeatures:
        name = "features"

        def run(self, ctx: object) -> None:
            raise RuntimeError("feature store down")

    example_guard.pipeline.stages = [BrokenFeatures() if s.name == "features" else s for s in stages]
    result = example_guard.decide(transfer("deg2", amount="1.00"))
    assert result["degraded"] is True
    assert result["decision"] == "allow"  # features fail open


def test_slow_stage_is_flagged_over_budget(db_url: str) -> None:
    settings = make_settings(db_url)
    from riskguard.config import StagePolicy

    policies = dict(settings.stage_policies)
    policies["rules"] = StagePolicy(budget_ms=0.000001, failure="closed")
    rg = RiskGuard(settings.with_(stage_policies=policies), background=False)
    try:
        result = rg.decide(transfer("slow"))
        assert result["degraded"] is True
        assert result["degradations"][0]["stage"] == "rules"
        assert result["degradations"][0]["reason"].startswith("over budget")
    finally:
        rg.close()


def test_restart_rebuilds_feature_state_from_the_log(db_url: str) -> None:
    rg = RiskGuard(make_settings(db_url), background=False)
    rg.publish(EXAMPLE_STRATEGY, actor="test")
    for i in range(3):
        rg.decide(transfer(f"r{i}", account_id=f"acc-{i}", amount="1.00"))
    rg.close()
    rg = RiskGuard(make_settings(db_url), background=False)
    try:
        assert rg.live is not None and rg.live.name == "payments"
        result = rg.decide(transfer("r9", account_id="acc-9", amount="7000.00"), with_explain=True)
        assert result["explain"]["features"]["device_accounts_7d"] == 4
        assert result["decision"] == "review"
    finally:
        rg.close()


def test_async_ingest_decides_in_background_and_after_a_crash(db_url: str) -> None:
    from riskguard.events.validate import parse_event_obj

    rg = RiskGuard(make_settings(db_url), background=False)
    rg.publish(EXAMPLE_STRATEGY, actor="test")
    events = [parse_event_obj(transfer(f"a{i}", account_id=f"acc-{i}", amount="6000.00")) for i in range(4)]
    receipt = rg.ingest([*events, events[0]])
    assert receipt["accepted"] == 4
    assert rg.get_decision("a0")["status"] == "pending"
    rg.drain()
    assert rg.get_decision("a0")["status"] == "decided"
    assert rg.get_decision("a3")["decision"] == "review"
    # accepted, then the process dies before deciding: a new instance decides them
    rg.ingest([parse_event_obj(transfer("late", account_id="acc-x", amount="6000.00"))])
    rg.close()
    rg = RiskGuard(make_settings(db_url), background=False)
    try:
        assert rg.get_decision("late")["status"] == "pending"
        rg.drain()
        assert rg.get_decision("late")["decision"] == "review"
        with pytest.raises(NotFound):
            rg.get_decision("never-sent")
    finally:
        rg.close()


def test_challenge_outcomes_are_stored_and_counted_in_features(guard: RiskGuard) -> None:
    # starter strategy: a withdrawal soon after a device bind is challenged
    base = datetime(2026, 11, 25, 10, tzinfo=UTC)
    guard.decide(
        {
            "event_id": "b1",
            "type": "device_bind",
            "occurred_at": base.isoformat(),
            "account_id": "acc-7",
            "device_id": "dev-7",
        }
    )
    for i in range(2):
        result = guard.decide(
            {
                "event_id": f"w{i}",
                "type": "withdrawal",
                "account_id": "acc-7",
                "occurred_at": (base + timedelta(minutes=i + 1)).isoformat(),
                "amount": "100.00",
                "currency": "CNY",
                "device_id": "dev-7",
            }
        )
        assert result["decision"] == "challenge"
        stored = guard.report_outcome(f"w{i}", "failed", "sms", base + timedelta(minutes=i + 1, seconds=30))
        assert stored["result"] == "failed"
    with pytest.raises(Conflict):
        guard.report_outcome("w0", "passed", "sms")
    with pytest.raises(Conflict):
        guard.report_outcome("b1", "failed", "sms")  # not a challenge
    with pytest.raises(NotFound):
        guard.report_outcome("nope", "failed", "sms")
    result = guard.decide(
        {
            "event_id": "w9",
            "type": "withdrawal",
            "account_id": "acc-7",
            "amount": "100.00",
            "occurred_at": (base + timedelta(minutes=5)).isoformat(),
            "currency": "CNY",
        },
        with_explain=True,
    )
    assert result["explain"]["features"]["account_failed_challenges_24h"] == 2
    assert result["decision"] == "block"  # failed challenges (60) + withdrawal after a bind (40)
    assert "failed_challenges" in [r["rule"] for r in result["reasons"]]


def test_list_entries_expire(example_guard: RiskGuard) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    example_guard.add_to_list("blocked_devices", ["dev-old"], reason="expired", expires_at=past, actor="test")
    assert example_guard.decide(transfer("x1", device_id="dev-old", amount="1.00"))["decision"] == "allow"
    example_guard.add_to_list("blocked_devices", ["dev-old"], reason="again", expires_at=None, actor="test")
    assert example_guard.decide(transfer("x2", device_id="dev-old", amount="1.00"))["decision"] == "block"
    example_guard.remove_from_list("blocked_devices", ["dev-old"], actor="test")
    assert example_guard.decide(transfer("x3", device_id="dev-old", amount="1.00"))["decision"] == "allow"
    actions = [row["action"] for row in example_guard.audit.recent()]
    assert actions[:3] == ["list.remove", "list.add", "list.add"]


def test_publish_is_hot_and_rollback_restores_the_previous_version(example_guard: RiskGuard) -> None:
    v2 = EXAMPLE_STRATEGY.replace("version: 1", "version: 2").replace("> 5000.0", "> 100.0")
    example_guard.publish(v2, actor="test")
    assert example_guard.live is not None and example_guard.live.version == 2
    with pytest.raises(Conflict):
        example_guard.publish(v2.replace("> 100.0", "> 200.0"), actor="test")  # same version, new content
    with pytest.raises(StrategyError):
        example_guard.publish(
            v2.replace("version: 2", "version: 3").replace("features.device_accounts_7d", "features.nope"), actor="test"
        )
    name, version = example_guard.rollback(actor="test")
    assert (name, version) == ("payments", 1)
    assert example_guard.live.version == 1
    decision = example_guard.decide(transfer("after-rollback"))
    assert decision["strategy"] == {"name": "payments", "version": 1}


def test_publication_by_another_process_is_picked_up(db_url: str) -> None:
    server = RiskGuard(make_settings(db_url), background=False)
    cli = RiskGuard(make_settings(db_url), background=False)
    try:
        cli.publish(EXAMPLE_STRATEGY, actor="cli")
        cli.add_to_list("blocked_devices", ["dev-z"], reason=None, expires_at=None, actor="cli")
        assert server.live is not None and server.live.name == "starter"
        server.refresh()  # what the poll thread does every RISKGUARD_STRATEGY_POLL_MS
        assert server.live.name == "payments"
        assert server.decide(transfer("p1", device_id="dev-z"))["decision"] == "block"
    finally:
        cli.close()
        server.close()


def test_labels_are_stored(guard: RiskGuard) -> None:
    guard.decide(transfer("lab1"))
    ids = guard.add_labels(
        [
            {
                "event_id": "lab1",
                "entity_kind": None,
                "entity_value": None,
                "label": "fraud",
                "source": "victim_report",
                "typology": "telecom_fraud",
                "note": None,
                "labelled_at": datetime(2026, 11, 26, tzinfo=UTC),
            }
        ]
    )
    assert len(ids) == 1
    stored = guard.labels.for_event("lab1")
    assert stored[0]["label"] == "fraud" and stored[0]["labelled_at"] == datetime(2026, 11, 26, tzinfo=UTC)
    assert guard.labels.known_by(datetime(2026, 11, 25, tzinfo=UTC)) == []


def test_amounts_round_trip_exactly(guard: RiskGuard) -> None:
    guard.decide(transfer("money", amount="1234567.89012345"))
    from riskguard.events.schema import from_stored
    from riskguard.store.tables import events

    with guard.engine.connect() as connection:
        payload = connection.execute(events.select().where(events.c.event_id == "money")).first().payload
    from decimal import Decimal

    assert from_stored(payload).amount == Decimal("1234567.89012345")


def test_events_from_the_future_are_refused(guard: RiskGuard) -> None:
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    with pytest.raises(ValidationFailed) as caught:
        guard.decide(transfer("future", occurred_at=future))
    assert caught.value.errors[0]["loc"] == ["body", "occurred_at"]
    assert "in the future" in caught.value.errors[0]["msg"]


def test_the_same_event_written_differently_is_a_duplicate(example_guard: RiskGuard) -> None:
    first = example_guard.decide(transfer("fmt", amount="6000.0", occurred_at="2026-11-25T18:00:00+08:00"))
    again = example_guard.decide(transfer("fmt", amount="6000.00", occurred_at="2026-11-25T10:00:00Z"))
    assert again == first


def test_accepted_event_ids_cannot_be_reused_for_other_content(example_guard: RiskGuard) -> None:
    from riskguard.events.validate import parse_event_obj

    original = parse_event_obj(transfer("q1", amount="100.00"))
    assert example_guard.ingest([original])["accepted"] == 1
    with pytest.raises(Conflict):
        example_guard.decide(transfer("q1", amount="999999.00"))  # still pending
    receipt = example_guard.ingest([parse_event_obj(transfer("q1", amount="5.00")), original])
    assert receipt["conflicts"] == ["q1"] and receipt["accepted"] == 0
    example_guard.drain()
    receipt = example_guard.ingest([original, parse_event_obj(transfer("q1", amount="7.00"))])
    assert receipt == {"accepted": 0, "event_ids": [], "duplicates": [], "conflicts": ["q1"]}
    assert example_guard.ingest([original])["duplicates"] == ["q1"]


def test_a_failed_recording_is_not_counted_and_the_retry_counts_once(example_guard: RiskGuard) -> None:
    from riskguard.errors import Unavailable

    inserts = example_guard.writer._inserts
    real_write = inserts.write
    calls = {"n": 0}

    def failing_once(work):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        return real_write(work)

    inserts.write = failing_once  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        example_guard.decide(transfer("retry", account_id="acc-r"))
    retried = example_guard.decide(transfer("retry", account_id="acc-r"), with_explain=True)
    assert retried["explain"]["features"]["account_transfers_1h"] == 1
    assert example_guard.events.counts() == {"events": 1, "decisions": 1}


def test_pending_events_are_counted_once_across_a_restart(db_url: str) -> None:
    from riskguard.events.validate import parse_event_obj

    rg = RiskGuard(make_settings(db_url), background=False)
    rg.publish(EXAMPLE_STRATEGY, actor="test")
    rg.decide(transfer("c0", account_id="acc-c"))
    rg.ingest([parse_event_obj(transfer(f"c{i}", account_id="acc-c")) for i in range(1, 4)])
    rg.close()  # "crash" before the background worker decided them
    rg = RiskGuard(make_settings(db_url), background=False)
    try:
        rg.drain()
        result = rg.decide(transfer("c9", account_id="acc-c"), with_explain=True)
        assert result["explain"]["features"]["account_transfers_1h"] == 5
    finally:
        rg.close()


class _Clock:
    """A stand-in for ``time`` in the pipeline: each stage run appears to take exactly ``step`` seconds."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def perf_counter(self) -> float:
        self.now += self.step / 2  # called once before and once after each stage
        return self.now


class _Learning:
    """A stage whose run is mostly one-off plan learning (``compile_ms``), as a first rule evaluation is."""

    def __init__(self, name: str, compile_ms: float) -> None:
        self.name, self.compile_ms = name, compile_ms

    def run(self, ctx: Any) -> None:
        ctx.compile_ms[self.name] = self.compile_ms


@pytest.mark.parametrize(("compile_ms", "over_budget"), [(95.0, False), (0.0, True)])
def test_learning_an_evaluation_plan_does_not_count_against_the_budget(
    guard: RiskGuard, monkeypatch: pytest.MonkeyPatch, compile_ms: float, over_budget: bool
) -> None:
    from riskguard.config import StagePolicy
    from riskguard.decision import pipeline as pipeline_module
    from riskguard.decision.pipeline import Pipeline
    from riskguard.events.validate import parse_event_obj

    monkeypatch.setattr(pipeline_module, "time", _Clock(step=0.1))  # every stage "takes" 100 ms
    pipeline = Pipeline(
        [_Learning("rules", compile_ms)], {"rules": StagePolicy(budget_ms=20.0, failure="open")}, guard.warnings
    )
    body, _ = pipeline.run(parse_event_obj(transfer("k1")), guard.live, None, observe=False)
    assert body["degraded"] is over_budget  # 100 ms less 95 ms of learning is within 20 ms; 100 ms is not


def test_statistics_recency_and_ratio_features_reach_the_rules(guard: RiskGuard) -> None:
    strategy = (
        EXAMPLE_STRATEGY.replace("version: 1", "version: 7")
        .replace(
            "lists:\n",
            "  - {name: avg_7d, entity: account_id, aggregate: avg, field: amount, window: 7d,"
            " include_current: false}\n"
            "  - {name: max_7d, entity: account_id, aggregate: max, field: amount, window: 7d}\n"
            "  - {name: since_last_30d, entity: account_id, aggregate: last_seen, window: 30d,"
            " include_current: false}\n"
            "  - {name: vs_usual, aggregate: ratio, of: [account_amount_24h, avg_7d]}\n"
            "lists:\n",
        )
        .replace(
            "thresholds:",
            "  - id: far_above_usual\n    when: 'features.vs_usual > 10.0 && features.since_last_30d < 3600.0'\n"
            "    action: review\n    score: 60\n    reason: Amount far above the account's usual\nthresholds:",
        )
    )
    guard.publish(strategy, actor="test")
    for i, amount in enumerate(["100.00", "120.00", "80.00"]):
        guard.decide(transfer(f"u{i}", account_id="acc-u", amount=amount, occurred_at=f"2026-11-2{i}T10:00:00Z"))
    result = guard.decide(
        transfer("u9", account_id="acc-u", amount="5000.00", occurred_at="2026-11-22T10:30:00Z"), with_explain=True
    )
    features = result["explain"]["features"]
    assert Decimal(features["avg_7d"]) == Decimal("100.00")  # exact decimals
    assert Decimal(features["max_7d"]) == Decimal("5000.00")
    assert features["since_last_30d"] == "1800.0"
    assert result["decision"] == "review"
    assert "far_above_usual" in [r["rule"] for r in result["reasons"]]
    first = guard.decide(transfer("v0", account_id="acc-new", amount="10.00"), with_explain=True)
    assert {"avg_7d", "since_last_30d", "vs_usual"} <= set(first["explain"]["missing_features"])
