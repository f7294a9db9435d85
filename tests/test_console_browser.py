"""The console in a real browser: Debian's Chromium (headless) driven by Playwright against ``riskguard serve``
on a database holding a small simulated world (telecom fraud), from the first-run admin password printed by
the server to a closed case and a verified evidence package. A screenshot of each page is saved under
``test-output/console/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parent.parent / "test-output" / "console"
PASSWORD = "analyst password 1"

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _world(database: Path, scratch: Path) -> None:
    """A small simulated world (100 accounts, one day, the telecom-fraud gang only) decided in process."""
    from rich.console import Console

    from riskguard.app import RiskGuard
    from riskguard.config import Settings
    from riskguard.sim.config import TYPOLOGIES, WorldConfig
    from riskguard.sim.demo import generate
    from riskguard.sim.stream import InProcessTarget
    from riskguard.sim.writer import envelope, read_events

    only = {name: (1.0 if name == "telecom_fraud" else 0.0) for name in TYPOLOGIES}
    config = WorldConfig(accounts=100, days=1, seed=3, start=date(2026, 11, 1), intensity=only)
    generate(config, scratch / "world", Console(quiet=True))
    events = read_events(scratch / "world")
    settings = Settings.from_env(environ={}, database_url=f"sqlite:///{database}", feature_snapshot_path="off")
    with RiskGuard(settings, background=False) as guard:
        InProcessTarget(guard).stream((envelope(row) for row in events.iter_rows(named=True)), lambda _d: None)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not CHROMIUM.exists():
        message = "Debian's chromium is not installed at /usr/bin/chromium (.ci/run installs it)"
        if os.environ.get("RISKGUARD_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    scratch = tmp_path_factory.mktemp("console-browser")
    database = scratch / "rg.db"
    _world(database, scratch)
    port = _free_port()
    env = {
        **os.environ,
        "RISKGUARD_DATABASE_URL": f"sqlite:///{database}",
        "RISKGUARD_PORT": str(port),
        "RISKGUARD_FEATURE_SNAPSHOT_PATH": "off",
        "RISKGUARD_CONSOLE_REPORTS_DIR": str(scratch / "reports"),
        "RISKGUARD_LOG_LEVEL": "WARNING",
    }
    err = (scratch / "serve.err").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "riskguard"), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=err
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the server did not start:\n" + (scratch / "serve.err").read_text())
            time.sleep(0.2)
        printed = (scratch / "serve.err").read_text()
        found = re.search(r"console user 'admin'.*?with password (\S+)", printed, re.S)
        assert found, printed  # the first run prints the console admin's password once
        from sqlalchemy import create_engine

        from riskguard.console.users import UserRepository

        engine = create_engine(f"sqlite:///{database}")
        users = UserRepository(engine)
        users.add("ana", "analyst", PASSWORD, actor="test")
        users.add("aud", "auditor", PASSWORD, actor="test")
        engine.dispose()
        SHOTS.mkdir(parents=True, exist_ok=True)
        yield {"base": base, "admin": found.group(1), "scratch": scratch}
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        err.close()


@pytest.fixture(scope="module")
def browser(served: dict[str, Any]) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield chromium
        chromium.close()


def _context(browser: Any, served: dict[str, Any]) -> Any:
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, base_url=served["base"], accept_downloads=True
    )
    context.set_default_timeout(15_000)
    return context


def _sign_in(page: Any, username: str, password: str) -> None:
    page.goto("/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#signin")
    page.wait_for_url(re.compile(r"/console/$"))


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_an_alert_worked_to_a_closed_case_with_a_verified_evidence_package(
    browser: Any, served: dict[str, Any]
) -> None:
    from riskguard.cases.evidence import verify

    context = _context(browser, served)
    page = context.new_page()
    page.goto("/console/login")
    _shot(page, "login")
    _sign_in(page, "admin", served["admin"])
    assert page.locator(".tile").count() >= 6  # outcomes, loss rate, friction, recall, latency
    assert page.locator("svg.chart rect").count() > 0
    _shot(page, "dashboard")

    page.click("text=English")  # the language switch, then back to the default Chinese
    assert page.locator("html").get_attribute("lang") == "en"
    page.click("#lang-zh-CN")
    assert page.locator("html").get_attribute("lang") == "zh-CN"

    page.goto("/console/alerts")
    rows = page.locator("#queue a.alert-link")
    assert rows.count() >= 1
    _shot(page, "alerts")
    rows.first.click()
    page.wait_for_url(re.compile(r"/console/alerts/\d+$"))
    _shot(page, "alert")
    page.click("#open-case")
    page.wait_for_url(re.compile(r"/console/cases/\d+$"))
    case_url = page.url

    # the ring graph: Cytoscape.js drew the case's entities
    page.wait_for_function("Number(document.getElementById('graph').getAttribute('data-nodes')) > 0")
    assert page.locator("#graph canvas").count() > 0
    drawn = page.evaluate("window.rgGraph.nodes().length")
    assert drawn == int(page.locator("#graph").get_attribute("data-nodes")) and drawn >= 2
    _shot(page, "case")

    # add an account of the case to a list, with an expiry
    page.locator("#case-entities input.pick[data-kind=account]").first.check()
    page.select_option("select[name=list]", "blocked_accounts")
    page.fill("input[name=ttl]", "7d")
    page.click("#act-list")
    page.wait_for_url(re.compile(r"/console/cases/\d+"))
    assert "blocked_accounts" in page.locator("#case-entities").inner_text()

    # an entity view from the case
    page.locator("#case-entities a").first.click()
    page.wait_for_url(re.compile(r"/console/entities/"))
    assert "blocked_accounts" in page.content()
    _shot(page, "entity")
    page.goto(case_url)

    page.fill("#note-text", "Mule account confirmed by the receiving bank.")
    page.click("#act-note")
    page.wait_for_url(re.compile(r"/console/cases/\d+"))
    assert "Mule account confirmed" in page.content()
    page.select_option("#resolution", "confirmed_fraud")
    page.click("#act-close")
    page.wait_for_url(re.compile(r"/console/cases/\d+"))
    assert page.locator("#case-status").inner_text() == "已结案"

    with page.expect_download() as waiting:
        page.click("#export")
    package = served["scratch"] / "evidence.zip"
    waiting.value.save_as(package)
    checked = verify(package)
    assert checked["ok"], checked["problems"]
    assert (
        checked["case_id"] == int(case_url.rsplit("/", 1)[1]) and checked["files"] >= 2
    )  # evidence.json, report.html (+ the manifest)
    tampered = bytearray(package.read_bytes())
    assert not verify(bytes(tampered[: len(tampered) // 2]))["ok"]

    for path, name in (
        ("/console/cases", "cases"),
        ("/console/strategies", "strategies"),
        ("/console/lists", "lists"),
        ("/console/replays", "replays"),
        ("/console/audit", "audit"),
        ("/console/users", "users"),
    ):
        response = page.goto(path)
        assert response.status == 200, path
        _shot(page, name)
    page.goto("/console/audit")
    audit = page.locator("#audit").inner_text()
    for action in ("case.open", "case.list_add", "case.close", "case.evidence_export", "pii.reveal"):
        assert action in audit, action
    context.close()


def test_roles_without_permission_are_refused_in_the_browser(browser: Any, served: dict[str, Any]) -> None:
    context = _context(browser, served)
    page = context.new_page()
    _sign_in(page, "ana", PASSWORD)
    response = page.goto("/console/users")
    assert response.status == 403 and page.locator("#error-403").count() == 1
    _shot(page, "refused-analyst")
    page.goto("/console/strategies")
    assert page.locator("#rollback").count() == 0  # hidden, and refused by the server:
    csrf = page.locator("body").get_attribute("data-csrf")
    refused = context.request.post(served["base"] + "/console/strategies/rollback", form={"csrf": csrf})
    assert refused.status == 403
    context.close()

    context = _context(browser, served)
    page = context.new_page()
    _sign_in(page, "aud", PASSWORD)
    page.goto("/console/cases")
    page.locator("#cases a").first.click()
    page.wait_for_url(re.compile(r"/console/cases/\d+$"))
    assert page.locator("#export").count() == 0 and page.locator("#act-note").count() == 0
    assert page.locator("#reveal-case").count() == 0
    case_id = page.url.rsplit("/", 1)[1]
    csrf = page.locator("body").get_attribute("data-csrf")
    for path, form in (("/act", {"do": "note", "text": "x"}), ("/export", {}), ("/reveal", {})):
        answer = context.request.post(f"{served['base']}/console/cases/{case_id}{path}", form={"csrf": csrf, **form})
        assert answer.status == 403, path
    context.close()


def test_the_graph_area_says_so_when_the_library_is_missing(browser: Any, served: dict[str, Any]) -> None:
    context = _context(browser, served)
    context.route("**/vendor/cytoscape.min.js", lambda route: route.abort())
    page = context.new_page()
    _sign_in(page, "ana", PASSWORD)
    page.goto("/console/cases")
    page.locator("#cases a").first.click()
    page.wait_for_selector("#graph-missing")
    assert "Cytoscape.js" in page.locator("#graph-missing").inner_text()
    _shot(page, "case-without-graph-library")
    context.close()
