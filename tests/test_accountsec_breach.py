"""The breached-password corpus and its range API (accountsec/breach.py, http.py, cli.py), on SQLite and
PostgreSQL: import in both range formats, idempotent re-import, lookups, padding, and bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from riskguard.accountsec.breach import render_range
from riskguard.app import RiskGuard
from riskguard.cli.main import app

from conftest import make_settings

PASSWORDS = {"123456": 37_359_195, "password": 9_545_824, "qwerty": 3_946_737, "iloveyou": 1_645_337}


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest().upper()


def full_file(path: Path, passwords: dict[str, int]) -> Path:
    lines = [f"{sha1(p)}:{n}" for p, n in passwords.items()]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="ascii")
    return path


def test_import_lookup_and_reimport(guard: RiskGuard, tmp_path: Path) -> None:
    corpus = guard.accountsec.corpus
    result = corpus.import_path(full_file(tmp_path / "pwned.txt", PASSWORDS))
    assert (result.lines, result.hashes, result.bad) == (4, 4, 0)
    digest = sha1("password")
    assert (digest[5:], PASSWORDS["password"]) in corpus.range(digest[:5])
    assert corpus.range("00000") == []
    assert corpus.range_text(digest[:5]) == render_range(corpus.range(digest[:5])) and corpus.range_text("00000") == ""
    # the same corpus again, one count grown: still one row per hash, the newer count
    grown = dict(PASSWORDS, password=PASSWORDS["password"] + 1)
    corpus.import_path(full_file(tmp_path / "pwned.txt", grown))
    assert corpus.size() == 4
    assert dict(corpus.range(digest[:5]))[digest[5:]] == PASSWORDS["password"] + 1

    # per-prefix files (what the public downloader writes), and lines that are not hashes
    folder = tmp_path / "ranges"
    folder.mkdir()
    digest = sha1("123456")
    (folder / f"{digest[:5]}.txt").write_text(f"{digest[5:]}:42\n{'F' * 35}:7\nnot a line\n\n", encoding="ascii")
    (folder / "ABCDE").write_text(f"{'0' * 35}:1\n{'1' * 35}\n", encoding="ascii")  # a missing count is 1
    result = guard.accountsec.corpus.import_path(folder)
    assert (result.files, result.hashes, result.bad) == (2, 4, 1) and corpus.size() == 4 + 3
    assert result.bad_examples == [f"{digest[:5]}.txt:3"]
    assert guard.accountsec.corpus.range(digest[:5]) == [(digest[5:], 42), ("F" * 35, 7)]
    assert guard.accountsec.corpus.range("ABCDE") == [("0" * 35, 1), ("1" * 35, 1)]
    assert corpus.range_text("ABCDE") == "0" * 35 + ":1\r\n" + "1" * 35 + ":1"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_large_import_is_batched(guard: RiskGuard) -> None:
    rows = ((f"{i % 7:05X}", f"{i:035X}", i) for i in range(12_000))
    result = guard.accountsec.corpus.import_rows(rows, batch=2_500)
    assert result.hashes == 12_000 and guard.accountsec.corpus.size() == 12_000
    assert len(guard.accountsec.corpus.range("00003")) == len(range(3, 12_000, 7))


def test_padding_hides_the_answer_size() -> None:
    rows = [("A" * 35, 5), ("0" * 35, 2)]
    padded = render_range(rows, pad=True, pad_to=300).split("\r\n")
    assert len(padded) == 300 and padded == sorted(padded)
    assert {"A" * 35 + ":5", "0" * 35 + ":2"} <= set(padded)
    assert sum(1 for line in padded if line.endswith(":0")) == 298
    assert len({line.split(":")[0] for line in padded}) == 300
    big = [(f"{i:035X}", 1) for i in range(351)]
    assert len(render_range(big, pad=True, pad_to=300).split("\r\n")) == 400  # next multiple of 100
    assert render_range(rows) == "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:5\r\n00000000000000000000000000000000000:2"


def test_range_api(client: TestClient, guard: RiskGuard, tmp_path: Path) -> None:
    guard.accountsec.corpus.import_path(full_file(tmp_path / "pwned.txt", PASSWORDS))
    digest = sha1("qwerty")
    answer = client.get(f"/v1/breach/range/{digest[:5].lower()}")  # case-insensitive
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    lines = dict(line.split(":") for line in answer.text.split("\r\n"))
    assert lines[digest[5:]] == str(PASSWORDS["qwerty"])
    padded = client.get(f"/v1/breach/range/{digest[:5]}", headers={"Add-Padding": "true"})
    assert len(padded.text.split("\r\n")) == guard.settings.breach_padding_lines
    assert f"{digest[5:]}:{PASSWORDS['qwerty']}" in padded.text
    assert client.get("/v1/breach/range/ABCDE").text == ""
    for bad in ("ABCD", "ABCDEF", "GHIJK", "12 45"):
        refused = client.get(f"/v1/breach/range/{bad}")
        assert refused.status_code == 422, bad
        assert refused.json()["detail"][0]["loc"] == ["path", "prefix"]
    assert client.get("/v1/breach/range/ABCDE", headers={"Authorization": "Bearer nope"}).status_code == 401


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_import_and_range(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKGUARD_DATABASE_URL", db_url)
    monkeypatch.setenv("RISKGUARD_LOG_LEVEL", "WARNING")
    runner = CliRunner()
    path = full_file(tmp_path / "pwned.txt", PASSWORDS)
    for _ in range(2):  # idempotent
        done = runner.invoke(app, ["breach", "import", str(path)])
        assert done.exit_code == 0, done.output
        report = json.loads(done.stdout)
        assert report["hashes"] == 4 and report["corpus_size"] == 4
    digest = sha1("iloveyou")
    shown = runner.invoke(app, ["breach", "range", digest[:5]])
    assert shown.exit_code == 0 and f"{digest[5:]}:{PASSWORDS['iloveyou']}" in shown.stdout
    wrong = runner.invoke(app, ["breach", "range", "XYZ"])
    assert wrong.exit_code == 2 and "prefix" in wrong.output and "Traceback" not in wrong.output
    with RiskGuard(make_settings(db_url), background=False, warm_features=False) as guard:
        assert len(guard.audit.recent(action="breach.import")) == 2
