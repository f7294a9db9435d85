"""Retrospectives: for any event id, from a simulated world and from the live database over HTTP."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from riskguard.api.http import create_asgi
from riskguard.app import RiskGuard
from riskguard.cli.main import app as cli_app
from riskguard.config import Settings
from riskguard.errors import NotFound
from riskguard.masking import mask
from riskguard.replay.history import load_history
from riskguard.replay.retro import from_history, readable
from riskguard.sim.config import WorldConfig
from riskguard.sim.world import simulate
from riskguard.sim.writer import envelope, read_events, write_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("retroworld")
    write_world(simulate(WorldConfig(accounts=300, days=4, seed=8)), out)
    return out


def test_every_kind_of_event_gets_a_retrospective(world: Path) -> None:
    history = load_history(world)
    events = read_events(world)
    labels = pl.read_parquet(world / "labels.parquet")
    victim = labels.filter(pl.col("role") == "victim_payment").get_column("event_id")
    picks = [events.get_column("event_id")[0], events.get_column("event_id")[-1]]
    picks += [events.filter(pl.col("type") == t).get_column("event_id")[0] for t in sorted(set(events["type"]))]
    picks += victim.head(1).to_list()
    for event_id in picks:
        document = from_history(history, event_id, days=2)
        assert document["event_id"] == event_id
        assert sum(e["target"] for e in document["timeline"]) == 1
        assert document["masked"] and all("*" in v or v == "****" for v in document["event"]["identifiers"].values())
        assert readable(document).startswith(f"Retrospective of {event_id}")
    if len(victim):
        document = from_history(history, victim[0], days=3)
        assert any(label["event_id"] == victim[0] and label["label"] == "fraud" for label in document["labels"])
        assert all(
            label["known_after_event_hours"] >= 0 for label in document["labels"] if label["event_id"] == victim[0]
        )
    with pytest.raises(NotFound):
        from_history(history, "no-such-event")


def test_retro_over_http_masks_unless_admin_and_audits(world: Path, tmp_path: Path) -> None:
    guard = RiskGuard(Settings.from_env(environ={}, database_url=f"sqlite:///{tmp_path}/r.db"), background=False)
    try:
        rows = read_events(world).head(400).to_dicts()
        for row in rows:
            guard.decide(envelope(row))
        admin = guard.ensure_admin_key()
        _, investigator = guard.api_keys.create(["label"], "investigator", actor="test")
        target = rows[250]
        with TestClient(create_asgi(guard)) as client:
            seen = client.get(f"/v1/retro/{target['event_id']}", headers={"Authorization": f"Bearer {investigator}"})
            assert seen.status_code == 200, seen.text
            document = seen.json()
            assert document["event"]["identifiers"]["account_id"] == mask(target["account_id"])
            entry = next(e for e in document["timeline"] if e["target"])
            assert entry["recorded"]["decision"] in ("allow", "challenge", "review", "block")
            assert entry["replayed"]["decision"] == entry["recorded"]["decision"]
            refused = client.get(
                f"/v1/retro/{target['event_id']}?unmask=true", headers={"Authorization": f"Bearer {investigator}"}
            )
            assert refused.status_code == 403
            shown = client.get(
                f"/v1/retro/{target['event_id']}?unmask=true", headers={"Authorization": f"Bearer {admin}"}
            )
            assert shown.json()["event"]["identifiers"]["account_id"] == target["account_id"]
            text = client.get(
                f"/v1/retro/{target['event_id']}?format=text", headers={"Authorization": f"Bearer {admin}"}
            )
            assert text.text.startswith("Retrospective of")
            missing = client.get("/v1/retro/nope", headers={"Authorization": f"Bearer {admin}"})
            assert missing.status_code == 404
        assert any(entry["action"] == "retro.unmasked_view" for entry in guard.audit.recent(50))
    finally:
        guard.close()


def test_retro_cli_on_a_world(world: Path) -> None:
    event_id = read_events(world).get_column("event_id")[100]
    result = CliRunner().invoke(cli_app, ["retro", event_id, "--events", str(world), "--days", "1"])
    assert result.exit_code == 0, result.output
    assert f"Retrospective of {event_id}" in result.output and "timeline" in result.output
