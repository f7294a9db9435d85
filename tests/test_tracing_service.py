"""Tracing in the service: POST/GET /v1/traces over the event store (SQLite and PostgreSQL), freeze orders
put on a list that then blocks the mule's outgoing transfers, mule scores published, and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from riskguard.app import RiskGuard
from riskguard.cli.main import app as cli_app

from conftest import transfer

T0 = datetime(2026, 11, 20, 2, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def ledger_events() -> list[dict[str, Any]]:
    """Two victims pay mule M1 and M2 (from their bank cards); M1 splits to M2 and M3; M2 withdraws."""
    return [
        transfer(
            "p1",
            account_id="victim-a",
            counterparty_id="mule-1",
            amount="50000.00",
            card_id="card-a",
            occurred_at=at(0),
        ),
        transfer("f1", account_id="mule-1", counterparty_id="mule-2", amount="30000.00", occurred_at=at(5)),
        transfer("f2", account_id="mule-1", counterparty_id="mule-3", amount="15000.00", occurred_at=at(7)),
        transfer(
            "p2",
            account_id="victim-b",
            counterparty_id="mule-2",
            amount="20000.00",
            card_id="card-b",
            occurred_at=at(8),
        ),
        {
            "event_id": "w1",
            "type": "withdrawal",
            "occurred_at": at(20),
            "account_id": "mule-2",
            "amount": "10000.00",
            "currency": "CNY",
            "card_id": "card-m2",
        },
    ]


REPORTS = [
    {"report_id": "A", "victim_account": "victim-a", "loss": "50000.00", "reported_at": at(60), "event_ids": ["p1"]},
    {
        "report_id": "B",
        "victim_account": "victim-b",
        "loss": "20000.00",
        "reported_at": at(60),
        "window": {"start": at(0), "end": at(30)},
        "payees": ["mule-2"],
    },
]


def seed(guard: RiskGuard) -> None:
    for event in ledger_events():
        guard.decide(event)


def test_trace_freeze_and_block_over_http(guard: RiskGuard, client: TestClient) -> None:
    seed(guard)
    created = client.post("/v1/traces", json={"reports": REPORTS})
    assert created.status_code == 201, created.text
    body = created.json()
    trace_id = body["trace_id"]
    assert body["balance_basis"]["basis"] == "reconstructed"
    assert body["summary"]["traced"] == "70000.00"
    document = client.get(f"/v1/traces/{trace_id}").json()
    held = {a["account"]: a["held"] for a in document["accounts"]}
    # libr: mule-1 keeps 5,000 of victim A's; mule-2 got 30,000 of A's and 20,000 of B's and withdrew 10,000
    # of them (it had no money of its own); mule-3 holds the 15,000 it received
    assert held == {"mule-1": "5000.00", "mule-2": "40000.00", "mule-3": "15000.00"}
    assert {e["where"] for e in document["escaped"]} == {"card-m2"}
    assert sum(float(e["amount"]) for e in document["escaped"]) == 10000.0
    orders = {o["account"]: o for o in document["freeze_orders"]}
    assert orders["mule-2"]["freezable"] == "40000.00"
    assert {v["report_id"] for v in orders["mule-2"]["victims"]} == {"A", "B"}
    chain = orders["mule-3"]["paths"][0]["links"]
    assert [(link["from"], link["to"], link["event_id"]) for link in chain] == [
        ("victim-a", "mule-1", "p1"),
        ("mule-1", "mule-3", "f2"),
    ]
    plan = document["return_plan"]
    assert plan["totals"] == {"frozen": "60000.00", "allocated": "60000.00", "unallocated": "0.00"}
    # direct: mule-1 and mule-3 hold A's money only (20,000); mule-2's 40,000 is mixed: pro rata by loss,
    # 50,000 : 20,000 → A 28,571.43, B 11,428.57
    assert {r["report_id"]: (r["direct"], r["pooled"]) for r in plan["victims"]} == {
        "A": ("20000.00", "28571.43"),
        "B": ("0.00", "11428.57"),
    }
    assert client.get("/v1/traces").json()["traces"][0]["trace_id"] == trace_id
    part = client.get(f"/v1/traces/{trace_id}?sections=freeze_orders").json()
    assert "freeze_orders" in part and "summary" in part and "transfers" not in part
    assert client.get(f"/v1/traces/{trace_id}?sections=nope").status_code == 422

    frozen = client.post(f"/v1/traces/{trace_id}/freeze", json={"ttl_hours": 48})
    assert frozen.status_code == 201, frozen.text
    assert frozen.json()["added"] == 3
    entries = {e["value"]: e for e in guard.lists.entries("blocked_accounts")}
    assert set(entries) == {"mule-1", "mule-2", "mule-3"} and trace_id in entries["mule-3"]["reason"]
    onward = guard.decide(
        transfer("f3", account_id="mule-3", counterparty_id="mule-9", amount="14000.00", occurred_at=at(90))
    )
    assert onward["decision"] == "block"
    assert "blocked_account" in {r["rule"] for r in onward["reasons"]}


def test_bad_trace_requests_name_the_field(guard: RiskGuard, client: TestClient) -> None:
    seed(guard)
    poison = client.post("/v1/traces", json={"reports": REPORTS, "rule": "poison"})
    assert poison.status_code == 422 and "alert" in poison.text
    assert poison.json()["detail"][0]["loc"] == ["body", "rule"]
    unknown = client.post("/v1/traces", json={"reports": [{**REPORTS[0], "event_ids": ["nope"]}]})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "reports", 0, "event_ids", 0]
    both = client.post("/v1/traces", json={"reports": [{**REPORTS[0], "window": REPORTS[1]["window"]}]})
    assert both.status_code == 422 and "either event_ids or a window" in both.text
    money = client.post("/v1/traces", json={"reports": [{**REPORTS[0], "loss": "1.234"}]})
    assert money.status_code == 422 and "two decimals" in money.text
    assert client.post("/v1/traces", json={"reports": []}).status_code == 422
    many = [{**REPORTS[0], "report_id": f"x{i}", "event_ids": [f"missing-{i}"]} for i in range(600)]
    too_many = client.post("/v1/traces", json={"reports": many})  # 100 KB: above the single-event body limit
    assert too_many.status_code == 422 and "no event 'missing-0'" in too_many.text
    assert client.get("/v1/traces/tr_missing").status_code == 404
    assert client.post("/v1/traces/tr_missing/freeze", json={}).status_code == 404


def test_traces_need_an_admin_key(guard: RiskGuard, client: TestClient) -> None:
    _, token = guard.api_keys.create(["decide"], "checkout", actor="test")
    response = client.post("/v1/traces", json={"reports": REPORTS}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


def test_mule_scores_are_published_for_the_starter_strategy(guard: RiskGuard, client: TestClient) -> None:
    seed(guard)
    client.post("/v1/traces", json={"reports": REPORTS})
    result = client.post("/v1/mules/score?days=30")
    assert result.status_code == 200, result.text
    published = result.json()["published"]
    assert published["mule.pass_through_ratio"] >= 2
    values = guard.published.load("mule.pass_through_ratio")
    assert values["mule-1"] == pytest.approx(0.9)  # 45,000 of the 50,000 received left within minutes
    assert values["mule-2"] == pytest.approx(0.2)  # 10,000 of 50,000 withdrawn
    assert "mule-3" not in values and "victim-a" not in values  # scored: accounts that received and sent
    shares = guard.published.load("mule.victim_inflow_share")
    assert shares["mule-1"] == pytest.approx(1.0) and shares["mule-2"] == pytest.approx(1.0)
    # the starter strategy reads them: a new victim paying mule-1 is stopped for review...
    paying = guard.decide(
        transfer(
            "p9",
            account_id="victim-c",
            counterparty_id="mule-1",
            amount="800.00",
            card_id="card-c",
            occurred_at=at(120),
        )
    )
    assert "payee_receives_victims_money" in {r["rule"] for r in paying["reasons"]}
    assert paying["decision"] in ("review", "block")
    # ...and an ordinary payee with no published score is not affected
    ordinary = guard.decide(
        transfer("p10", account_id="victim-c", counterparty_id="friend-1", amount="800.00", occurred_at=at(121))
    )
    assert not {"payee_receives_victims_money", "payee_pass_through"} & {r["rule"] for r in ordinary["reasons"]}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``riskguard`` in process on a database of its own: (exit code, stdout, stderr)."""
    monkeypatch.setenv("RISKGUARD_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("RISKGUARD_LOG_LEVEL", "WARNING")
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(cli_app, list(args))
        return result.exit_code, result.stdout, result.stderr

    return invoke


def test_cli_runs_stores_shows_and_freezes_a_trace(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from riskguard.config import Settings

    guard = RiskGuard(Settings.from_env(), background=False)
    try:
        seed(guard)
    finally:
        guard.close()
    reports = tmp_path / "reports.json"
    reports.write_text(json.dumps({"reports": REPORTS}))
    code, out, err = cli("trace", "run", str(reports))
    assert code == 0, err
    trace_id = out.split()[1]
    assert trace_id.startswith("tr_") and "freeze orders" in out
    assert "mule-1" not in out and "mu**-1" in out  # identifiers masked
    document = tmp_path / "trace.json"
    code, out, _ = cli("trace", "show", trace_id, "--json", str(document), "--reveal")
    assert code == 0 and json.loads(document.read_text())["trace_id"] == trace_id
    code, out, _ = cli("trace", "list")
    assert trace_id in out
    code, out, _ = cli("trace", "freeze", trace_id, "--ttl-hours", "1")
    assert code == 0 and "3 accounts added" in out
    code, _, err = cli("trace", "run", str(reports), "--rule", "poison")
    assert code == 2 and "alert" in err
    code, _, err = cli("trace", "show", "tr_nope")
    assert code == 2 and "no trace" in err


def test_reports_from_csv_and_jsonl_files(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in ledger_events()))
    csv = tmp_path / "reports.csv"
    csv.write_text(
        "report_id,victim_account,loss,reported_at,event_ids,window_start,window_end,payees\n"
        f"A,victim-a,50000.00,{at(60)},p1,,,\n"
        f"B,victim-b,20000.00,{at(60)},,{at(0)},{at(30)},mule-2\n"
    )
    out_file = tmp_path / "out.json"
    code, _out, err = cli("trace", "run", str(csv), "--events", str(events), "--json", str(out_file))
    assert code == 0, err
    document = json.loads(out_file.read_text())
    assert document["summary"]["traced"] == "70000.00"
    assert all("*" in a["account"] for a in document["accounts"])  # masked without --reveal
    lines = tmp_path / "reports.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in REPORTS))
    code, _, err = cli("trace", "run", str(lines), "--events", str(events), "--rule", "fifo", "--max-hops", "1")
    assert code == 0, err
