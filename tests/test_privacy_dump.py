"""The platform itself must not leak: a dump of riskguard's own database holds none of the personal
identifiers it was sent (events, attributes, decision bodies, lists, labels, alerts, complaints, traces,
audit log), while lists still match, decisions are what they are without encryption, and every value
reads back; after `keys rotate` every value is under the new key and still readable."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from riskguard.app import RiskGuard
from riskguard.complaints.service import ComplaintService
from riskguard.graph.alerts import GraphAlertRepository
from riskguard.privacy.keyring import read_file
from riskguard.privacy.rotate import Rotation
from riskguard.store.tables import events as events_table
from riskguard.tracing.store import TraceRepository

from conftest import make_settings

PHONES = ["+86 138-1234-5671", "13912345672", "8613712345673"]
CARDS = ["6222 0212 3456 7891", "6212261234567892"]
EMAILS = ["li.wei@example.org", "Zhang.San@Example.COM"]
ID_NUMBERS = ["11010119900307663X", "440301198512120021"]
NAMES = ["Wang Xiaoming", "Chen Meiling"]
IPS = ["203.0.113.77", "2001:db8::7"]
BLOCKED_PHONE = "13655501234"
BLOCKED_CARD = "6259990011223344"
NOTE = "customer called from 021-5550-1987 about the transfer"
COMPLAINT_PHONE = "+8616612345999"
TRACE_PHONE = "15822223333"
PUBLISHED_PHONE = "+8615911112222"
SECRETS = [
    *PHONES,
    *CARDS,
    *EMAILS,
    *ID_NUMBERS,
    *NAMES,
    *IPS,
    BLOCKED_PHONE,
    BLOCKED_CARD,
    COMPLAINT_PHONE,
    TRACE_PHONE,
    PUBLISHED_PHONE,
]
FRAGMENTS = ["021-5550-1987", "12345671", "7663X", "Xiaoming", "example.org", "5550-1987"]


def event(i: int, **extra: Any) -> dict[str, Any]:
    body = {
        "event_id": f"ev-{i}",
        "type": "transfer",
        "occurred_at": f"2026-11-25T10:{i:02d}:00Z",
        "account_id": f"acc-{i % 3}",
        "amount": "6000.00",
        "currency": "CNY",
        "counterparty_id": f"payee-{i}",
        "device_id": f"dev-{i % 2}",
        "phone": PHONES[i % len(PHONES)],
        "ip": IPS[i % len(IPS)],
        "card_id": CARDS[i % len(CARDS)],
        "attributes": {
            "payee_name": NAMES[i % len(NAMES)],
            "contact": {"email": EMAILS[i % len(EMAILS)], "id_number": ID_NUMBERS[i % len(ID_NUMBERS)]},
            "memo": f"please call {PHONES[(i + 1) % len(PHONES)]}",
            "beneficiary_card": int(CARDS[1]),
            "score_hint": 3,
        },
    }
    body.update(extra)
    return body


def populate(guard: RiskGuard, *, actor: str = "test") -> dict[str, dict[str, Any]]:
    """Decides events, adds lists and labels, files complaints, a trace and a graph alert, reveals once."""
    guard.lists.add("blocked_cards", [BLOCKED_CARD], reason=f"reported by {EMAILS[0]}", expires_at=None, actor=actor)
    guard.lists.add("watch_phones", [BLOCKED_PHONE, PHONES[2]], reason=None, expires_at=None, actor=actor)
    guard.refresh()
    decided = {f"ev-{i}": guard.decide(event(i), with_explain=True) for i in range(6)}
    decided["ev-blocked"] = guard.decide(event(9, event_id="ev-blocked", card_id=BLOCKED_CARD), with_explain=True)
    guard.ingest([_event_obj(guard, event(20, event_id="ev-async"))])
    guard.drain()
    guard.add_labels(
        [
            {
                "event_id": None,
                "entity_kind": "phone",
                "entity_value": PHONES[0],
                "label": "fraud",
                "source": "analyst",
                "typology": "mule",
                "labelled_at": datetime(2026, 11, 26, tzinfo=UTC),
                "note": NOTE,
            }
        ]
    )
    ComplaintService(guard).analyze(
        [
            _event_obj(
                guard,
                {
                    "event_id": f"cp-{i}",
                    "type": "complaint",
                    "occurred_at": f"2026-11-20T02:{10 + i:02d}:00Z",
                    "account_id": f"cust-{i}",
                    "phone": PHONES[i % 3],
                    "amount": "20000.00",
                    "currency": "CNY",
                    "attributes": {"text": f"要求减免罚息 联系 {COMPLAINT_PHONE}", "contact_phone": COMPLAINT_PHONE},
                },
            )
            for i in range(4)
        ],
        actor=actor,
    )
    TraceRepository(guard.engine).save(
        "trace-1",
        actor=actor,
        rule="fifo",
        as_of=datetime(2026, 11, 27, tzinfo=UTC),
        request={"reports": [{"victim_phone": TRACE_PHONE}]},
        document={"summary": {"reports": 1, "freezable": 0}, "hops": [{"phone": TRACE_PHONE}]},
    )
    GraphAlertRepository(guard.engine).upsert(
        [
            {
                "key": "ring-1",
                "kind": "ring",
                "score": 0.9,
                "accounts": ["acc-0", "acc-1"],
                "evidence": {"phones": PHONES},
            }
        ]
    )
    guard.published.publish("watch.hits", {PUBLISHED_PHONE: 1.0, "acc-0": 2.0}, replace=True, actor=actor)
    guard.privacy.revealer.reveal(actor, "analyst", "phone", PHONES[0], purpose="case 7", target="account:acc-0")
    return decided


def _event_obj(guard: RiskGuard, body: dict[str, Any]) -> Any:
    from riskguard.events.validate import parse_event_obj

    return parse_event_obj(body, **guard.settings.event_limits)


def dump(guard: RiskGuard) -> str:
    """Every byte the database holds, as text: SQLite's file bytes and iterdump; PostgreSQL's pg_dump of
    the test's schema when the tool is there, else a SELECT of every table."""
    engine = guard.engine
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database or "")
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        with sqlite3.connect(path) as db:
            lines = "\n".join(db.iterdump())
        return raw.decode("utf-8", "replace") + "\n" + lines
    schema = engine.url.query.get("options", "")
    tool = shutil.which("pg_dump")
    if tool and "search_path=" in str(schema):
        name = str(schema).split("search_path=")[1].split()[0]
        url = engine.url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
        done = subprocess.run([tool, "--schema", name, url], capture_output=True, text=True, timeout=60)
        if done.returncode == 0:
            return done.stdout
    out = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                out.append(f"{table}: {tuple(row)!r}")
    return "\n".join(out)


def variants(value: str) -> list[str]:
    """The value as sent and the forms a careless store might keep (digits only, lower case)."""
    digits = "".join(ch for ch in value if ch.isdigit())
    found = {value, value.lower()}
    if len(digits) >= 7:
        found.add(digits)
    return sorted(found)


def assert_no_plaintext(text_: str) -> None:
    lowered = text_.lower()
    leaks = [v for s in SECRETS for v in variants(s) if v.lower() in lowered]
    leaks += [f for f in FRAGMENTS if f.lower() in lowered]
    assert not leaks, f"plaintext personal data in the database dump: {leaks}"


def test_a_database_dump_holds_no_plaintext_identifiers(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, keyring_file=str(tmp_path / "keyring.json"))
    plain_settings = make_settings(f"sqlite:///{tmp_path}/plain.db", field_encryption=False)
    with RiskGuard(settings, background=False) as guard, RiskGuard(plain_settings, background=False) as plain:
        decided = populate(guard)
        baseline = populate(plain)
        assert_no_plaintext(dump(guard))
        # the unencrypted store does hold them: the scan is able to fail
        with pytest.raises(AssertionError, match="plaintext personal data"):
            assert_no_plaintext(dump(plain))

        # decisions are the same with and without encryption; the block list still matches by value
        for event_id, body in decided.items():
            other = baseline[event_id]
            assert (body["decision"], body["score"], body["reasons"]) == (
                other["decision"],
                other["score"],
                other["reasons"],
            )
        assert decided["ev-blocked"]["explain"]["lists"] == {"blocked_cards": [BLOCKED_CARD]}
        assert decided["ev-blocked"]["decision"] == baseline["ev-blocked"]["decision"]

        # everything reads back as plaintext in-process
        stored = guard.get_decision("ev-blocked", with_explain=True)
        assert (
            stored["explain"]["lists"] == {"blocked_cards": [BLOCKED_CARD]}
            and stored["score"] == decided["ev-blocked"]["score"]
        )
        payload = json.loads(guard.events.payloads(["ev-1"])["ev-1"])
        assert payload["phone"] == PHONES[1] and payload["attributes"]["contact"]["email"] == EMAILS[1]
        assert payload["attributes"]["beneficiary_card"] == int(CARDS[1]) and payload["attributes"]["score_hint"] == 3
        assert {e["value"] for e in guard.lists.entries("watch_phones")} == {BLOCKED_PHONE, PHONES[2]}
        (label,) = guard.labels.for_entity("phone", PHONES[0])
        assert label["entity_value"] == PHONES[0] and label["note"] == NOTE
        evidence = GraphAlertRepository(guard.engine).list()[0]["evidence"]
        assert evidence == {"phones": PHONES}
        assert TraceRepository(guard.engine).document("trace-1")["hops"] == [{"phone": TRACE_PHONE}]
        assert guard.published.load("watch.hits") == {PUBLISHED_PHONE: 1.0, "acc-0": 2.0}
        with guard.engine.connect() as connection:
            raw = connection.execute(
                select(events_table.c.payload).where(events_table.c.event_id == "ev-1")
            ).scalar_one()
        assert json.loads(raw)["amount"] == "6000.00" and json.loads(raw)["phone"].startswith("enc1:")

        # a restart (feature state rebuilt from the sealed log) still decides the same
        again = guard.decide(event(30, event_id="ev-again", card_id=BLOCKED_CARD))
        assert again["decision"] == decided["ev-blocked"]["decision"]


def test_rotation_reencrypts_everything_and_retires_the_old_key(tmp_path: Path, db_url: str) -> None:
    keyring_file = tmp_path / "keyring.json"
    settings = make_settings(db_url, keyring_file=str(keyring_file))
    with RiskGuard(settings, background=False) as guard:
        populate(guard)
        old_key, old_token = guard.privacy.cipher.active_key, guard.privacy.cipher.active_token_key
        assert f"enc1:{old_key}:" in dump(guard)
        report = Rotation(guard.engine, guard.privacy, batch=3).rotate(new_token_key=True, settle_s=0)
        new_key = guard.privacy.cipher.active_key
        assert new_key != old_key and not any(report.remaining.values())
        assert report.retired == sorted([old_key, old_token]) and report.retokenised > 0
        text_ = dump(guard)
        assert f"enc1:{old_key}:" not in text_  # tokens of the old key stay only in past audit entries
        with guard.engine.connect() as connection:
            for table, column in (("list_entries", "value"), ("labels", "entity_value"), ("privacy_vault", "token")):
                values = connection.execute(text(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")).scalars()
                assert {v.split(":")[1] for v in values} == {guard.privacy.cipher.active_token_key}, table
        assert_no_plaintext(text_)
        keyring = read_file(keyring_file)
        assert old_key not in keyring.keys and old_key in keyring.retired and keyring.active == new_key
        # still readable, lists still match under the new token key, labels found by value
        assert guard.get_decision("ev-blocked", with_explain=True)["explain"]["lists"] == {
            "blocked_cards": [BLOCKED_CARD]
        }
        assert {e["value"] for e in guard.lists.entries("watch_phones")} == {BLOCKED_PHONE, PHONES[2]}
        assert guard.labels.for_entity("phone", PHONES[0])[0]["note"] == NOTE
        assert guard.published.load("watch.hits") == {PUBLISHED_PHONE: 1.0, "acc-0": 2.0}
        guard.refresh()
        after = guard.decide(event(31, event_id="ev-after", card_id=BLOCKED_CARD), with_explain=True)
        assert after["explain"]["lists"] == {"blocked_cards": [BLOCKED_CARD]}
    with RiskGuard(settings, background=False) as reopened:  # a restart with the rotated keyring
        assert json.loads(reopened.events.payloads(["ev-2"])["ev-2"])["phone"] == PHONES[2]


def test_rotation_seals_what_an_older_installation_left_in_plaintext(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    keyring_file = str(tmp_path / "keyring.json")
    with RiskGuard(make_settings(url, field_encryption=False, keyring_file=keyring_file), background=False) as old:
        populate(old)
        with pytest.raises(AssertionError):
            assert_no_plaintext(dump(old))
    with RiskGuard(make_settings(url, keyring_file=keyring_file), background=False) as guard:
        report = Rotation(guard.engine, guard.privacy).rotate(new_key=False, settle_s=0)
        assert report.rewritten["events.payload"] >= 7 and report.rewritten["list_entries.value"] == 3
        assert_no_plaintext(dump(guard))
        assert {e["value"] for e in guard.lists.entries("watch_phones")} == {BLOCKED_PHONE, PHONES[2]}
        assert json.loads(guard.events.payloads(["ev-0"])["ev-0"])["phone"] == PHONES[0]
        assert guard.get_decision("ev-blocked", with_explain=True)["explain"]["lists"] == {
            "blocked_cards": [BLOCKED_CARD]
        }
