"""Console sign-in, sessions, CSRF, lockout, roles and users (repository on both databases; pages on SQLite)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from riskguard.api.http import create_app
from riskguard.app import RiskGuard
from riskguard.console.roles import GRANTS, PERMISSIONS, ROLES, can
from riskguard.console.users import UserRepository, hash_password, verify_password
from riskguard.errors import Conflict, ValidationFailed

from conftest import make_settings

PASSWORD = "correct horse battery"


def test_scrypt_hashes_are_salted_and_verify_only_the_right_password() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)
    assert not verify_password(PASSWORD + "x", first)
    assert not verify_password(PASSWORD, "md5$abc")


def test_permissions_follow_the_contract() -> None:
    assert set(GRANTS) == set(ROLES)
    assert can("admin", "users.manage") and not can("lead", "users.manage")
    assert can("analyst", "pii.reveal") and can("analyst", "case.work") and can("analyst", "evidence.export")
    assert not can("analyst", "strategy.publish") and not can("analyst", "case.assign")
    assert can("lead", "strategy.publish") and can("lead", "case.assign") and can("lead", "list.manage")
    acting = {
        "case.work",
        "case.assign",
        "case.reopen",
        "evidence.export",
        "pii.reveal",
        "strategy.publish",
        "list.manage",
        "users.manage",
    }
    assert not (GRANTS["auditor"] & acting)
    assert can("auditor", "audit.view") and can("auditor", "case.view")
    assert not can("nobody", "dashboard.view") and not can(None, "dashboard.view")
    with pytest.raises(KeyError):
        can("admin", "case.wrok")
    assert GRANTS["admin"] == frozenset(PERMISSIONS)


def test_users_sign_in_lock_out_and_sessions(guard: RiskGuard) -> None:
    users = UserRepository(guard.engine, lockout_failures=3, lockout=timedelta(minutes=15))
    assert users.ensure_admin() is not None
    assert users.ensure_admin() is None  # only on an installation without users
    users.add("ana", "analyst", PASSWORD, actor="test")
    with pytest.raises(Conflict):
        users.add("ana", "analyst", PASSWORD, actor="test")
    with pytest.raises(ValidationFailed):
        users.add("Bad Name", "analyst", PASSWORD, actor="test")
    with pytest.raises(ValidationFailed):
        users.add("bob", "analyst", "short", actor="test")
    ok = users.sign_in("ana", PASSWORD)
    assert ok.token and users.session(ok.token).role == "analyst"
    assert users.sign_in("nobody", PASSWORD).reason == "bad"
    assert users.sign_in("ana", "wrong-1").reason == "bad"
    assert users.sign_in("ana", "wrong-2").reason == "bad"
    third = users.sign_in("ana", "wrong-3")
    assert third.reason == "locked" and third.locked_until is not None
    assert users.sign_in("ana", PASSWORD).reason == "locked"  # even the right password, while locked
    users.set_password("ana", PASSWORD + "!", actor="test")  # clears the lock, ends sessions
    assert users.session(ok.token) is None
    again = users.sign_in("ana", PASSWORD + "!")
    assert again.token
    users.set_disabled("ana", True, actor="test")
    assert users.session(again.token) is None
    assert users.sign_in("ana", PASSWORD + "!").reason == "disabled"
    actions = [r["action"] for r in guard.audit.recent(50)]
    assert "console.signin.failed" in actions and "console.signin.locked" in actions
    assert "console.user.disable" in actions and "console.signin" in actions


def test_sessions_expire_when_idle(guard: RiskGuard) -> None:
    users = UserRepository(guard.engine, idle=timedelta(seconds=0))
    users.add("ana", "analyst", PASSWORD, actor="test")
    token = users.sign_in("ana", PASSWORD).token
    assert users.session(token) is None
    longer = UserRepository(guard.engine, max_age=timedelta(seconds=-1))
    assert longer.session(longer.sign_in("ana", PASSWORD).token) is None


# ---------------------------------------------------------------------------------------------- pages
@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One installation for the page tests (each test uses its own users or lists where it changes them)."""
    folder = tmp_path_factory.mktemp("console-pages")
    guard = RiskGuard(make_settings(f"sqlite:///{folder}/rg.db", console_lockout_failures=3), background=False)
    users = UserRepository(guard.engine)
    for name, role in (
        ("admin", "admin"),
        ("ana", "analyst"),
        ("lee", "lead"),
        ("aud", "auditor"),
        ("locky", "analyst"),
        ("lin", "analyst"),
    ):
        users.add(name, role, PASSWORD, actor="test")
    app = create_app(guard)
    yield guard, app
    guard.close()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(app: Any, username: str, password: str = PASSWORD) -> TestClient:
    client = TestClient(app, base_url="http://127.0.0.1")
    page = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"csrf": csrf_of(page.text), "username": username, "password": password, "next": "/console/lists"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/lists"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/console" in cookie
    return client


def test_pages_need_a_session_and_forms_a_csrf_token(site: Any) -> None:
    guard, app = site
    anonymous = TestClient(app, base_url="http://127.0.0.1")
    response = anonymous.get("/console/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/console/login")
    # the sign-in form itself needs the token its page set
    refused = anonymous.post("/console/login", data={"username": "ana", "password": PASSWORD}, follow_redirects=False)
    assert refused.status_code == 400
    client = sign_in(app, "lee")
    page = client.get("/console/lists")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    without = client.post("/console/lists/add", data={"name": "watch_accounts", "values": "acc-1"})
    assert without.status_code == 400
    wrong = client.post("/console/lists/add", data={"name": "watch_accounts", "values": "acc-1", "csrf": "x" * 43})
    assert wrong.status_code == 400
    assert guard.lists.entries("watch_accounts") == []
    done = client.post(
        "/console/lists/add",
        data={
            "name": "watch_accounts",
            "values": "acc-1, acc-2",
            "expires": "30d",
            "reason": "t",
            "csrf": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    rows = guard.lists.entries("watch_accounts")
    assert [r["value"] for r in rows] == ["acc-1", "acc-2"] and all(r["expires_at"] is not None for r in rows)
    assert rows[0]["created_by"] == "console:lee"
    bad = client.post("/console/lists/add", data={"name": "Bad-Name", "values": "x", "csrf": csrf_of(page.text)})
    assert bad.status_code == 422 and "name" in bad.text
    signed_out = client.post("/console/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert signed_out.status_code == 303
    assert client.get("/console/lists", follow_redirects=False).status_code == 303


def test_wrong_passwords_lock_the_user_out_of_the_sign_in_page(site: Any) -> None:
    _, app = site
    client = TestClient(app, base_url="http://127.0.0.1")
    for _ in range(3):
        token = csrf_of(client.get("/console/login").text)
        response = client.post("/console/login", data={"csrf": token, "username": "locky", "password": "nope-nope"})
        assert response.status_code == 401
    token = csrf_of(client.get("/console/login").text)
    locked = client.post("/console/login", data={"csrf": token, "username": "locky", "password": PASSWORD})
    assert locked.status_code == 401 and "失败次数过多" in locked.text  # locked, not "wrong password"


def test_roles_are_enforced_on_the_server(site: Any) -> None:
    guard, app = site
    auditor = sign_in(app, "aud")
    token = csrf_of(auditor.get("/console/lists").text)
    assert auditor.get("/console/audit").status_code == 200
    assert auditor.get("/console/users").status_code == 403
    refused = auditor.post("/console/lists/add", data={"name": "blocked_accounts", "values": "acc-9", "csrf": token})
    assert refused.status_code == 403 and 'id="error-403"' in refused.text
    assert guard.lists.entries("blocked_accounts") == []
    analyst = sign_in(app, "ana")
    token = csrf_of(analyst.get("/console/strategies").text)
    live = guard.strategies.current("live")
    publish = analyst.post("/console/strategies/rollback", data={"csrf": token, "confirm": "x"})
    assert publish.status_code == 403
    assert guard.strategies.current("live").id == live.id
    assert 'action="/console/strategies/rollback"' not in analyst.get("/console/strategies").text
    refusals = [r for r in guard.audit.recent(50) if r["action"] == "console.refused"]
    assert {r["actor"] for r in refusals} == {"console:aud", "console:ana"}


def test_publish_and_rollback_need_a_confirmation(site: Any) -> None:
    guard, app = site
    live = guard.strategies.current("live")
    document = guard.strategies.get(live.name, live.version)["document"]
    newer = re.sub(r"(?m)^version:\s*\d+", f"version: {live.version + 1}", document, count=1)
    guard.strategies.save(live.name, live.version + 1, newer, "test")
    lead = sign_in(app, "lee")
    token = csrf_of(lead.get("/console/strategies").text)
    first = lead.post(
        "/console/strategies/publish", data={"csrf": token, "name": live.name, "version": live.version + 1}
    )
    assert first.status_code == 200 and 'id="confirm"' in first.text and 'id="diff"' in first.text
    assert guard.strategies.current("live").version == live.version  # nothing deployed yet
    stale = lead.post(
        "/console/strategies/publish",
        data={"csrf": token, "name": live.name, "version": live.version + 1, "confirm": "0" * 64},
    )
    assert stale.status_code == 409
    checksum = re.search(r'name="confirm" value="([0-9a-f]{64})"', first.text).group(1)
    done = lead.post(
        "/console/strategies/publish",
        data={"csrf": token, "name": live.name, "version": live.version + 1, "confirm": checksum},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert guard.strategies.current("live").version == live.version + 1
    assert guard.live.version == live.version + 1
    ask = lead.post("/console/strategies/rollback", data={"csrf": token})
    assert ask.status_code == 200 and guard.strategies.current("live").version == live.version + 1
    target = re.search(r'name="confirm" value="([^"]+)"', ask.text).group(1)
    lead.post("/console/strategies/rollback", data={"csrf": token, "confirm": target}, follow_redirects=False)
    assert guard.strategies.current("live").version == live.version
    assert guard.strategies.current("live").by == "console:lee"


def test_language_is_chinese_by_default_and_remembered_per_user(site: Any) -> None:
    _, app = site
    client = sign_in(app, "lin")
    page = client.get("/console/lists")
    assert '<html lang="zh-CN">' in page.text and "名单" in page.text
    client.post("/console/lang", data={"csrf": csrf_of(page.text), "locale": "en", "next": "/console/lists"})
    english = client.get("/console/lists").text
    assert '<html lang="en">' in english and ">Lists<" in english and "名单" not in english
    fresh = sign_in(app, "lin")  # a new browser: no language cookie, the user's choice is stored
    assert '<html lang="en">' in fresh.get("/console/lists").text
    bad = client.post("/console/lang", data={"csrf": csrf_of(page.text), "locale": "fr"})
    assert bad.status_code == 422


def test_admin_adds_users_and_the_password_is_shown_once(site: Any) -> None:
    _, app = site
    admin = sign_in(app, "admin")
    token = csrf_of(admin.get("/console/users").text)
    added = admin.post("/console/users/add", data={"csrf": token, "username": "newbie", "role": "analyst"})
    assert added.status_code == 200
    password = re.search(r'id="new-password">.*?<code>([^<]+)</code>', added.text, re.S).group(1)
    sign_in(app, "newbie", password)
    assert "<code>" + password not in admin.get("/console/users").text


def test_users_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from riskguard.cli.main import app

    monkeypatch.setenv("RISKGUARD_DATABASE_URL", f"sqlite:///{tmp_path}/rg.db")
    monkeypatch.setenv("RISKGUARD_FEATURE_SNAPSHOT_PATH", "off")
    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "ana", "--role", "lead"])
    assert added.exit_code == 0, added.output
    password = re.search(r"password \(shown once\): (\S+)", added.output).group(1)
    assert runner.invoke(app, ["users", "add", "ana"]).exit_code == 2  # exists: a message, no traceback
    assert runner.invoke(app, ["users", "add", "bob", "--role", "boss"]).exit_code == 2
    listed = runner.invoke(app, ["users", "list"])
    assert "ana" in listed.output and "lead" in listed.output and "active" in listed.output
    assert runner.invoke(app, ["users", "disable", "ana"]).exit_code == 0
    assert "disabled" in runner.invoke(app, ["users", "list"]).output
    changed = runner.invoke(app, ["users", "passwd", "ana"])
    assert changed.exit_code == 0
    new = re.search(r"password \(shown once\): (\S+)", changed.output).group(1)
    assert new != password
    assert runner.invoke(app, ["users", "passwd", "nobody"]).exit_code == 2
