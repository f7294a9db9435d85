"""`riskguard devices`: list, show and revoke registered keys; masked ids; unmasked views audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from riskguard.app import RiskGuard
from riskguard.cli.main import app
from riskguard.device.client import DeviceClient, InProcessTransport
from riskguard.device.testing import TestAuthority, trust_config

from conftest import make_settings

ACCOUNT = "acc-13812345678"
DEVICE = "phone-imei-356938035643809"


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("RISKGUARD_DATABASE_URL", url)
    monkeypatch.setenv("RISKGUARD_LOG_LEVEL", "WARNING")
    authority = TestAuthority()
    with RiskGuard(make_settings(url), background=False) as guard:
        guard.devices.configure(trust_config(authority))
        for account, device in ((ACCOUNT, DEVICE), ("acc-2", "dev-2")):
            phone = DeviceClient(account, device, InProcessTransport(guard.devices), authority=authority)
            phone.register(occurred_at=datetime(2025, 1, 1, tzinfo=UTC))
    return url


def audited(url: str, action: str) -> list[dict[str, object]]:
    with RiskGuard(make_settings(url), background=False, warm_features=False) as guard:
        return guard.audit.recent(action=action)


def test_list_show_and_revoke(database: str) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["devices", "list"])
    assert listed.exit_code == 0, listed.output
    keys = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(keys) == 2 and all("*" in k["account_id"] and "*" in k["device_id"] for k in keys)
    assert ACCOUNT not in listed.stdout and DEVICE not in listed.stdout and "masked" in listed.stderr
    mine = next(k for k in keys if k["account_id"].startswith("acc") and k["account_id"].endswith("678"))
    assert mine["provider"] == "android" and mine["attested"] and mine["status"] == "active"
    assert not audited(database, "device.view")

    clear = runner.invoke(app, ["devices", "list", "--account", ACCOUNT, "--unmask"])
    assert clear.exit_code == 0 and ACCOUNT in clear.stdout and DEVICE in clear.stdout
    assert len(clear.stdout.splitlines()) == 1 and len(audited(database, "device.view")) == 1

    shown = runner.invoke(app, ["devices", "show", "--account", ACCOUNT, "--", mine["key_id"]])
    assert shown.exit_code == 0, shown.output
    found = json.loads(shown.stdout)
    assert [k["key_id"] for k in found["keys"]] == [mine["key_id"]] and ACCOUNT not in shown.stdout
    assert DEVICE not in shown.stdout and 0 <= found["assessment"]["trust"] <= 100
    by_device = runner.invoke(app, ["devices", "show", DEVICE, "--unmask"])
    assert by_device.exit_code == 0 and ACCOUNT in by_device.stdout and len(audited(database, "device.view")) == 2

    revoked = runner.invoke(app, ["devices", "revoke", "--reason", "phone reported stolen", "--", mine["key_id"]])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    entry = audited(database, "device.revoke")[0]
    assert entry["details"]["reason"] == "phone reported stolen" and DEVICE not in str(entry)  # type: ignore[index]
    only = runner.invoke(app, ["devices", "list", "--status", "revoked"])
    assert [json.loads(line)["key_id"] for line in only.stdout.splitlines()] == [mine["key_id"]]


def test_mistakes_are_one_line_errors(database: str) -> None:
    runner = CliRunner()
    for args, text in (
        (["devices", "revoke", "no-such-key"], "no registered key"),
        (["devices", "show", "no-such-device"], "no keys are registered"),
        (["devices", "list", "--status", "lost"], "Invalid value for '--status'"),
        (["devices", "list", "--limit", "0"], "Invalid value for '--limit'"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and text in result.stderr and "Traceback" not in result.output, result.output
