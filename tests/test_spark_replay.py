"""The replay on Spark (history split into partitions, each decided by the in-process replay's code through
``mapInArrow``) gives the in-process replay's decisions and report, for one strategy and for a comparison
with ``--vs``; and ``riskguard replay --engine spark`` writes the same report files.

One ``local[2]`` session for the module, stopped at the end; skipped without PySpark or Java 17 unless
RISKGUARD_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from riskguard.cli.main import app as cli_app
from riskguard.config import Settings
from riskguard.decision.warnings import WarningCatalogue
from riskguard.replay.history import load_history
from riskguard.replay.service import compile_for_replay, run
from riskguard.sim.config import TYPOLOGIES, WorldConfig
from riskguard.sim.world import simulate
from riskguard.sim.writer import write_world
from spark_helpers import module_spark

STARTER = Path(__file__).parent.parent / "src/riskguard/strategies/starter.yaml"


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    yield from module_spark("riskguard-tests-replay", partitions=3)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spark_replay_world")
    write_world(simulate(WorldConfig(accounts=300, days=8, seed=4, intensity=dict.fromkeys(TYPOLOGIES, 3.0))), out)
    return out


def without_timings(document: dict[str, Any]) -> dict[str, Any]:
    """The report without the seconds each column took (which differ between any two runs)."""
    columns = [{k: v for k, v in column.items() if k != "timings"} for column in document["columns"]]
    assert all("timings" in column for column in document["columns"])
    return {**document, "columns": columns}


def strategies() -> list[tuple[Any, None]]:
    keys = WarningCatalogue.from_file(Settings.from_env(environ={}).warnings_file).keys()
    source = STARTER.read_text(encoding="utf-8")
    stricter = source.replace("name: ", "name: stricter-", 1)
    assert "5000" in stricter
    stricter = stricter.replace("5000", "2000")
    return [(compile_for_replay(text, keys, with_model=False), None) for text in (source, stricter)]


def test_spark_replay_equals_in_process_decisions_and_report(spark: Any, world: Path, tmp_path: Path) -> None:
    from riskguard.spark.replay import SparkDecider

    history = load_history(world)
    pairs = strategies()
    keys = WarningCatalogue.from_file(Settings.from_env(environ={}).warnings_file).keys()
    local_doc, local = run(history, pairs, out=tmp_path / "local")
    decider = SparkDecider(spark, list(keys), partitions=3)
    spark_doc, on_spark = run(history, pairs, out=tmp_path / "spark", decider=decider)
    assert len(history.events) > 2_000
    for a, b in zip(local, on_spark, strict=True):
        assert np.array_equal(a.decision, b.decision)
        assert np.array_equal(a.score, b.score)
        assert np.array_equal(a.results, b.results)
        assert a.rule_ids == b.rule_ids
    assert (local[0].decision > 0).sum() > 10  # the strategy flags something: the comparison is not empty
    assert not np.array_equal(local[0].results, local[1].results)
    assert without_timings(spark_doc) == without_timings(local_doc)
    assert "spark_s" in spark_doc["columns"][0]["timings"]
    assert "changed" in spark_doc
    local_rows = pl.read_parquet(tmp_path / "local" / "decisions.parquet")
    assert local_rows.equals(pl.read_parquet(tmp_path / "spark" / "decisions.parquet"))


def test_replay_cli_engine_spark_writes_the_same_report(spark: Any, world: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["replay", "--events", str(world), "--strategy", str(STARTER)]
    local = runner.invoke(cli_app, [*base, "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    on_spark = runner.invoke(cli_app, [*base, "--out", str(tmp_path / "spark"), "--engine", "spark"])
    assert on_spark.exit_code == 0, on_spark.output
    assert without_timings(json.loads((tmp_path / "spark" / "report.json").read_text())) == without_timings(
        json.loads((tmp_path / "local" / "report.json").read_text())
    )
    bad = runner.invoke(cli_app, [*base, "--out", str(tmp_path / "x"), "--engine", "hadoop"])
    assert bad.exit_code == 2 and "--engine hadoop: give local or spark" in bad.output
    assert "Traceback" not in bad.output
