"""The `riskguard` command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from riskguard.cli.main import app

from conftest import EXAMPLE_STRATEGY, transfer


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RISKGUARD_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("RISKGUARD_LOG_LEVEL", "WARNING")
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    return invoke


def test_apikey_create_prints_the_key_once(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("apikey", "create", "--scope", "decide", "--name", "checkout")
    assert code == 0
    token = out.strip()
    assert token.startswith("rg_") and len(token) > 40
    assert "not shown again" in err
    code, out, _ = run("apikey", "list")
    listed = json.loads(out)
    assert listed[0]["scopes"] == "decide" and token not in out
    code, _, err = run("apikey", "create", "--scope", "everything")
    assert code != 0


def test_strategy_lifecycle(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    v1 = tmp_path / "payments.yaml"
    v1.write_text(EXAMPLE_STRATEGY)
    v2 = tmp_path / "payments-v2.yaml"
    v2.write_text(EXAMPLE_STRATEGY.replace("version: 1", "version: 2").replace("> 5000.0", "> 2000.0"))
    broken = tmp_path / "broken.yaml"
    broken.write_text(EXAMPLE_STRATEGY.replace("features.device_accounts_7d", "features.devices"))

    code, out, _ = run("strategy", "validate", str(v1))
    assert code == 0 and "ok: payments v1: 3 features, 1 lists, 2 rules (2 live)" in out
    code, _, _err = run("strategy", "validate", str(broken))
    assert code != 0
    code, out, _ = run("strategy", "publish", str(v1))
    assert code == 0 and "published payments v1 as live" in out
    code, out, _ = run("strategy", "publish", str(v2), "--note", "lower threshold")
    assert code == 0
    code, out, _ = run("strategy", "list")
    lines = out.splitlines()
    assert "LIVE" in next(line for line in lines if " v2 " in line) and "starter" in out
    code, out, _ = run("strategy", "diff", "payments@1", "live")
    assert code == 0 and "~ rule shared_device_large_transfer" in out and "+++ payments@2" in out
    code, out, _ = run("strategy", "diff", str(v2))  # what publishing v2 would change (live is v2: nothing)
    assert code == 0 and out.strip() == ""
    code, out, _ = run("strategy", "diff", str(v1))
    assert "-    when: 'event.type == \"transfer\" && event.amount > 2000.0" in out
    code, out, _ = run("strategy", "rollback")
    assert code == 0 and "payments v1 is live" in out
    code, out, _ = run("strategy", "show", "live")
    assert "version: 1" in out
    shown = tmp_path / "shown.yaml"
    shown.write_text(out)
    code, out, _ = run("strategy", "publish", str(shown))  # a round trip through `show` is the same version
    assert code == 0, out
    code, out, _ = run("strategy", "rollback", "--to", "starter@5")
    assert code == 0 and "starter v5 is live" in out
    code, _, err = run("strategy", "rollback", "--to", "starter@x")
    assert code == 1 and "NAME@VERSION" in err
    code, out, _ = run("strategy", "publish", str(v1), "--shadow")
    assert "as shadow" in out
    code, out, _ = run("strategy", "clear-shadow")
    assert code == 0


def test_decide_and_lists(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    strategy = tmp_path / "payments.yaml"
    strategy.write_text(EXAMPLE_STRATEGY)
    run("strategy", "publish", str(strategy))
    code, out, _ = run("list", "add", "blocked_devices", "dev-cli", "--reason", "farm", "--ttl", "48h")
    assert code == 0 and "1 added" in out
    code, out, _ = run("list", "show", "blocked_devices")
    assert "de***li" in out and "dev-cli" not in out  # masked
    event = tmp_path / "event.json"
    event.write_text(json.dumps(transfer("cli-1", device_id="dev-cli")))
    code, out, _ = run("decide", str(event), "--explain")
    assert code == 0
    decision = json.loads(out)
    assert decision["decision"] == "block" and "explain" in decision
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(transfer("cli-2", amount="-1")))
    code, _, err = run("decide", str(bad))
    assert code == 2 and "amount: must not be negative" in err
    code, _, err = run("decide", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read" in err
    code, out, _ = run("list", "remove", "blocked_devices", "dev-cli")
    assert "1 removed" in out


def test_bad_configuration_is_one_clear_line(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RISKGUARD_LOG_LEVEL", "verbose")
    code, _, err = run("strategy", "list")
    assert code == 2 and err.strip() == "error: RISKGUARD_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL"
    monkeypatch.setenv("RISKGUARD_LOG_LEVEL", "INFO")
    monkeypatch.setenv("RISKGUARD_PORT", "eighty")
    code, _, err = run("config")
    assert code == 2 and "RISKGUARD_PORT='eighty' is not a valid int" in err


def test_config_hides_the_database_password(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RISKGUARD_DATABASE_URL", "postgresql://risk:s3cret@db.internal:5432/risk")
    code, out, _ = run("config")
    assert code == 0 and "s3cret" not in out and "risk:***@db.internal" in out
