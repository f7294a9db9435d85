"""Registered leaks of personal data (accountsec/leaks.py, watch.py): tokenised on import (no raw value
stored), matched to accounts through the identifiers their events carry, ``account.in_leak`` in rules
with the leaked_data warning, expiry, re-import, the outreach alert, HTTP and CLI."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from riskguard.accountsec.leaks import read_values
from riskguard.accountsec.tables import leak_alerts, leak_identifiers, leak_watch, leaks
from riskguard.app import RiskGuard
from riskguard.cli.main import app
from riskguard.errors import ValidationFailed
from riskguard.events.schema import from_stored
from riskguard.store.tables import audit_log

from conftest import make_settings

PHONE = "13812345678"
CARD = "6222020200112233445"
EMAIL = "Li.Wei@example.com"
ID_NUMBER = "11010519491231002X"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_iso(minutes: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def signup(account: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"signup-{account}",
        "type": "signup",
        "occurred_at": now_iso(-60),
        "account_id": account,
    } | fields


def transfer(n: int, account: str, amount: str = "3000.00", locale: str = "en") -> dict[str, Any]:
    return {
        "event_id": f"t{n}-{account}",
        "type": "transfer",
        "occurred_at": now_iso(),
        "account_id": account,
        "amount": amount,
        "currency": "CNY",
        "counterparty_id": "payee-1",
        "locale": locale,
    }


def leak_csv(path: Path) -> Path:
    path.write_text(
        "name,phone,email,id_number,card_number\n"
        f"Li Wei,+86 138-1234-5678,{EMAIL.lower()},{ID_NUMBER.lower()},{CARD}\n"
        "Wang Fang,13900000001,wf@example.com,,\n",
        encoding="utf-8",
    )
    return path


def logged(guard: RiskGuard) -> Any:
    return (from_stored(payload) for _type, payload in guard.events.stream_since(EPOCH))


def test_reading_leak_files(tmp_path: Path) -> None:
    values = list(read_values(leak_csv(tmp_path / "leak.csv")))
    assert ("phone", "+86 138-1234-5678") in values and ("card", CARD) in values
    assert len(values) == 6  # the name column is not an identifier kind we take; empty cells skipped
    (tmp_path / "kv.csv").write_text("kind,value\nmobile,13800000000\nemail,a@b.cn\n", encoding="utf-8")
    assert list(read_values(tmp_path / "kv.csv")) == [("phone", "13800000000"), ("email", "a@b.cn")]
    (tmp_path / "leak.jsonl").write_text(
        json.dumps({"phone": PHONE, "id_number": ID_NUMBER, "name": "x"})
        + "\n\n"
        + json.dumps({"kind": "card", "value": CARD})
        + "\n",
        encoding="utf-8",
    )
    assert list(read_values(tmp_path / "leak.jsonl")) == [("phone", PHONE), ("id_number", ID_NUMBER), ("card", CARD)]
    (tmp_path / "bad.jsonl").write_text('{"phone": "1"}\n{"kind": "password", "value": "x"}\n', encoding="utf-8")
    with pytest.raises(ValidationFailed, match=r"bad.jsonl:2"):
        list(read_values(tmp_path / "bad.jsonl"))
    (tmp_path / "none.csv").write_text("name,city\nx,y\n", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="no column named"):
        list(read_values(tmp_path / "none.csv"))


def test_a_leak_import_makes_risky_transfers_warn(guard: RiskGuard, tmp_path: Path) -> None:
    guard.decide(signup("acc-phone", phone=PHONE, device_id="d1"))
    guard.decide(signup("acc-card", card_id=CARD, device_id="d2"))
    guard.decide(signup("acc-mail", device_id="d3", attributes={"email": EMAIL}))
    guard.decide(signup("acc-clean", phone="13700000009", device_id="d4"))
    registry = guard.accountsec.leaks
    result = registry.import_leak(
        read_values(leak_csv(tmp_path / "leak.csv")),
        name="shop-2026-11",
        source="paste site",
        discovered_at=datetime.now(UTC) - timedelta(days=3),
        watch_days=90,
        actor="test",
        events=logged(guard),
    )
    assert (result.identifiers, result.new_identifiers, result.accounts) == (6, 6, 3)
    assert result.kinds == {"card": 1, "email": 1, "phone": 1}
    guard.refresh()  # what the poll does in a server

    for account in ("acc-phone", "acc-card", "acc-mail"):
        decided = guard.decide(transfer(1, account, locale="zh-CN"), with_explain=True)
        assert decided["decision"] in ("challenge", "review", "block"), account
        assert "leaked_account_money_out" in [r["rule"] for r in decided["reasons"]]
        assert decided["warning"]["key"] == "leaked_data" and "泄露" in decided["warning"]["title"]
        variables = decided["explain"]["variables"]
        assert variables["account.in_leak"] is True and variables["account.leak_age_days"] == 3
    english = guard.decide(transfer(2, "acc-phone"))
    assert english["warning"]["title"] == "Your personal data may have been leaked"
    clean = guard.decide(transfer(1, "acc-clean"), with_explain=True)
    assert clean["explain"]["variables"]["account.in_leak"] is False
    assert "leaked_account_money_out" not in [r["rule"] for r in clean["reasons"]]
    small = guard.decide(transfer(3, "acc-phone", amount="200.00"))
    assert "leaked_account_money_out" not in [r["rule"] for r in small["reasons"]]

    # the raw values are nowhere in what the leak import wrote
    with guard.engine.connect() as connection:
        stored = " ".join(
            str(row)
            for table in (leaks, leak_identifiers, leak_watch, leak_alerts, audit_log)
            for row in connection.execute(select(table))
        )
    for raw in (PHONE, "138-1234-5678", CARD, EMAIL.lower(), ID_NUMBER, "13900000001", "wf@example.com"):
        assert raw not in stored
    assert "tok1:" in stored

    # one alert for outreach, read the way case management reads every alert
    (alert,) = registry.alerts.list()
    assert alert["kind"] == "leak" and alert["accounts"] == 3
    assert sorted(alert["evidence"]["accounts"]) == ["acc-card", "acc-mail", "acc-phone"]
    assert alert["evidence"]["leak"] == "shop-2026-11" and alert["score"] == 90.0

    # importing it again changes nothing; an account seen since is flagged live, then by a re-match
    again = registry.import_leak(
        read_values(tmp_path / "leak.csv"),
        name="shop-2026-11",
        source="paste site",
        discovered_at=datetime.now(UTC) - timedelta(days=3),
        watch_days=90,
        actor="test",
        events=logged(guard),
    )
    assert (again.identifiers, again.new_identifiers, again.accounts) == (6, 0, 3)
    assert len(registry.alerts.list()) == 1
    guard.refresh()
    change = {
        "event_id": "late-1",
        "type": "profile_change",
        "occurred_at": now_iso(),
        "account_id": "acc-late",
        "phone": "13900000001",
        "attributes": {"field": "phone"},
    }
    decided = guard.decide(change, with_explain=True)
    assert decided["explain"]["variables"]["account.in_leak"] is True
    assert "leaked_account_change" in [r["rule"] for r in decided["reasons"]]
    before = guard.decide(transfer(1, "acc-late"), with_explain=True)  # the transfer itself carries no phone
    assert before["explain"]["variables"]["account.in_leak"] is False
    assert registry.rematch("shop-2026-11", logged(guard), actor="test").accounts == 4
    guard.refresh()
    after = guard.decide(transfer(2, "acc-late"), with_explain=True)
    assert after["explain"]["variables"]["account.leak_kinds"] == ["phone"]

    assert registry.remove("shop-2026-11", "test")
    guard.refresh()
    gone = guard.decide(transfer(4, "acc-phone"), with_explain=True)
    assert gone["explain"]["variables"]["account.in_leak"] is False


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_watch_flags_expire(guard: RiskGuard) -> None:
    guard.decide(signup("acc-1", phone=PHONE))
    guard.accountsec.leaks.import_leak(
        [("phone", PHONE)],
        name="short",
        source="test",
        discovered_at=datetime.now(UTC),
        watch_days=1.5 / 86400,
        actor="test",
        events=logged(guard),
    )
    guard.refresh()
    assert guard.decide(transfer(1, "acc-1"), with_explain=True)["explain"]["variables"]["account.in_leak"] is True
    time.sleep(1.6)
    assert guard.decide(transfer(2, "acc-1"), with_explain=True)["explain"]["variables"]["account.in_leak"] is False


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_http_and_cli(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, admin_token: str, guard: RiskGuard
) -> None:
    guard.decide(signup("acc-1", phone=PHONE))
    monkeypatch.setenv("RISKGUARD_DATABASE_URL", db_url)
    monkeypatch.setenv("RISKGUARD_LOG_LEVEL", "WARNING")
    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            "leak",
            "import",
            str(leak_csv(tmp_path / "leak.csv")),
            "--name",
            "forum-dump",
            "--source",
            "forum",
            "--discovered",
            "2026-11-30",
        ],
    )
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["accounts"] == 1 and report["identifiers"] == 6 and PHONE not in done.stdout
    listed = json.loads(runner.invoke(app, ["leak", "list"]).stdout)
    assert [leak["name"] for leak in listed] == ["forum-dump"]
    matched = runner.invoke(app, ["leak", "match", "forum-dump"])
    assert matched.exit_code == 0 and json.loads(matched.stdout)["new_identifiers"] == 0
    (tmp_path / "bad.csv").write_text("kind,value\nshoe_size,42\n", encoding="utf-8")
    bad = runner.invoke(app, ["leak", "import", str(tmp_path / "bad.csv"), "--name", "x", "--source", "y"])
    assert bad.exit_code == 2 and "bad.csv:2" in bad.output and "Traceback" not in bad.output
    unknown = runner.invoke(app, ["leak", "match", "nope"])
    assert unknown.exit_code == 2 and "no leak named" in unknown.output
    with TestClient(create(guard), headers={"Authorization": f"Bearer {admin_token}"}) as client:
        alerts = client.get("/v1/leaks/alerts").json()["alerts"]
        assert [a["evidence"]["leak"] for a in alerts] == ["forum-dump"] and alerts[0]["accounts"] == 1
        assert client.get("/v1/leaks").json()["leaks"][0]["source"] == "forum"
    removed = runner.invoke(app, ["leak", "remove", "forum-dump"])
    assert removed.exit_code == 0
    with RiskGuard(make_settings(db_url), background=False, warm_features=False) as other:
        assert other.accountsec.leaks.list() == []
        assert [e["action"] for e in other.audit.recent(action="leak.import")] == ["leak.import"] * 2


def create(guard: RiskGuard) -> Any:
    from riskguard.api.http import create_asgi

    return create_asgi(guard)
