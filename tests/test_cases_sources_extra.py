"""The inbox's newer sources: account security's leak-outreach alerts and the privacy Revealer's access
alerts (bulk, volume, off-hours, canary) — pulled idempotently, prioritised as documented, leaks never
merged or labelled, and an access alert not worked by the person it is about."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from cases_helpers import casework, transfer
from riskguard.app import RiskGuard
from riskguard.cases.priority import score_bp
from riskguard.cases.tables import case_alert_entities, case_alerts
from riskguard.errors import Forbidden
from riskguard.events.schema import from_stored
from riskguard.privacy import Throttled
from riskguard.privacy.canary import create_canaries

PHONE = "13812345678"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def _stored_text(guard: RiskGuard) -> str:
    with guard.engine.connect() as connection:
        rows = connection.execute(select(case_alerts)).all() + connection.execute(select(case_alert_entities)).all()
    return json.dumps([r._asdict() for r in rows], default=str)


def test_scores_of_the_new_sources() -> None:
    assert score_bp("leak", "leak", 50) == 5000  # account security's 40..100 scale
    assert score_bp("access", "canary", 1.0) == 10_000
    assert score_bp("access", "bulk", 0.9) == 9000


def test_a_leak_import_becomes_one_unmerged_alert_idempotently(guard: RiskGuard, tmp_path: Any) -> None:
    service = casework(guard, tmp_path)
    guard.decide(
        {
            "event_id": "signup-leaked",
            "type": "signup",
            "occurred_at": _iso(-timedelta(days=2)),
            "account_id": "acc-leaked",
            "phone": PHONE,
        }
    )
    guard.decide(transfer("t-leaked", _iso(-timedelta(days=1)), "acc-leaked", "1500.00", "payee-1"))  # a review
    result = guard.accountsec.leaks.import_leak(
        [("phone", PHONE), ("phone", "13900000001")],
        name="shop-leak",
        source="paste site",
        discovered_at=datetime.now(UTC),
        watch_days=30,
        actor="test",
        events=(from_stored(p) for _t, p in guard.events.stream_since(EPOCH)),
    )
    assert result.accounts == 1

    first = service.sync("test")["sources"]
    assert first["leak"] == {"new": 1, "updated": 0, "merged": 0, "unchanged": 0}
    assert first["review"]["new"] == 1
    again = service.sync("test")["sources"]
    assert again["leak"]["new"] == 0 and again["leak"]["updated"] == 0 and again["leak"]["unchanged"] == 1

    (leak,) = service.alerts(source="leak")["alerts"]
    assert leak["sources"] == ["leak"] and leak["alerts"] == 1  # not merged into the review of the same account
    assert [e["kind"] for e in leak["entities"]] == ["account"]
    assert leak["score"] == "0.5000" and leak["amount_at_risk"] == "1500.00" and leak["priority"] == "750.00"
    member = service.alert(leak["id"])["members"][0]
    assert member["source_key"] == f"leak:{result.leak_id}" and member["evidence"]["leak"] == "shop-leak"
    assert PHONE not in _stored_text(guard) and PHONE not in json.dumps(service.alert(leak["id"]))

    # a re-import that changes the leak alert updates the inbox row in place
    guard.accountsec.leaks.import_leak(
        [("email", "x@example.org")],
        name="shop-leak",
        source="paste site",
        discovered_at=datetime.now(UTC),
        watch_days=30,
        actor="test",
    )
    assert service.sync("test")["sources"]["leak"]["updated"] == 1
    assert service.alerts(source="leak")["total"] == 1

    # the affected accounts are the leak's victims: a fraud resolution does not label them
    case = service.open_case([leak["id"]], actor="console:ann")
    closed = service.close(case["id"], "confirmed_fraud", actor="console:ann")
    assert closed["labels"] == 0


def test_a_bulk_reveal_is_an_access_alert_its_subject_may_not_work(guard: RiskGuard, tmp_path: Any) -> None:
    service = casework(guard, tmp_path)
    phones = [("phone", f"1390000{i:04d}") for i in range(guard.privacy.revealer.policy.bulk_threshold)]
    with pytest.raises(Throttled, match="bulk"):
        guard.privacy.revealer.reveal_many("console:bob", "analyst", phones, purpose="export", target="export:all")

    assert service.sync("test")["sources"]["access"]["new"] == 1
    assert service.sync("test")["sources"]["access"] == {"new": 0, "updated": 0, "merged": 0, "unchanged": 1}
    (alert,) = service.alerts(source="access")["alerts"]
    assert alert["kind"] == "bulk" and alert["title"] == "Bulk reveal refused by console:bob"
    assert [e["kind"] for e in alert["entities"]] == ["actor"]
    assert alert["score"] == "0.9000" and alert["priority"] == "900000.00"
    evidence = service.alert(alert["id"])["members"][0]["evidence"]
    assert evidence["actor"] == "console:bob" and evidence["requested"] == len(phones)
    assert not any(p in _stored_text(guard) for _k, p in phones)

    with pytest.raises(Forbidden, match="bob"):
        service.open_case([alert["id"]], actor="console:bob")
    with pytest.raises(Forbidden):
        service.assign_alerts([alert["id"]], "bob", actor="console:lee")  # nor be given it
    case = service.open_case([alert["id"]], actor="console:lee", assignee="ann")
    with pytest.raises(Forbidden):
        service.add_note(case["id"], "it was for a report", actor="console:bob")
    with pytest.raises(Forbidden):
        service.assign(case["id"], "bob", actor="console:lee")
    with pytest.raises(Forbidden):
        service.close(case["id"], "legitimate", actor="console:bob")
    assert service.add_note(case["id"], "asked bob's lead", actor="console:ann")["author"] == "console:ann"
    assert service.close(case["id"], "inconclusive", actor="console:ann")["status"] == "closed"


def test_a_canary_open_is_the_top_alert_and_keeps_the_canary_secret(guard: RiskGuard, tmp_path: Any) -> None:
    service = casework(guard, tmp_path)
    guard.decide(transfer("big", _iso(-timedelta(hours=1)), "acc-o", "50000.00", "shop-9"))  # a 35,000 review
    (canary,) = create_canaries(guard, 1, actor="security")
    revealer = guard.privacy.revealer
    revealer.reveal("console:mallory", "analyst", "text", "anything", purpose="look", target=f"account:{canary}")
    revealer.reveal("console:mallory", "analyst", "text", "other", purpose="look", target="case:1")  # no alert

    service.sync("test")
    top = service.alerts()["alerts"][0]
    assert top["source"] == "access" and top["kind"] == "canary"
    assert top["score"] == "1.0000" and top["priority"] == "1000000.00"
    assert top["title"] == "Canary record opened by console:mallory"
    shown = service.alert(top["id"], revealed=True, actor="console:ann", role="analyst")
    evidence = shown["members"][0]["evidence"]
    assert evidence["canaries_opened"] == 1 and "canaries" not in evidence and "target" not in evidence
    assert canary not in json.dumps(shown) and canary not in _stored_text(guard)
    review = service.alerts(source="review")["alerts"][0]
    assert review["priority"] == "35000.00"


def test_the_console_refuses_an_access_alert_to_its_subject(tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from riskguard.api.http import create_app
    from riskguard.console.users import UserRepository

    from conftest import make_settings

    password = "correct horse battery"
    with RiskGuard(make_settings(f"sqlite:///{tmp_path}/rg.db"), background=False) as guard:
        users = UserRepository(guard.engine)
        for name in ("ana", "ben"):
            users.add(name, "analyst", password, actor="test")
        app = create_app(guard)

        def sign_in(username: str) -> tuple[TestClient, str]:
            client = TestClient(app, base_url="http://127.0.0.1")
            token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text)
            assert token is not None
            client.post("/console/login", data={"csrf": token.group(1), "username": username, "password": password})
            page = client.get("/console/lists")
            found = re.search(r'data-csrf="([^"]+)"', page.text)
            assert page.status_code == 200 and found is not None
            return client, found.group(1)

        phones = [("phone", f"1370000{i:04d}") for i in range(guard.privacy.revealer.policy.bulk_threshold)]
        with pytest.raises(Throttled):
            guard.privacy.revealer.reveal_many("console:ana", "analyst", phones, purpose="export", target="export:x")
        ana, a_token = sign_in("ana")
        queue = ana.get("/console/alerts", params={"source": "access"})
        assert queue.status_code == 200 and "Bulk reveal refused by console:ana" in queue.text
        assert "内部访问异常" in queue.text and "内部用户" in queue.text  # the console's default locale
        (alert,) = app.state.cases.alerts(source="access")["alerts"]
        refused = ana.post("/console/alerts/bulk", data={"csrf": a_token, "alert_ids": str(alert["id"]), "do": "case"})
        assert refused.status_code == 403
        ben, b_token = sign_in("ben")
        opened = ben.post(
            "/console/alerts/bulk",
            data={"csrf": b_token, "alert_ids": str(alert["id"]), "do": "case"},
            follow_redirects=False,
        )
        assert opened.status_code == 303
        page = ben.get(opened.headers["location"])
        assert page.status_code == 200 and "内部用户" in page.text and "/console/entities/" not in page.text
