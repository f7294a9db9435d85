"""Evidence packages: complete and verifiable, and any tampering (an altered, removed or added file, a
rewritten manifest) is caught; `riskguard cases verify` exits non-zero then; unmasked exports are reveals."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cases_helpers import PHONE, casework, victim_and_mules
from riskguard.app import RiskGuard
from riskguard.cases.evidence import SECTIONS, verify
from riskguard.cli.main import app
from riskguard.errors import Forbidden

from conftest import make_settings


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One case worked and exported, shared by the tests of this module (they only read and export)."""
    tmp_path = tmp_path_factory.mktemp("evidence")
    settings = make_settings(f"sqlite:///{tmp_path}/rg.db", reveal_working_hours="00:00-24:00")
    with RiskGuard(settings, background=False) as guard:
        service = casework(guard, tmp_path)
        victim_and_mules(guard)
        service.sync("test")
        group = next(a for a in service.alerts()["alerts"] if a["alerts"] == 3)
        case = service.open_case([group["id"]], actor="user:ann")
        service.add_note(case["id"], "the victim was told to move money to a 'safe account'", actor="user:ann")
        service.start_trace(case["id"], actor="user:ann")
        manifest = service.export_evidence(case["id"], tmp_path / "pkg.zip", actor="user:ann", role="analyst")
        yield guard, service, case, manifest, tmp_path


def _rezip(source: Path, target: Path, change: Any) -> None:
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    change(files)
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def test_package_is_complete_and_verifies(exported: Any) -> None:
    guard, service, case, manifest, tmp_path = exported
    package = tmp_path / "pkg.zip"
    result = verify(package, expected_digest=manifest["package_digest"])
    assert result == {
        "ok": True,
        "problems": [],
        "files": 2,
        "package_digest": manifest["package_digest"],
        "case_id": case["id"],
    }
    with zipfile.ZipFile(package) as archive:
        assert sorted(archive.namelist()) == ["evidence.json", "manifest.json", "report.html"]
        document = json.loads(archive.read("evidence.json"))
        report = archive.read("report.html").decode()
    assert set(SECTIONS) <= set(document)
    assert document["masked"] is False and PHONE in {e["value"] for e in document["entities"]}
    assert document["notes"][0]["text"].startswith("the victim was told")
    assert document["fund_flows"][0]["paths"] and document["ring_graph"]["elements"]["nodes"]
    assert any(d["reasons"] for d in document["decisions"])
    assert "<svg" in report and "safe account" in report and "<script" not in report
    audit = {e["action"]: e for e in reversed(guard.audit.recent(30))}  # the latest of each action
    exports = [e for e in guard.audit.recent(100) if e["action"] == "case.evidence_export"]
    assert manifest["package_digest"] in {e["details"]["package_digest"] for e in exports}
    assert audit["pii.reveal"]["details"]["purpose"] == "evidence"
    # a directory export verifies the same way
    service.export_evidence(case["id"], tmp_path / "dir", actor="user:ann", role="analyst", as_zip=False)
    assert verify(tmp_path / "dir")["ok"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda f: f.__setitem__("evidence.json", f["evidence.json"].replace(b"acc-v", b"acc-w")),
            "evidence.json: SHA-256",
        ),
        (lambda f: f.pop("report.html"), "report.html is listed but missing"),
        (lambda f: f.__setitem__("extra.txt", b"x"), "extra.txt is in the package but not in the manifest"),
        (lambda f: f.pop("manifest.json"), "manifest.json is missing"),
    ],
)
def test_tampering_is_detected(exported: Any, change: Any, problem: str) -> None:
    _, _, _, _, tmp_path = exported
    _rezip(tmp_path / "pkg.zip", tmp_path / "bad.zip", change)
    result = verify(tmp_path / "bad.zip")
    assert not result["ok"] and any(problem in p for p in result["problems"]), result


def test_rewritten_manifest_is_caught_by_the_digest(exported: Any) -> None:
    _, _, _, manifest, tmp_path = exported

    def forge(files: dict[str, bytes]) -> None:
        import hashlib

        files["evidence.json"] = files["evidence.json"].replace(b"acc-v", b"acc-w")
        forged = json.loads(files["manifest.json"])
        entry = next(f for f in forged["files"] if f["path"] == "evidence.json")
        entry["sha256"] = hashlib.sha256(files["evidence.json"]).hexdigest()
        files["manifest.json"] = json.dumps(forged).encode()

    _rezip(tmp_path / "pkg.zip", tmp_path / "forged.zip", forge)
    assert "package digest does not match" in " ".join(verify(tmp_path / "forged.zip")["problems"])
    # and the receiver who holds the platform's digest catches a manifest rewritten throughout
    assert not verify(tmp_path / "forged.zip", expected_digest=manifest["package_digest"])["ok"]


def test_cli_verify_exit_codes(exported: Any) -> None:
    _, _, _, manifest, tmp_path = exported
    runner = CliRunner()
    ok = runner.invoke(app, ["cases", "verify", str(tmp_path / "pkg.zip"), "--digest", manifest["package_digest"]])
    assert ok.exit_code == 0 and "OK" in ok.output
    _rezip(tmp_path / "pkg.zip", tmp_path / "bad.zip", lambda f: f.pop("report.html"))
    bad = runner.invoke(app, ["cases", "verify", str(tmp_path / "bad.zip")])
    assert bad.exit_code == 1 and "report.html is listed but missing" in bad.output
    missing = runner.invoke(app, ["cases", "verify", str(tmp_path / "nothing.zip")])
    assert missing.exit_code == 2


def test_masked_export_and_refused_reveal(exported: Any) -> None:
    _, service, case, _, tmp_path = exported
    with pytest.raises(Forbidden):
        service.export_evidence(case["id"], tmp_path / "aud.zip", actor="user:aud", role="auditor")
    assert not (tmp_path / "aud.zip").exists()
    service.export_evidence(case["id"], tmp_path / "masked.zip", actor="user:aud", role="auditor", revealed=False)
    with zipfile.ZipFile(tmp_path / "masked.zip") as archive:
        text = b"".join(archive.read(n) for n in archive.namelist())
    assert PHONE.encode() not in text and b"acc-v" not in text and verify(tmp_path / "masked.zip")["ok"]


def test_cli_show_list_and_export(exported: Any) -> None:
    _, _, case, _, tmp_path = exported
    runner = CliRunner(env={"RISKGUARD_DATABASE_URL": f"sqlite:///{tmp_path}/rg.db", "RISKGUARD_LOG_LEVEL": "ERROR"})
    listed = runner.invoke(app, ["cases", "list", "--cases", "--status", "all"])
    assert listed.exit_code == 0 and f"case {case['id']:>5}" in listed.output
    shown = runner.invoke(app, ["cases", "show", str(case["id"])])
    assert shown.exit_code == 0 and "ring graph:" in shown.output and PHONE not in shown.output
    out = tmp_path / "cli.zip"
    exported_cli = runner.invoke(app, ["cases", "export", str(case["id"]), "--out", str(out), "--masked"])
    assert exported_cli.exit_code == 0 and "package digest" in exported_cli.output
    assert verify(out)["ok"]
    again = runner.invoke(app, ["cases", "export", str(case["id"]), "--out", str(out)])
    assert again.exit_code == 1 and "exists" in again.output
