"""Field keys: the first-run keyring, configured keyrings, refusing a keyring that cannot open the data,
AES-GCM framing (tamper, kind binding), token normalisation, settings, and the `keys` commands."""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

import pytest
from typer.testing import CliRunner

from riskguard.app import RiskGuard
from riskguard.cli.main import app
from riskguard.config import Settings
from riskguard.errors import ConfigError
from riskguard.privacy import SealError
from riskguard.privacy.cipher import FieldCipher
from riskguard.privacy.keyring import generate

from conftest import make_settings


def test_first_run_generates_a_private_keyring_and_later_runs_reuse_it(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}/a.db")
    with RiskGuard(settings, background=False) as guard:
        path = guard.privacy.keyring_path
        assert path == tmp_path / "a.keyring.json" and guard.privacy.keyring_created
        assert os.stat(path).st_mode & 0o777 == 0o600
        key = guard.privacy.cipher.active_key
        sealed = guard.privacy.cipher.seal("email", "a@b.cn")
    with RiskGuard(settings, background=False) as again:
        assert not again.privacy.keyring_created and again.privacy.cipher.active_key == key
        assert again.privacy.cipher.open(sealed) == "a@b.cn"
    path.rename(tmp_path / "elsewhere.json")  # the keyring lost: refuse, rather than seal under new keys
    with pytest.raises(ConfigError, match="no keyring at"):
        RiskGuard(settings, background=False)
    other = make_settings(f"sqlite:///{tmp_path}/a.db", keyring=generate().to_json())
    with pytest.raises(ConfigError, match="lacks key"):  # another installation's keyring
        RiskGuard(other, background=False)


def test_a_configured_keyring_is_used_as_given_and_validated(tmp_path: Path) -> None:
    keyring = generate()
    settings = make_settings(f"sqlite:///{tmp_path}/b.db", keyring=keyring.to_json())
    with RiskGuard(settings, background=False) as guard:
        assert guard.privacy.keyring_path is None and guard.privacy.cipher.active_key == keyring.active
    assert not (tmp_path / "b.keyring.json").exists()
    assert settings.redacted()["keyring"] == "***"
    short = json.loads(keyring.to_json())
    short["keys"][keyring.active] = base64.b64encode(secrets.token_bytes(16)).decode()
    with pytest.raises(ConfigError, match="256 bits"):
        RiskGuard(make_settings(f"sqlite:///{tmp_path}/c.db", keyring=json.dumps(short)), background=False)
    with pytest.raises(ConfigError, match="not JSON"):
        RiskGuard(make_settings(f"sqlite:///{tmp_path}/d.db", keyring="k1=abc"), background=False)
    with pytest.raises(ConfigError, match="RISKGUARD_REVEAL_TIMEZONE"):
        Settings.from_env({"RISKGUARD_REVEAL_TIMEZONE": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="RISKGUARD_REVEAL_WORKING_HOURS"):
        Settings.from_env({"RISKGUARD_REVEAL_WORKING_HOURS": "9-5"})


def test_ciphertext_is_bound_to_its_kind_and_authenticated() -> None:
    cipher = FieldCipher(generate())
    sealed = cipher.seal("phone", "13812345678")
    assert sealed.startswith(f"enc1:{cipher.active_key}:phone:") and cipher.seal("phone", "13812345678") != sealed
    assert cipher.open(sealed, "phone") == "13812345678" and cipher.open("plain") == "plain"
    with pytest.raises(SealError, match="expected"):
        cipher.open(sealed, "email")
    relabelled = sealed.replace(":phone:", ":email:")
    with pytest.raises(SealError, match="authentication"):
        cipher.open(relabelled)
    body = sealed.rsplit(":", 1)[1]
    flipped = sealed[: -len(body)] + ("A" if body[0] != "A" else "B") + body[1:]
    with pytest.raises(SealError):
        cipher.open(flipped)
    with pytest.raises(SealError, match="no key"):
        FieldCipher(generate()).open(sealed)


def test_tokens_are_keyed_and_normalised() -> None:
    cipher = FieldCipher(generate())
    assert cipher.token("phone", "+86 138-1234-5678") == cipher.token("phone", "13812345678")
    assert cipher.token("email", " Li.Wei@Example.org") == cipher.token("email", "li.wei@example.org")
    assert cipher.token("card", "6222 0212 3456 7891") == cipher.token("card", "6222021234567891")
    assert cipher.token("ip", "2001:DB8::0:1") == cipher.token("ip", "2001:db8::1")
    assert cipher.token("phone", "13812345678") != cipher.token("card", "13812345678")  # kinds never collide
    assert cipher.token("value", "A1") != cipher.token("value", "a1")  # untyped values match exactly
    assert FieldCipher(generate()).token("phone", "13812345678") != cipher.token("phone", "13812345678")


def test_keys_commands_report_and_rotate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKGUARD_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("RISKGUARD_LOG_LEVEL", "WARNING")
    runner = CliRunner()
    canaries = runner.invoke(app, ["privacy", "canary", "--count", "2"])
    assert canaries.exit_code == 0, canaries.output
    assert len(json.loads(canaries.stdout)["canary_accounts"]) == 2
    before = json.loads(runner.invoke(app, ["keys", "status"]).stdout)
    assert before["field_encryption"] and before["not_under_active_keys"]["events.payload"] == 0
    rotated = runner.invoke(app, ["keys", "rotate", "--settle", "0", "--batch", "1"])
    assert rotated.exit_code == 0, rotated.output
    report = json.loads(rotated.stdout)
    assert report["active_key"] != before["active_key"] and report["retired"] == [before["active_key"]]
    assert report["rewritten"]["events.payload"] == 2 and report["rewritten"]["decisions.body"] == 2
    after = json.loads(runner.invoke(app, ["keys", "status"]).stdout)
    assert after["keys"] == [report["active_key"]] and before["active_key"] in after["retired"]
    alerts = runner.invoke(app, ["privacy", "alerts"])
    assert alerts.exit_code == 0 and json.loads(alerts.stdout) == []
    refused = runner.invoke(app, ["privacy", "lift", "someone", "--by", "ann", "--role", "analyst"])
    assert refused.exit_code == 2 and "may not lift" in refused.output


def test_rotation_also_updates_columns_outside_the_inventory(tmp_path: Path) -> None:
    from sqlalchemy import text

    from riskguard.privacy import fields
    from riskguard.privacy.rotate import Rotation
    from riskguard.privacy.service import vault_open, vault_tokens

    settings = make_settings(f"sqlite:///{tmp_path}/o.db", keyring_file=str(tmp_path / "k.json"))
    with RiskGuard(settings, background=False) as guard:
        cipher = guard.privacy.cipher
        with guard.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE other_cap (id INTEGER PRIMARY KEY, doc TEXT, tok TEXT)")
            token = vault_tokens(connection, cipher, "phone", ["13812345678"])["13812345678"]
            doc = json.dumps({"who": cipher.seal("name", "Li Wei"), "n": 1, "ref": token})
            connection.execute(text("INSERT INTO other_cap VALUES (1, :doc, :tok)"), {"doc": doc, "tok": token})
            connection.execute(
                text("INSERT INTO other_cap VALUES (2, :doc, NULL)"), {"doc": cipher.seal("email", "a@b.cn")}
            )
        old_key, old_token = cipher.active_key, cipher.active_token_key
        report = Rotation(guard.engine, guard.privacy).rotate(new_token_key=True, settle_s=0)
        assert report.rewritten["other tables"] == 3 and not any(report.remaining.values())
        assert sorted(report.retired) == sorted([old_key, old_token])
        with guard.engine.connect() as connection:
            rows = dict(connection.execute(text("SELECT id, doc FROM other_cap")).all())
            (tok,) = connection.execute(text("SELECT tok FROM other_cap WHERE id = 1")).scalars()
            assert vault_open(connection, [tok]) == {tok: "13812345678"}
        first = json.loads(rows[1])
        assert fields.open_value(first["who"]) == "Li Wei" and first["ref"] == tok and first["n"] == 1
        assert FieldCipher.key_of(rows[2]) == cipher.active_key != old_key
        assert tok == cipher.token("phone", "13812345678") and FieldCipher.token_key_of(tok) != old_token
