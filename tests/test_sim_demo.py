"""The demo: a tiny world streamed through riskguard in process and over HTTP, and its summary."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import uvicorn
from rich.console import Console
from typer.testing import CliRunner

from riskguard.api.http import create_asgi
from riskguard.app import RiskGuard
from riskguard.cli.main import app
from riskguard.errors import ConfigError
from riskguard.sim.config import WorldConfig
from riskguard.sim.demo import DemoOptions, label_items, run_demo
from riskguard.sim.stream import Decided, HttpTarget
from riskguard.sim.summary import summarise
from riskguard.sim.world import simulate
from riskguard.sim.writer import write_world

from conftest import make_settings

TINY = {"accounts": 300, "days": 2, "seed": 4}


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    write_world(simulate(WorldConfig(**TINY)), out)
    return out


def _check_summary(summary: dict, world: Path) -> None:
    info = json.loads((world / "world.json").read_text())
    assert summary["events"] == info["events"] > 0
    assert summary["decided"] == summary["events"] and summary["errors"] == 0
    assert sum(summary["decisions"].values()) == summary["events"]
    assert summary["fraud_events"] == info["fraud_events"]
    assert summary["legit_events"] + summary["fraud_events"] == summary["events"]
    assert 0.0 <= summary["friction"] <= 1.0
    assert 0.0 <= summary["loss_rate"] <= 1.0
    assert Decimal(summary["loss_value_allowed"]) <= Decimal(summary["total_value"])
    assert set(summary["typologies"]) == set(info["fraud_events_by_typology"])
    caught_any = False
    for typology, row in summary["typologies"].items():
        assert row["events"] == info["fraud_events_by_typology"][typology]
        assert 0 <= row["caught_events"] <= row["events"]
        assert sum(row["decisions"].values()) == row["events"]
        assert Decimal(row["caught_value"]) + Decimal(row["missed_value"]) == Decimal(row["fraud_value"])
        caught_any |= row["caught_events"] > 0
    assert caught_any  # the starter strategy stops some fraud
    assert summary["latency_ms"]["p50"] > 0 and summary["latency_ms"]["p99"] >= summary["latency_ms"]["p50"]
    labels = pl.read_parquet(world / "labels.parquet")
    assert summary["labels_recorded"] == labels.height


def test_demo_in_process_on_a_tiny_world_prints_and_returns_the_summary(tiny_world: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    database = tmp_path / "demo.db"
    summary = run_demo(DemoOptions(world=tiny_world, database=database), Console(file=out, width=140))
    _check_summary(summary, tiny_world)
    printed = out.getvalue()
    for phrase in ("decisions:", "loss rate:", "friction:", "latency:", "telecom_fraud", "card_testing"):
        assert phrase in printed
    with (
        RiskGuard(make_settings(f"sqlite:///{database}"), background=False) as guard,
        guard.engine.connect() as connection,
    ):
        stored = connection.exec_driver_sql("SELECT count(*) FROM decisions").scalar()
        labelled = connection.exec_driver_sql("SELECT count(*) FROM labels WHERE source = 'simulator'").scalar()
    assert stored == summary["events"]  # every decision was durably recorded
    assert labelled == summary["labels_recorded"]


def test_demo_generates_its_own_world_by_default_options(tmp_path: Path) -> None:
    summary = run_demo(
        DemoOptions(accounts=200, days=1, seed=8, keep_world=tmp_path / "w"),
        Console(file=io.StringIO(), width=140),
    )
    assert (tmp_path / "w" / "world.json").exists()
    _check_summary(summary, tmp_path / "w")
    assert summary["world"]["accounts"] >= 200 and summary["world"]["days"] == 1


def test_demo_decides_with_the_strategy_it_is_given(tiny_world: Path, tmp_path: Path) -> None:
    strategy = tmp_path / "logins.yaml"
    strategy.write_text(
        "name: block_logins\nversion: 1\nrules:\n"
        "  - {id: every_login, when: 'event.type == \"login\"', action: block, score: 100, reason: test}\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    summary = run_demo(DemoOptions(world=tiny_world, strategy=strategy), Console(file=out, width=140))
    logins = pl.read_parquet(tiny_world / "events").filter(pl.col("type") == "login").height
    assert summary["decisions"]["block"] == logins > 0
    assert summary["decisions"]["allow"] == summary["events"] - logins
    assert "strategy block_logins v1" in out.getvalue()
    with pytest.raises(ConfigError, match="--strategy"):
        both = DemoOptions(world=tiny_world, strategy=strategy, url="http://127.0.0.1:1")
        run_demo(both, Console(file=io.StringIO()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, RiskGuard]]:
    guard = RiskGuard(make_settings(f"sqlite:///{tmp_path}/http.db"), background=False)
    token = guard.ensure_admin_key()
    assert token
    port = _free_port()
    config = uvicorn.Config(create_asgi(guard), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", token, guard
    uv.should_exit = True
    thread.join(10)
    guard.close()


def test_demo_over_http_streams_decisions_and_posts_labels(tiny_world: Path, server: tuple) -> None:
    url, token, guard = server
    out = io.StringIO()
    summary = run_demo(DemoOptions(world=tiny_world, url=url, key=token, connections=4), Console(file=out, width=140))
    _check_summary(summary, tiny_world)
    assert summary["round_trip_ms"]["p50"] > 0
    with guard.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM decisions").scalar() == summary["events"]


def test_http_target_reports_refusals_and_a_missing_service(server: tuple) -> None:
    url, _token, _guard = server
    refused: list[Decided] = []
    HttpTarget(url, key="rg_nope_nope").stream(
        [{"event_id": "x-1", "type": "login", "occurred_at": "2026-01-01T00:00:00Z", "account_id": "a"}],
        refused.append,
    )
    assert len(refused) == 1 and refused[0].decision == "error" and "HTTP 401" in (refused[0].error or "")
    with pytest.raises(ConfigError, match="no riskguard service"):
        HttpTarget(f"http://127.0.0.1:{_free_port()}").check()
    with pytest.raises(ConfigError, match="http://HOST:PORT"):
        HttpTarget("https://example.invalid")


def test_summary_arithmetic_on_a_hand_made_stream() -> None:
    events = pl.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4", "e5"],
            "type": ["transfer", "transfer", "payment", "login", "loan_application"],
            "amount": ["1000.00", "50.50", "200.00", None, "80000.00"],
        }
    )
    labels = pl.DataFrame(
        {
            "label_kind": ["event", "event", "event"],
            "event_id": ["e1", "e2", "e5"],
            "typology": ["telecom_fraud", "telecom_fraud", "loan_intermediary"],
            "role": ["victim_payment", "layer1_forward", "packaged_application"],
            "loss": [True, False, False],
        }
    )

    def d(event_id: str, decision: str) -> Decided:
        return Decided(event_id, decision, 0, 0.5, 1.0, ("r1",) if decision != "allow" else ())

    decided = {
        e.event_id: e
        for e in (d("e1", "allow"), d("e2", "block"), d("e3", "review"), d("e4", "allow"), d("e5", "review"))
    }
    summary = summarise(events, labels, decided)
    assert summary["total_value"] == "1250.50"  # payments, transfers, withdrawals only
    assert summary["loss_value_allowed"] == "1000.00"
    assert summary["loss_rate"] == pytest.approx(1000 / 1250.5)
    assert summary["legit_events"] == 2 and summary["legit_challenged"] == 1 and summary["friction"] == 0.5
    telecom = summary["typologies"]["telecom_fraud"]
    assert telecom["fraud_value"] == "1000.00" and telecom["missed_value"] == "1000.00"
    assert telecom["laundered_value"] == "50.50" and telecom["laundered_caught_value"] == "50.50"
    assert telecom["caught_events"] == 1
    loans = summary["typologies"]["loan_intermediary"]
    assert loans["fraud_value"] == "80000.00" and loans["caught_value"] == "80000.00"


def test_label_items_match_the_api_schema(tiny_world: Path) -> None:
    import msgspec

    from riskguard.api.schemas import LabelBatch

    items = label_items(pl.read_parquet(tiny_world / "labels.parquet"))
    batch = msgspec.convert({"labels": items[:1000]}, LabelBatch)
    assert all((label.event_id is None) != (label.entity is None) for label in batch.labels)


def test_cli_simulate_writes_a_world_and_refuses_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "simulate",
            "--accounts",
            "200",
            "--days",
            "1",
            "--seed",
            "2",
            "--out",
            str(tmp_path / "w"),
            "--intensity",
            "card_testing=0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "events" in result.output and (tmp_path / "w" / "events" / "part-00000.parquet").exists()
    info = json.loads((tmp_path / "w" / "world.json").read_text())
    assert "card_testing" not in info["fraud_events_by_typology"]
    bad = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x"), "--intensity", "phishing=1"])
    assert bad.exit_code == 2 and "unknown typology" in bad.output
    future = runner.invoke(app, ["simulate", "--out", str(tmp_path / "y"), "--start", "2099-01-01", "--days", "2"])
    assert future.exit_code == 2 and "future" in future.output
