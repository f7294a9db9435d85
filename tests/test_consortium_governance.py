"""Governance on the log: who may file what, retraction by the filer, appeals with deadlines and
escalation, expiry, membership changes, contributions; consortium hits as signals only; the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from riskguard.app import RiskGuard
from riskguard.cli.main import app as cli
from riskguard.consortium.entries import (
    AppealDecided,
    AppealOpened,
    Confirmation,
    Entry,
    EntryError,
    Evidence,
    Genesis,
    Member,
    Membership,
    Report,
    Retraction,
    expiry,
    sign_entry,
)
from riskguard.consortium.gateway import Gateway, StrategyBreaksSignalRule
from riskguard.consortium.note import Signer
from riskguard.consortium.signals import violations
from riskguard.consortium.state import LedgerState
from riskguard.consortium.tokens import TokenClient, TokenService

from conftest import make_settings

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
KEYS = {name: Signer.generate(name) for name in ("bank-a", "bank-b", "pay-c", "bank-d")}


def _member(name: str, roles: list[str]) -> Member:
    return Member(id=name, name=name.upper(), key=str(KEYS[name].verifier), roles=roles)


def _genesis() -> Genesis:
    return Genesis(
        origin="t/log",
        log_key=str(Signer.generate("t/log").verifier),
        token_key="00" * 32,
        token_member="bank-a",
        members=[
            _member("bank-a", ["admin", "reporter", "witness"]),
            _member("bank-b", ["reporter", "witness"]),
            _member("pay-c", ["witness"]),
        ],
        witness_threshold=2,
        default_expiry_days=730,
        max_expiry_days=2190,
        appeal_response_days=30,
    )


class Log:
    def __init__(self) -> None:
        self.state = LedgerState()
        self.file("bank-a", "genesis", _genesis(), T0)

    def file(self, who: str, kind: str, body: object, at: datetime) -> Entry:
        entry = sign_entry(KEYS[who], kind, body, at=at)  # type: ignore[arg-type]
        self.state.admit(entry, self.state.size)
        return entry


def _report(subject: str, who: str = "bank-a", at: datetime = T0, days: int = 730) -> Report:
    return Report(
        subject=subject,
        subject_kind="account",
        category="mule",
        severity=4,
        evidence=Evidence(hash="ee" * 32, held_by=who),
        legal_basis="AML law art. 16",
        expires_at=expiry(at, days),
    )


def test_reports_retractions_and_expiry() -> None:
    log = Log()
    report = log.file("bank-a", "report", _report("aa" * 32), T0)
    assert set(log.state.hits(T0 + timedelta(days=1))) == {"aa" * 32}
    with pytest.raises(EntryError, match="reporter"):
        log.file("pay-c", "report", _report("bb" * 32, "pay-c"), T0)
    with pytest.raises(EntryError, match="evidence stays"):
        log.file("bank-b", "report", _report("bb" * 32, "bank-a"), T0)
    with pytest.raises(EntryError, match="at most 2190 days"):
        log.file("bank-a", "report", _report("bb" * 32, days=2200), T0)
    with pytest.raises(EntryError, match="only the member that filed"):
        log.file("bank-b", "retraction", Retraction(report=report.id, reason="not ours"), T0)
    assert log.state.hits(T0 + timedelta(days=731)) == {}  # expired by default after two years
    log.file("bank-a", "retraction", Retraction(report=report.id, reason="victim, not a mule"), T0 + timedelta(days=2))
    assert log.state.hits(T0 + timedelta(days=3)) == {}
    with pytest.raises(EntryError, match="already withdrawn"):
        log.file("bank-a", "retraction", Retraction(report=report.id, reason="again"), T0 + timedelta(days=3))
    outsider = Signer.generate("bank-x")
    with pytest.raises(EntryError, match="not a member"):
        log.state.admit(sign_entry(outsider, "report", _report("cc" * 32, "bank-x")), log.state.size)
    genuine = sign_entry(KEYS["bank-b"], "report", _report("cc" * 32, "bank-b"))
    body = {**genuine.body, "evidence": {**genuine.body["evidence"], "held_by": "bank-a"}}
    forged = Entry(kind="report", id=genuine.id, member="bank-a", at=genuine.at, body=body, sig=genuine.sig)
    with pytest.raises(EntryError, match="signature"):
        log.state.admit(forged, log.state.size)  # bank-b cannot file in bank-a's name


def test_appeals_have_deadlines_and_escalate() -> None:
    log = Log()
    report = log.file("bank-a", "report", _report("aa" * 32), T0)
    appeal = log.file(
        "bank-b", "appeal_opened", AppealOpened(report=report.id, grounds="victim_not_mule"), T0 + timedelta(days=1)
    )
    hit = log.state.hits(T0 + timedelta(days=2))["aa" * 32]
    assert hit.under_appeal  # still a signal while the filer has time to answer
    with pytest.raises(EntryError, match="already open"):
        log.file("pay-c", "appeal_opened", AppealOpened(report=report.id, grounds="other"), T0 + timedelta(days=2))
    with pytest.raises(EntryError, match="admins may only after its deadline"):
        log.file(
            "bank-b",
            "appeal_decided",
            AppealDecided(appeal=appeal.id, outcome="overturned", reason="x"),
            T0 + timedelta(days=2),
        )
    past_deadline = T0 + timedelta(days=32)
    assert log.state.hits(past_deadline) == {}  # unanswered past the deadline: suspended
    described = log.state.describe(log.state.reports[report.id], past_deadline)
    assert described["status"] == "suspended"
    assert described["appeals"][0]["deadline"] == T0 + timedelta(days=31)
    log.file(
        "bank-a",
        "appeal_decided",
        AppealDecided(appeal=appeal.id, outcome="overturned", reason="victim"),
        past_deadline,
    )  # bank-a is the filer, and an admin
    assert log.state.status(log.state.reports[report.id], past_deadline) == "overturned"

    second = log.file("bank-b", "report", _report("bb" * 32, "bank-b"), T0)
    appeal2 = log.file("pay-c", "appeal_opened", AppealOpened(report=second.id, grounds="mistaken_identity"), T0)
    log.file(
        "bank-b",
        "appeal_decided",
        AppealDecided(appeal=appeal2.id, outcome="upheld", reason="confirmed"),
        T0 + timedelta(days=3),
    )
    assert log.state.status(log.state.reports[second.id], T0 + timedelta(days=4)) == "active"


def test_membership_changes_and_contributions() -> None:
    log = Log()
    with pytest.raises(EntryError, match="admin"):
        log.file("bank-b", "membership", Membership(action="add", member=_member("bank-d", ["reporter"])), T0)
    log.file("bank-a", "membership", Membership(action="add", member=_member("bank-d", ["reporter"])), T0)
    first = log.file("bank-a", "report", _report("aa" * 32), T0)
    log.file("bank-d", "report", _report("aa" * 32, "bank-d"), T0)  # corroborates bank-a's report
    solo = log.file("bank-b", "report", _report("bb" * 32, "bank-b"), T0)
    log.file("bank-d", "confirmation", Confirmation(report=solo.id), T0)
    with pytest.raises(EntryError, match="own report"):
        log.file("bank-a", "confirmation", Confirmation(report=first.id), T0)
    hit = log.state.hits(T0)["aa" * 32]
    assert hit.reporters == ("bank-a", "bank-d") and hit.severity == 4
    counts = log.state.contributions(T0)
    assert counts["bank-a"]["matched"] == counts["bank-d"]["matched"] == counts["bank-b"]["matched"] == 1
    assert counts["pay-c"]["filed"] == 0
    log.file("bank-a", "membership", Membership(action="remove", member=_member("bank-d", ["reporter"])), T0)
    with pytest.raises(EntryError, match="not a member"):
        log.file("bank-d", "report", _report("cc" * 32, "bank-d"), T0)


BLOCKING = """
name: bad
version: 1
features:
  - {name: payee_reported, aggregate: published, source: consortium.reported, entity: counterparty_id}
  - {name: payee_n_1h, entity: counterparty_id, aggregate: count, window: 1h}
rules:
  - {id: reported, when: 'features.payee_reported >= 1.0', action: block, score: 100, reason: reported}
  - {id: reported_and_busy, when: 'features.payee_reported >= 1.0 && features.payee_n_1h > 5', action: block,
     score: 100, reason: reported and busy}
thresholds: {block: 90, review: 60, challenge: 40}
"""


def test_consortium_hits_are_signals_never_the_only_ground_to_block(tmp_path: Path) -> None:
    with RiskGuard(make_settings(f"sqlite:///{tmp_path}/g.db"), background=False) as guard:
        problems = violations(guard.compile(BLOCKING))
        assert len(problems) == 2 and "reported" in problems[0]  # the block, and a score of 100 alone
        guard.publish(BLOCKING, actor="test")
        service = TokenService(guard.engine, bytes(32))
        gateway = Gateway(guard, guard.engine, TokenClient(service.public_key, lambda b: service.evaluate("m", b)))
        with pytest.raises(StrategyBreaksSignalRule):
            gateway.refresh(Log().state, T0)
        strategy = tmp_path / "bad.yaml"
        strategy.write_text(BLOCKING, encoding="utf-8")
        result = CliRunner().invoke(cli, ["consortium", "check-strategy", str(strategy)])
        assert result.exit_code == 1 and "blocks on consortium hits alone" in result.output


def test_cli_keys_genesis_and_a_node_process(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["consortium", "keygen", "bank-a", "--out", str(tmp_path / "a.key")])
    assert out.exit_code == 0, out.output
    vkey = out.output.strip()
    log_vkey = runner.invoke(cli, ["consortium", "keygen", "t.example/log", "--out", str(tmp_path / "log.key")])
    token_key = runner.invoke(cli, ["consortium", "token-seed", "--out", str(tmp_path / "token.seed")])
    assert (tmp_path / "token.seed").stat().st_mode & 0o777 == 0o600
    roster = {
        "origin": "t.example/log",
        "log_key": log_vkey.output.strip(),
        "token_key": token_key.output.strip(),
        "token_member": "bank-a",
        "witness_threshold": 1,
        "members": [
            {"id": "bank-a", "name": "Bank A", "key": vkey, "roles": ["admin", "reporter", "witness", "tokens", "log"]}
        ],
    }
    (tmp_path / "roster.yaml").write_text(json.dumps(roster), encoding="utf-8")
    made = runner.invoke(
        cli,
        [
            "consortium",
            "genesis",
            str(tmp_path / "roster.yaml"),
            "--key",
            str(tmp_path / "a.key"),
            "--out",
            str(tmp_path / "genesis.json"),
        ],
    )
    assert made.exit_code == 0, made.output
    again = runner.invoke(cli, ["consortium", "keygen", "bank-a", "--out", str(tmp_path / "a.key")])
    assert again.exit_code == 2 and "refusing to overwrite" in again.output
    config = tmp_path / "node.yaml"
    config.write_text(
        json.dumps(
            {
                "member": "bank-a",
                "key": "a.key",
                "genesis": "genesis.json",
                "roles": ["log", "witness", "tokens"],
                "database_url": f"sqlite:///{tmp_path}/a.db",
                "log_key": "log.key",
                "token_seed": "token.seed",
                "port": 0,
                "checkpoint_interval_s": 0.05,
            }
        ),
        encoding="utf-8",
    )
    # the node runs as its own process; `verify` then re-checks its whole copy of the log from disk
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from riskguard.cli.main import main; main()",
            "consortium",
            "node",
            "--config",
            str(config),
            "--port",
            "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stderr.readline() if process.stderr else ""
        assert "consortium node bank-a" in banner and "log size 1" in banner
    finally:
        process.terminate()
        process.wait(10)
    verified = runner.invoke(cli, ["consortium", "verify", "--config", str(config)])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["entries"] == 1
    broken = runner.invoke(cli, ["consortium", "node", "--config", str(tmp_path / "missing.yaml")])
    assert broken.exit_code == 2 and "missing.yaml" in broken.output
