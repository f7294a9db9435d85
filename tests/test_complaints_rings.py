"""Rings of complaints and loan applications: a simulated world's agent and intermediary rings found in
bulk and one at a time, order independence, text-and-timing ties, routing of real complainants, the
evidence and ``riskguard complaints scan``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from riskguard.cli.main import app
from riskguard.complaints import HANDLE, REVIEW, VERIFY, AnalyzerConfig, ComplaintAnalyzer, Record, from_fields
from riskguard.complaints.evaluate import evaluate, world_truth
from riskguard.complaints.evidence import mask_evidence, ring_alert
from riskguard.complaints.records import from_frame, read_events
from riskguard.sim.config import TYPOLOGIES, WorldConfig
from riskguard.sim.world import simulate
from riskguard.sim.writer import write_world

TEMPLATE = (
    "本人因疫情失业，无力偿还贵司借款{}元。贵司存在暴力催收行为。现要求停息挂账，否则将向金融监管总局及12378投诉。"
)


def complaint(n: int, account: str, minute: int, **fields: object) -> Record:
    attributes = {"text": fields.pop("text", TEMPLATE.format(10000 + 100 * n))}
    for name in ("contact_phone", "refund_account", "agent_phone", "agent_name", "power_of_attorney"):
        if name in fields:
            attributes[name] = fields.pop(name)
    body = {
        "event_id": f"c{n:04d}",
        "type": "complaint",
        "occurred_at": f"2026-03-01T{9 + minute // 60:02d}:{minute % 60:02d}:00+08:00",
        "account_id": account,
        "phone": fields.pop("phone", f"+86139{n:08d}"),
        "device_id": fields.pop("device", f"own-{account}"),
        "amount": "12000.00",
        "attributes": attributes,
        **fields,
    }
    return from_fields(body)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Agents and intermediaries only (other typologies off), fixed seed."""
    out = tmp_path_factory.mktemp("complaints-world")
    intensity = {**dict.fromkeys(TYPOLOGIES, 0.0), "proxy_rights_agent": 100.0, "loan_intermediary": 100.0}
    write_world(simulate(WorldConfig(accounts=6000, days=14, seed=5, intensity=intensity)), out)
    return out


@pytest.fixture(scope="module")
def records(world: Path) -> list[Record]:
    return list(from_frame(read_events(world)))


def test_world_rings_found_in_bulk_with_precision_and_recall(world: Path, records: list[Record]) -> None:
    analyzer = ComplaintAnalyzer()
    assessments = analyzer.build(records)
    scores = {s.kind: s for s in evaluate(analyzer, assessments, world_truth(world))}
    for kind in ("complaint", "loan_application"):
        score = scores[kind]
        assert score.gangs >= 3 and score.gangs_found == score.gangs
        assert score.precision >= 0.95 and score.recall >= 0.95, score
        assert score.false_flag_rate <= 0.02, score
    by_kind = {ring.kind for ring in analyzer.rings()}
    assert by_kind == {"agent_ring", "loan_ring"}


def test_one_at_a_time_ends_where_bulk_does(records: list[Record]) -> None:
    bulk = ComplaintAnalyzer()
    bulk.build(records)
    one = ComplaintAnalyzer()
    for record in records:
        one.add(record)
    rings = lambda a: {  # noqa: E731
        r.key: sorted(a.records[m].event_id for m in r.members + [x for x, _, _ in r.attached]) for r in a.rings()
    }
    assert rings(one) == rings(bulk)
    for rid in range(len(bulk)):
        mine, theirs = one.assess(one.rid_of[bulk.records[rid].event_id]), bulk.assess(rid)
        assert (mine.route, mine.ring, mine.score) == (theirs.route, theirs.ring, theirs.score)


def agent_batch() -> list[Record]:
    """An agent files for six customers from two devices with its own phone, in a morning burst; one
    complaint comes from a customer's own phone and device (only its text and timing tie it)."""
    out = []
    for i in range(6):
        out.append(complaint(i, f"cust-{i}", 10 * i, device=f"agent-dev-{i % 2}", contact_phone="+8616600000001"))
    out.append(complaint(6, "cust-6", 65))
    out.append(complaint(7, "plain-1", 30, text="我的账户昨天被重复扣款，请核实后退回。"))
    out.append(complaint(8, "plain-2", 300, text=TEMPLATE.format(5000)))  # the template, hours later: not tied
    return out


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(9))))
def test_rings_do_not_depend_on_the_order_records_arrive_in(order: list[int]) -> None:
    batch = agent_batch()
    analyzer = ComplaintAnalyzer()
    for i in order:
        analyzer.add(batch[i])
    (ring,) = analyzer.rings()
    members = {analyzer.records[m].event_id for m in ring.members}
    attached = {analyzer.records[r].event_id for r, _, _ in ring.attached}
    assert members == {f"c{i:04d}" for i in range(6)} and attached == {"c0006"}
    assert ring.customers == 7 and ring.identifier_kinds == ["device", "phone"]
    bulk = ComplaintAnalyzer()
    bulk.build(batch)
    assert bulk.rings()[0].key == ring.key


def test_routes_real_complainants_normally_and_agents_for_review() -> None:
    analyzer = ComplaintAnalyzer()
    results = {a.event_id: a for a in analyzer.build(agent_batch())}
    assert all(results[f"c{i:04d}"].route == REVIEW for i in range(7))
    assert results["c0007"].route == HANDLE and results["c0007"].ring is None
    assert results["c0008"].route != REVIEW  # the template alone, outside the burst
    unique = analyzer.add(
        complaint(9, "real", 600, text="我在三月一日用信用卡买的冰箱一直没有发货，商家电话打不通，请帮我退款。")
    )
    assert unique is not None and unique.route == HANDLE and unique.score < 0.4 and unique.ring is None
    lures = analyzer.add(complaint(10, "real-2", 620, text="疫情后收入下降，想申请停息挂账和协商还款，可以吗？"))
    assert lures is not None and lures.route == HANDLE  # lure words alone are a feature, not a verdict
    assert [s.name for s in lures.signals] == ["lexicon"]
    helper = analyzer.add(
        complaint(11, "real-3", 640, text="我的账户被冻结了，请尽快解冻。", contact_phone="+8613700000000")
    )
    assert helper is not None and helper.route == VERIFY  # someone else's phone: check on the registered one
    agent = analyzer.add(complaint(12, "cust-12", 70, device="agent-dev-0", contact_phone="+8616600000001"))
    assert agent is not None and agent.route == REVIEW and agent.ring == results["c0000"].ring


def test_fee_to_a_common_payee_soon_after_ties_applications() -> None:
    analyzer = ComplaintAnalyzer(AnalyzerConfig(min_customers=3, single_kind_customers=5))
    for i in range(5):
        application = {
            "event_id": f"a{i}",
            "type": "loan_application",
            "occurred_at": f"2026-03-0{1 + i}T14:00:00+08:00",
            "account_id": f"client-{i}",
            "phone": f"+8613900000{i:03d}",
            "device_id": f"own-{i}",
            "amount": "100000.00",
            "attributes": {"employer": f"公司{i}", "declared_income": 20000},
        }
        analyzer.add(from_fields(application))
        for j, (amount, payee) in enumerate(
            (("15000.00", "acc-agent"), ("200.00", f"friend-{i}"), ("37.50", "acc-agent"))
        ):
            fee = {
                "event_id": f"t{i}-{j}",
                "type": "transfer",
                "occurred_at": f"2026-03-0{3 + i}T10:0{j}:00+08:00",
                "account_id": f"client-{i}",
                "amount": amount,
                "counterparty_id": payee,
            }
            assert analyzer.add(from_fields(fee)) is None
        if i == 3:  # four customers tied by one kind of identifier are not yet a ring
            assert analyzer.rings() == []
    (ring,) = analyzer.rings()
    assert ring.kind == "loan_ring" and ring.customers == 5
    assert ring.identifier_kinds == ["receiving_account"]  # the fee payee: a round share of the loan
    assert analyzer.fee_links == 5


def test_evidence_names_shared_items_similarity_and_timeline_and_masks(world: Path, records: list[Record]) -> None:
    analyzer = ComplaintAnalyzer()
    analyzer.build(records)
    agent = next(r for r in analyzer.rings() if r.kind == "agent_ring")
    alert = ring_alert(analyzer, agent)
    evidence = alert["evidence"]
    assert evidence["shared"][0]["customers"] >= 3
    assert evidence["similarity"]["mean"] >= 0.7 and evidence["similarity"]["lure_terms"]
    assert evidence["timeline"]["bursts"] and evidence["customers"] == len(alert["accounts"])
    raw = json.dumps(evidence, ensure_ascii=False)
    shown = json.dumps(mask_evidence(evidence), ensure_ascii=False)
    phone = evidence["members"][0]["contact_phone"]
    assert phone in raw and phone not in shown
    assert alert["accounts"][0] in raw and alert["accounts"][0] not in shown


def test_scan_command_prints_precision_and_recall_and_writes_masked_files(world: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["complaints", "scan", str(world), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "agent rings: precision 1.00 recall 1.00" in result.output
    assert "intermediary rings: precision" in result.output
    rings = json.loads((tmp_path / "rings.json").read_text(encoding="utf-8"))
    assert rings and all("*" in m["account_id"] for r in rings for m in r["evidence"]["members"])
    bad = CliRunner().invoke(app, ["complaints", "scan", str(tmp_path / "nothing")])
    assert bad.exit_code == 2 and "no Parquet event files" in bad.output


def test_declared_agents_and_shared_documents() -> None:
    analyzer = ComplaintAnalyzer()
    declared = analyzer.add(
        complaint(20, "with-lawyer", 0, text="我委托律师处理信用卡争议。", agent_name="李律师", power_of_attorney=True)
    )
    assert declared is not None and declared.route == VERIFY  # check the agent's ID and authorisation
    assert declared.signals[0].detail == {"power_of_attorney": True}
    for i in range(5):  # the same "hospital certificate" behind five customers' complaints, own phones
        body = {
            "event_id": f"doc-{i}",
            "type": "complaint",
            "occurred_at": f"2026-03-0{1 + i}T10:00:00+08:00",
            "account_id": f"patient-{i}",
            "phone": f"+8613{i:09d}",
            "device_id": f"own-{i}",
            "attributes": {
                "text": f"第{i}位客户的独特投诉内容{'甲乙丙丁戊'[i] * 5}",
                "attachment_hashes": ["SHA256:AB12"],
            },
        }
        result = analyzer.add(from_fields(body))
    assert result is not None and result.route == REVIEW and result.ring is not None
    (ring,) = analyzer.rings()
    assert ring.identifier_kinds == ["attachment"] and ring.customers == 5
