"""Replay end to end: a model trained on days 1–20 of a simulated world, replayed with the starter
strategy on days 21–30, lowers the loss rate at equal friction; the report (JSON and self-contained HTML)
shows it, with rules, budgets, typologies, changed decisions and drift."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from riskguard.cli.main import app as cli_app
from riskguard.sim.config import WorldConfig
from riskguard.sim.world import simulate
from riskguard.sim.writer import write_world

STARTER = Path(__file__).parent.parent / "src/riskguard/strategies/starter.yaml"
CANDIDATE_RULE = """
  - id: model_high_risk
    when: 'model.available && model.score >= 50.0'
    action: review
    score: 60
    reason: The fraud model scores this event as likely fraud
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("thirtydays")
    write_world(simulate(WorldConfig(accounts=500, days=30, seed=4)), out)
    return out


def test_a_model_lowers_the_loss_rate_at_equal_friction(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RISKGUARD_DATABASE_URL", f"sqlite:///{tmp_path}/rg.db")
    events = pl.concat([pl.read_parquet(p) for p in sorted((world / "events").glob("*.parquet"))])
    events.filter(pl.col("occurred_at") < "2026-01-21").write_parquet(tmp_path / "days1-20.parquet")
    source = STARTER.read_text(encoding="utf-8")
    (tmp_path / "features.yaml").write_text(source.split("\nlists:")[0] + "\ntimezone: Asia/Shanghai\n")
    candidate = source.replace("version: 5\n", "version: 6\nmodel: {name: fraud}\n", 1) + CANDIDATE_RULE
    (tmp_path / "candidate.yaml").write_text(candidate)
    runner = CliRunner()
    trained = runner.invoke(
        cli_app,
        [
            "train",
            "--events", str(tmp_path / "days1-20.parquet"),
            "--labels", str(world / "labels.parquet"),
            "--features", str(tmp_path / "features.yaml"),
            "--out", str(tmp_path / "models" / "fraud"),
            "--rounds", "120",
        ],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "models/fraud/v1/card.md").exists()
    out = tmp_path / "report"
    replayed = runner.invoke(
        cli_app,
        [
            "replay",
            "--events", str(world),
            "--strategy", str(STARTER),
            "--vs", str(tmp_path / "candidate.yaml"),
            "--since", "2026-01-21",
            "--out", str(out),
        ],
    )  # fmt: skip
    assert replayed.exit_code == 0, replayed.output
    report = json.loads((out / "report.json").read_text())
    base, candidate_column = report["columns"]
    assert candidate_column["label"] == "starter v6 + fraud@1"
    assert report["history"]["from"] >= "2026-01-20T16:00"  # days 21-30, Beijing time
    equal = report["equal_friction"]
    assert equal["friction"] == base["friction"]
    assert equal["candidate"]["loss_rate"] < equal["baseline"]["loss_rate"]
    # the budget may also take fraud ranked above the next legitimate event
    assert equal["baseline"]["loss_rate"] <= base["loss_rate"]
    rule = next(r for r in candidate_column["rules"] if r["rule"] == "model_high_risk")
    assert rule["hits"] > 0 and rule["precision"] > 0.5
    assert (
        report["changed"]["count"] > 0
        and report["changed"]["events"][0]["before"] != report["changed"]["events"][0]["after"]
    )
    assert [b["friction_budget"] for b in base["budgets"]] == [0.001, 0.005, 0.01]
    assert set(base["typologies"]) >= {"telecom_fraud", "account_takeover"}
    assert "model.score" in report["drift"]["psi"] and len(report["drift"]["days"]) >= 9
    page = (out / "report.html").read_text()
    assert "<svg" in page and "At equal friction" in page and "<script" not in page and "http" not in page
    decisions = pl.read_parquet(out / "decisions.parquet")
    assert decisions.columns[:3] == ["event_id", "decision", "score"] and "model_score_vs" in decisions.columns
    listed = runner.invoke(cli_app, ["models", "list"])
    assert "fraud@1" in listed.output


def test_replay_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli_app,
        ["replay", "--events", str(tmp_path / "none.parquet"), "--strategy", str(STARTER), "--out", str(tmp_path)],
    )
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output
