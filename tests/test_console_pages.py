"""Console pages on SQLite through the ASGI app: dashboard figures, reveal, entity view, replay reports,
the vendored graph library and the message catalogue."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from riskguard.api.http import create_app
from riskguard.app import RiskGuard
from riskguard.console import i18n
from riskguard.console.dashboard import compute
from riskguard.console.users import UserRepository
from riskguard.console.web import HERE, STATIC

from conftest import make_settings, transfer

PASSWORD = "correct horse battery"
CYTOSCAPE_SHA256 = "71fa9ebec21a7ca2c40cff6aacc30d1f6464e363662ad4b2c197e1adc770cd94"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("console-pages2")
    reports = folder / "reports"
    (reports / "spring").mkdir(parents=True)
    (reports / "spring" / "report.json").write_text(
        json.dumps(
            {
                "history": {"events": 1234},
                "columns": [
                    {"label": "starter v4", "loss_rate": 0.0012, "friction": 0.031, "recall": 0.8, "decisions": {}}
                ],
            }
        )
    )
    (reports / "spring" / "report.html").write_text("<html><body><h1>replay spring</h1></body></html>")
    (reports / "half").mkdir()
    (reports / "half" / "report.json").write_text("{}")  # no report.html: not listed
    settings = make_settings(f"sqlite:///{folder}/rg.db", console_reports_dir=str(reports))
    guard = RiskGuard(settings, background=False)
    users = UserRepository(guard.engine)
    for name, role in (("ana", "analyst"), ("aud", "auditor")):
        users.add(name, role, PASSWORD, actor="test")
    app = create_app(guard)
    yield guard, app
    guard.close()


def sign_in(app: Any, username: str) -> tuple[TestClient, str]:
    client = TestClient(app, base_url="http://127.0.0.1")
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text).group(1)
    client.post("/console/login", data={"csrf": token, "username": username, "password": PASSWORD})
    page = client.get("/console/lists")
    assert page.status_code == 200
    return client, re.search(r'data-csrf="([^"]+)"', page.text).group(1)


def test_dashboard_figures_match_the_decisions_and_labels(site: Any) -> None:
    guard, app = site
    amounts = ["100.00", "2500.50", "52000.00", "80.25", "9000.00", "15.00"]
    decided = []
    for i, amount in enumerate(amounts):
        event = transfer(f"dash-{i}", account_id=f"acc-d{i % 3}", amount=amount, counterparty_id=f"acc-x{i}")
        decided.append((event, guard.decide(event)))
    fraud_ids = {"dash-1", "dash-3", "dash-4"}
    guard.add_labels(
        [
            {
                "event_id": e,
                "entity_kind": None,
                "entity_value": None,
                "label": "fraud",
                "source": "test",
                "typology": None,
                "labelled_at": datetime.now(UTC),
                "note": None,
            }
            for e in sorted(fraud_ids)
        ]
    )
    figures = compute(guard.engine, days=7)
    total = sum(Decimal(a) for a in amounts)
    lost = sum(Decimal(e["amount"]) for e, d in decided if e["event_id"] in fraud_ids and d["decision"] == "allow")
    legit = [d for e, d in decided if e["event_id"] not in fraud_ids]
    assert figures["events"] == len(amounts)
    assert figures["loss_rate"] == pytest.approx(float(lost / total))
    assert figures["friction"] == pytest.approx(
        sum(d["decision"] in ("challenge", "block") for d in legit) / len(legit)
    )
    assert sum(figures["totals"].values()) == len(amounts)
    for outcome in ("allow", "challenge", "review", "block"):
        assert figures["totals"][outcome] == sum(d["decision"] == outcome for _, d in decided)
    hits: dict[str, int] = {}
    for _, d in decided:
        if d["decision"] != "allow":
            for reason in d["reasons"]:
                hits[reason["rule"]] = hits.get(reason["rule"], 0) + 1
    assert dict(figures["top_rules"]) == dict(sorted(hits.items(), key=lambda kv: -kv[1])[:10])
    assert figures["p50_ms"] <= figures["p99_ms"]
    client, _ = sign_in(app, "ana")
    page = client.get("/console/?days=7")
    assert page.status_code == 200 and 'id="loss-rate"' in page.text and "<svg" in page.text


def test_reveal_is_audited_and_refused_to_auditors(site: Any) -> None:
    guard, app = site
    console = app.state.console
    ref = console.refs.seal("phone", "13812345678")
    analyst, token = sign_in(app, "ana")
    shown = analyst.post("/console/reveal", data={"csrf": token, "ref": ref, "target": "/console/test"})
    assert shown.status_code == 200 and shown.json() == {"value": "13812345678"}
    entries = [r for r in guard.audit.recent(20) if r["action"] == "pii.reveal"]
    assert entries and entries[0]["actor"] == "console:ana"
    assert "13812345678" not in json.dumps(entries[0]["details"])
    auditor, token = sign_in(app, "aud")
    refused = auditor.post("/console/reveal", data={"csrf": token, "ref": ref})
    assert refused.status_code == 403
    forged = analyst.post("/console/reveal", data={"csrf": token, "ref": ref})  # the auditor's token
    assert forged.status_code == 400
    own = re.search(r'data-csrf="([^"]+)"', analyst.get("/console/lists").text).group(1)
    bad = analyst.post("/console/reveal", data={"csrf": own, "ref": "xyz"})
    assert bad.status_code == 404


def test_entity_view_of_an_account(site: Any) -> None:
    guard, app = site
    guard.decide(transfer("ent-1", account_id="acc-ent", amount="777.77", counterparty_id="acc-other"))
    guard.lists.add("watch_accounts", ["acc-ent"], reason="seen in a ring", expires_at=None, actor="test")
    console = app.state.console
    client, _ = sign_in(app, "ana")
    page = client.get("/console/entities/" + console.refs.seal("account", "acc-ent"))
    assert page.status_code == 200
    assert "777.77" in page.text and "watch_accounts" in page.text and "seen in a ring" in page.text
    phone = client.get("/console/entities/" + console.refs.seal("phone", "13900001111"))
    assert "13900001111" not in phone.text
    assert "13*******11" in phone.text and 'button class="reveal' in phone.text
    assert client.get("/console/entities/not-a-reference").status_code == 404
    UserRepository(guard.engine).add("lead9", "lead", PASSWORD, actor="test")
    lead, token = sign_in(app, "lead9")
    page = lead.get("/console/entities/" + console.refs.seal("device", "dev-ent-9"))
    ref = re.search(r'name="ref" value="([^"]+)"', page.text).group(1)  # the entity page's list form
    added = lead.post(
        "/console/lists/add",
        data={"csrf": token, "ref": ref, "name": "blocked_devices", "expires": "12h"},
        follow_redirects=False,
    )
    assert added.status_code == 303
    entry = next(r for r in guard.lists.entries("blocked_devices") if r["value"] == "dev-ent-9")
    assert entry["created_by"] == "console:lead9" and entry["expires_at"] is not None
    assert 'name="ref"' not in client.get("/console/entities/" + console.refs.seal("device", "dev-ent-9")).text


def test_replay_reports_are_listed_and_served(site: Any) -> None:
    _, app = site
    client, _ = sign_in(app, "ana")
    page = client.get("/console/replays")
    assert "spring" in page.text and "1,234" in page.text and "half" not in page.text
    report = client.get("/console/replays/spring")
    assert report.status_code == 200 and "replay spring" in report.text
    assert client.get("/console/replays/half").status_code == 404
    assert client.get("/console/replays/..%2F..%2Fetc").status_code == 404


def test_the_graph_library_is_vendored_and_pinned() -> None:
    library = STATIC / "vendor" / "cytoscape.min.js"
    assert hashlib.sha256(library.read_bytes()).hexdigest() == CYTOSCAPE_SHA256
    assert (STATIC / "vendor" / "cytoscape.LICENSE").read_text().startswith("Copyright")
    docs = (Path(__file__).resolve().parents[1] / "docs" / "console.md").read_text()
    assert CYTOSCAPE_SHA256 in docs


def test_every_catalogue_key_used_exists_in_both_languages() -> None:
    used: set[str] = set()
    prefixes: set[str] = set()
    for path in list((HERE / "templates").glob("*.html")) + list(HERE.glob("*.py")):
        for match in re.finditer(r"(?<![\w.])t\(\s*[\"']([a-z_][\w.\-]*)[\"']\s*(~)?", path.read_text()):
            (prefixes if match.group(2) else used).add(match.group(1))
    assert len(used) > 150
    assert sorted(k for k in used if k not in i18n.CATALOGUE) == []
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in i18n.CATALOGUE), prefix
    for key, (english, chinese) in i18n.CATALOGUE.items():
        assert english and chinese, key
    for role in ("analyst", "lead", "admin", "auditor"):
        assert f"role.{role}" in i18n.CATALOGUE
    assert i18n.translator("zh-CN")("nav.alerts") == "告警队列" and i18n.translator("en")("nav.alerts") == "Alerts"


def test_queue_bulk_assign_and_case_actions_by_role(site: Any) -> None:
    guard, app = site
    cases = app.state.console.cases
    UserRepository(guard.engine).add("lead2", "lead", PASSWORD, actor="test")
    first = cases.create_alert(
        actor="test", title="tip one", entities=[{"kind": "account", "value": "acc-q1"}], amount="1000.00", score="0.9"
    )
    second = cases.create_alert(
        actor="test", title="tip two", entities=[{"kind": "account", "value": "acc-q2"}], amount="50.00", score="0.2"
    )
    analyst, a_token = sign_in(app, "ana")
    lead, l_token = sign_in(app, "lead2")
    queue = lead.get("/console/alerts?sort=priority")
    assert queue.status_code == 200
    assert queue.text.index("tip one") < queue.text.index("tip two")  # priority = score × amount
    ids = [str(first["id"]), str(second["id"])]
    refused = analyst.post(
        "/console/alerts/bulk", data={"csrf": a_token, "alert_ids": ids, "do": "assign", "assignee": "ana"}
    )
    assert refused.status_code == 403
    done = lead.post(
        "/console/alerts/bulk",
        data={"csrf": l_token, "alert_ids": ids, "do": "assign", "assignee": "ana"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert {a["assignee"] for a in cases.alerts(assignee="ana")["alerts"]} == {"ana"}
    assert len(cases.alerts(assignee="ana")["alerts"]) == 2
    opened = analyst.post(
        "/console/alerts/bulk", data={"csrf": a_token, "alert_ids": ids[0], "do": "case"}, follow_redirects=False
    )
    case_path = opened.headers["location"]
    case_id = int(case_path.rsplit("/", 1)[1])
    page = analyst.get(case_path)
    assert page.status_code == 200 and "tip one" in page.text
    ref = re.search(r'name="ref" value="([^"]+)"', page.text).group(1)

    def act(client: TestClient, token: str, **form: str) -> int:
        return client.post(f"{case_path}/act", data={"csrf": token, **form}, follow_redirects=False).status_code

    assert act(analyst, a_token, do="freeze", ref=ref, ttl="48h") == 303
    assert "acc-q1" in [r["value"] for r in guard.lists.entries("blocked_accounts")]
    assert act(analyst, a_token, do="status", status="investigating") == 303
    assert act(analyst, a_token, do="assign", assignee="ana") == 403  # assigning is a lead's
    assert act(lead, l_token, do="assign", assignee="ana") == 303
    assert act(analyst, a_token, do="list", ref=ref, list="watch_accounts", ttl="bad") == 422
    assert act(analyst, a_token, do="close", resolution="confirmed_fraud", label="1") == 303
    assert cases.summary(case_id)["status"] == "closed"
    assert [lab["label"] for lab in guard.labels.for_entity("account", "acc-q1")] == ["fraud"]
    assert act(analyst, a_token, do="list", ref=ref, ttl="30d") == 422  # closed: reopen first
    assert act(analyst, a_token, do="reopen") == 403
    assert act(lead, l_token, do="reopen") == 303
    assert cases.summary(case_id)["status"] == "investigating"
    actors = {r["actor"] for r in guard.audit.recent(100) if r["action"].startswith("case.")}
    assert {"console:ana", "console:lead2"} <= actors


def test_admin_lifts_a_reveal_throttle_and_masked_packages_need_no_reveal(site: Any) -> None:
    from riskguard.cases.evidence import verify
    from riskguard.privacy import Throttled

    guard, app = site
    UserRepository(guard.engine).add("admin3", "admin", PASSWORD, actor="test")
    UserRepository(guard.engine).add("bulky", "analyst", PASSWORD, actor="test")
    with pytest.raises(Throttled):  # one request for 120 values: bulk, refused and throttled
        guard.privacy.revealer.reveal_many(
            "console:bulky", "analyst", [("phone", f"1380000{i:04d}") for i in range(120)], purpose="t", target="t"
        )
    analyst, a_token = sign_in(app, "bulky")
    ref = app.state.console.refs.seal("phone", "13800001234")
    throttled = analyst.post("/console/reveal", data={"csrf": a_token, "ref": ref})
    assert throttled.status_code == 429 and "明文查看已暂停" in throttled.text
    case = app.state.console.cases.open_case(
        [
            app.state.console.cases.create_alert(
                actor="t", title="tip", entities=[{"kind": "phone", "value": "13911112222"}]
            )["id"]
        ],
        actor="t",
    )
    masked = analyst.post(f"/console/cases/{case['id']}/export", data={"csrf": a_token, "masked": "1"})
    assert masked.status_code == 200 and masked.headers["content-type"] == "application/zip"
    assert verify(masked.content)["ok"]
    with zipfile.ZipFile(io.BytesIO(masked.content)) as archive:
        evidence = archive.read("evidence.json").decode()
    assert "13911112222" not in evidence and "13*******22" in evidence
    assert analyst.post(f"/console/cases/{case['id']}/export", data={"csrf": a_token}).status_code == 429
    admin, token = sign_in(app, "admin3")
    assert 'id="lift-bulky"' in admin.get("/console/users").text
    assert (
        admin.post("/console/users/bulky", data={"csrf": token, "do": "lift"}, follow_redirects=False).status_code
        == 303
    )
    assert 'id="lift-bulky"' not in admin.get("/console/users").text
    shown = analyst.post("/console/reveal", data={"csrf": a_token, "ref": ref})
    assert shown.status_code == 200 and shown.json()["value"] == "13800001234"
    assert any(r["action"] == "pii.throttle_lift" and r["actor"] == "console:admin3" for r in guard.audit.recent(50))


def test_entity_references_open_in_every_worker_of_the_installation(site: Any, tmp_path: Path) -> None:
    guard, app = site
    other = create_app(guard)  # a second worker process builds its own console on the same database
    ref = app.state.console.refs.seal("card", "6222020000001234")
    assert other.state.console.refs.open(ref) == ("card", "6222020000001234")
    elsewhere = RiskGuard(make_settings(f"sqlite:///{tmp_path}/other.db"), background=False)
    try:
        from riskguard.errors import NotFound

        with pytest.raises(NotFound):  # another installation cannot open it
            create_app(elsewhere).state.console.refs.open(ref)
    finally:
        elsewhere.close()
