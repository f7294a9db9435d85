"""`riskguard demo --investigate`: the demo decides into the configured database (what `make run` serves),
rebuilds the graph there, traces the victims' reports and fills the alert inbox, so the console has work."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from riskguard.app import RiskGuard
from riskguard.cases.service import CaseService
from riskguard.sim.demo import DemoOptions, run_demo

from conftest import make_settings


def test_demo_investigate_leaves_alerts_in_the_configured_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = f"sqlite:///{tmp_path}/served.db"
    monkeypatch.setenv("RISKGUARD_DATABASE_URL", database)
    monkeypatch.setenv("RISKGUARD_GRAPH_DIR", str(tmp_path / "graph"))
    out = io.StringIO()
    options = DemoOptions(accounts=300, days=1, seed=4, devices=False, investigate=True)
    summary = run_demo(options, Console(file=out, width=120))
    made = summary["investigations"]
    assert made["new_alerts"]["review"] > 0 and made["alert_groups"] > 0
    assert "alert inbox holds" in out.getvalue()
    assert (tmp_path / "graph" / "graph.json").exists()
    with RiskGuard(make_settings(database), background=False, warm_features=False) as guard:
        service = CaseService(guard, graph_dir=tmp_path / "graph")
        page = service.alerts(limit=500)
        assert page["total"] == made["alert_groups"]
        sources = {s for item in page["alerts"] for s in item["sources"]}
        assert "review" in sources
        assert service.sync("test")["sources"]["review"]["new"] == 0  # the demo already synced
        top = page["alerts"][0]
        case = service.open_case([top["id"]], actor="user:admin")
        view = service.case(case["id"])
        assert view["decisions"] and view["ring_graph"]["source"] == "graph+case"
        assert service.close(case["id"], "confirmed_fraud", actor="user:admin")["labels"] > 0


def test_plain_demo_beside_make_runs_installation_fills_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run` then `riskguard demo` (the issue's new-user path): the demo finds ./var/riskguard.db and
    investigates there; a named database, --db or --url keeps the throwaway default."""
    from riskguard.cli.main import _served_demo_installation

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RISKGUARD_DATABASE_URL", raising=False)
    assert not _served_demo_installation(None, None)  # no installation here: nothing to fill
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "riskguard.db").write_bytes(b"")
    assert _served_demo_installation(None, None)
    assert not _served_demo_installation(tmp_path / "other.db", None)
    assert not _served_demo_installation(None, "http://127.0.0.1:8000")
    monkeypatch.setenv("RISKGUARD_DATABASE_URL", "postgresql://127.0.0.1/test")
    assert not _served_demo_installation(None, None)
