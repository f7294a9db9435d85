"""Graph mining: the entity graph, rings on a simulated world, association, dense blocks, motifs, the
supervised model's label hygiene, and `riskguard graph evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from riskguard.cli.main import app
from riskguard.errors import ValidationFailed
from riskguard.graph.association import association_risk
from riskguard.graph.build import EntityGraph, GraphConfig, load
from riskguard.graph.dense import fraudar
from riskguard.graph.gangs import score_rings
from riskguard.graph.motifs import motifs
from riskguard.graph.rings import find_rings
from riskguard.graph.supervised import neighbour_features
from riskguard.sim.config import TYPOLOGIES, WorldConfig
from riskguard.sim.world import simulate
from riskguard.sim.writer import read_events, write_world


def event(i: int, account: str, kind: str = "login", **fields: object) -> dict[str, object]:
    minute = 10 + i % 50
    body: dict[str, object] = {
        "event_id": f"e{i}",
        "type": kind,
        "occurred_at": f"2026-01-0{1 + i // 50 % 9}T10:{minute:02d}:00+08:00",
        "account_id": account,
        "attributes": json.dumps(fields.pop("attributes", {})),
    }
    body.update(fields)
    return body


def frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, infer_schema_length=None)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small world with several gangs of every typology (fixed seed)."""
    out = tmp_path_factory.mktemp("world")
    config = WorldConfig(accounts=12_000, days=10, seed=11, intensity=dict.fromkeys(TYPOLOGIES, 25.0))
    write_world(simulate(config), out)
    return out


def test_links_flows_and_failed_logins() -> None:
    rows = [
        event(0, "a", device_id="d1", ip="10.0.0.1", attributes={"success": True}),
        event(1, "a", device_id="d1", ip="10.0.0.1", attributes={"success": True}),
        event(2, "b", device_id="d1", attributes={"success": False}),
        event(3, "a", "transfer", amount="12.34", currency="CNY", counterparty_id="b", card_id="c1"),
        event(4, "c", "complaint", phone="+861", attributes={"contact_phone": "+862", "refund_account": "z"}),
    ]
    graph = EntityGraph.from_events(frame(rows))
    links = {(r["account"], r["kind"], r["value"], r["relation"]): r["events"] for r in graph.links.to_dicts()}
    assert links[("a", "device", "d1", "uses")] == 2
    assert links[("a", "ip24", "10.0.0.0/24", "uses")] == 2
    assert links[("b", "device", "d1", "failed_login")] == 1  # a failed login proves no use
    assert links[("c", "phone", "+862", "contact")] == 1
    flows = graph.flows.to_dicts()
    transfer = next(f for f in flows if f["relation"] == "transfer")
    assert (transfer["src"], transfer["dst"], str(transfer["amount"])) == ("a", "b", "12.34000000")
    assert any(f["relation"] == "refund_to" and f["dst"] == "z" for f in flows)


def test_incremental_update_equals_one_batch_and_window_prunes(tmp_path: Path) -> None:
    rows = [event(i, f"acc{i % 7}", device_id=f"d{i % 3}", ip=f"10.0.{i % 4}.1") for i in range(200)]
    whole = EntityGraph.from_events(frame(rows))
    parts = EntityGraph()
    for start in range(0, 200, 37):
        parts.update(frame(rows[start : start + 37]))
    key = ["account", "kind", "value", "relation"]
    assert whole.links.sort(key).equals(parts.links.sort(key))
    short = EntityGraph.from_events(frame(rows), GraphConfig(window_days=1))
    assert short.links["last_ms"].min() >= short.latest_ms - 86_400_000
    whole.save(tmp_path / "g")
    again = load(tmp_path / "g")
    assert again.links.sort(key).equals(whole.links.sort(key)) and again.latest_ms == whole.latest_ms


def test_bad_configuration_and_events_are_clear_errors() -> None:
    with pytest.raises(ValidationFailed, match="max_degree"):
        GraphConfig(max_degree={"device": 1})
    with pytest.raises(ValidationFailed, match="occurred_at"):
        EntityGraph.from_events(pl.DataFrame({"event_id": ["x"], "type": ["login"], "account_id": ["a"]}))


def test_rings_of_every_typology_are_recovered(world: Path) -> None:
    graph = EntityGraph.from_events(read_events(world))
    rings = find_rings(graph)
    score = score_rings(rings, pl.read_parquet(world / "truth.parquet"))
    for row in score["per_typology"]:
        assert row["recall"] >= 0.75 and row["precision"] >= 0.9, row
    assert score["precision"] >= 0.9 and score["recall"] >= 0.9, score
    assert rings.compromised.height > 0  # the takeover gangs' victims are set apart, not ring members


def test_credential_stuffing_victims_do_not_form_a_ring() -> None:
    rows = []
    for i in range(40):  # one tool fails on 40 accounts and gets into 4
        rows.append(event(i, f"v{i}", device_id="tool", ip="9.9.9.9", attributes={"success": False}))
        if i % 10 == 0:
            rows.append(event(100 + i, f"v{i}", device_id="tool", ip="9.9.9.9", attributes={"success": True}))
            rows.append(event(200 + i, f"v{i}", "profile_change", device_id="tool", phone="+86-attacker"))
    rings = find_rings(EntityGraph.from_events(frame(rows)))
    assert rings.reported().height == 0
    assert rings.compromised.height == 4


def test_association_spreads_from_seeds_through_rare_identifiers() -> None:
    rows = [
        event(0, "seed", device_id="shared"),
        event(1, "near", device_id="shared"),
        event(2, "far", device_id="other"),
        event(3, "near", ip="10.1.1.1"),
        event(4, "far", ip="10.1.1.1"),
        event(5, "stranger", device_id="own"),
    ]
    graph = EntityGraph.from_events(frame(rows))
    risk = dict(association_risk(graph, [("seed", graph.latest_ms)]).iter_rows())
    assert risk["seed"] == 1.0
    assert risk["near"] > risk["far"] > risk["stranger"] == 0.0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_fraudar_finds_a_planted_block_despite_camouflage(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_cols = 300, 200
    rows = rng.integers(0, n_rows, 900)
    cols = rng.integers(0, n_cols, 900)
    block_r, block_c = np.arange(20), np.arange(170, 200)
    br, bc = np.meshgrid(block_r, block_c)
    camouflage_r = np.repeat(block_r, 3)
    camouflage_c = rng.integers(0, 20, len(camouflage_r))  # fraudsters also touch popular columns
    peeling = fraudar(
        np.concatenate([rows, br.ravel(), camouflage_r]),
        np.concatenate([cols, bc.ravel(), camouflage_c]),
        n_rows,
        n_cols,
        blocks=1,
        eps=0.01,
    )
    found = set(peeling.blocks[0].rows.tolist())
    assert len(found & set(block_r.tolist())) >= 15 and len(found - set(block_r.tolist())) <= 10
    assert np.median(peeling.peel_score[block_r]) > np.percentile(peeling.peel_score, 90)


def test_motifs_fan_pass_through_scatter_gather_and_cycles() -> None:
    rows, i = [], 0

    def pay(src: str, dst: str, minute: int, amount: str = "100.00") -> None:
        nonlocal i
        rows.append(
            {
                "event_id": f"t{i}",
                "type": "transfer",
                "occurred_at": f"2026-01-01T{10 + minute // 60:02d}:{minute % 60:02d}:00Z",
                "account_id": src,
                "counterparty_id": dst,
                "amount": amount,
                "attributes": "{}",
            }
        )
        i += 1

    for k, victim in enumerate(["v1", "v2", "v3", "v4"]):
        pay(victim, "mule", k)  # fan-in 4
    for k, payee in enumerate(["p1", "p2", "p3"]):
        pay("mule", payee, 10 + k, "120.00")  # 360 of 400 out within minutes
        pay(payee, "sink", 20 + k)  # scatter (mule) → gather (sink)
    pay("x", "y", 0)
    pay("y", "z", 5)
    pay("z", "x", 9)  # a time-ordered cycle
    pay("z", "x", 1)  # not part of an ordered cycle (before the first hop)
    table = {r["account"]: r for r in motifs(EntityGraph.from_events(frame(rows))).to_dicts()}
    assert table["mule"]["fan_in"] == 4 and table["mule"]["fan_out"] == 3
    assert table["mule"]["pass_through_ratio"] == pytest.approx(0.9)
    assert table["mule"]["scatter_gather"] == 1 and table["sink"]["scatter_gather"] == 1
    assert table["mule"]["gather_scatter"] == 1
    assert table["x"]["cycles"] >= 1 and table["y"]["cycles"] >= 1 and table["v1"]["cycles"] == 0


def test_neighbour_label_aggregates_never_see_the_nodes_own_label() -> None:
    src = np.array([0, 1, 2])
    dst = np.array([1, 2, 0])  # a triangle
    labels = np.array([1.0, np.nan, 0.0])  # node 1 is not a training node
    out = neighbour_features(np.zeros((3, 1)), src, dst, labels)
    fraud1, share1, fraud2 = out[:, -4], out[:, -3], out[:, -2]
    assert fraud1.tolist() == [0.0, 1.0, 1.0]  # node 0's neighbours: 1 (unknown) and 2 (legit)
    assert share1[0] == 0.0
    assert fraud2[0] == 0.0  # walks 0→x→0 do not bring node 0's own label back


def _labelled_graph(tmp_path: Path, directed_note: bool = False) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    n = 600
    label = (rng.random(n) < 0.2).astype(int)
    f1 = rng.normal(label * 1.0, 1.0)
    src, dst = [], []
    for node in range(n):  # fraud nodes link mostly to fraud nodes
        for _ in range(4):
            pool = np.flatnonzero(label == label[node]) if rng.random() < 0.8 else np.arange(n)
            src.append(node)
            dst.append(int(rng.choice(pool)))
    paths = {k: tmp_path / f"{k}.parquet" for k in ("nodes", "edges", "splits")}
    pl.DataFrame({"node_id": np.arange(n), "f_1": f1, "label": label}).write_parquet(paths["nodes"])
    pl.DataFrame({"src": src, "dst": dst}).write_parquet(paths["edges"])
    splits = []
    for fold in range(2):
        order = np.random.default_rng(fold).permutation(n)
        split = np.array(["train"] * n, dtype=object)
        split[order[: n // 2]] = "test"
        split[order[n // 2 : n // 2 + 60]] = "val"
        splits.append(pl.DataFrame({"node_id": np.arange(n), "split": split.tolist(), "fold": fold}))
    pl.concat(splits).write_parquet(paths["splits"])
    return paths


def test_graph_evaluate_cli_prints_supervised_and_unsupervised_scores(tmp_path: Path) -> None:
    paths = _labelled_graph(tmp_path)
    args = ["graph", "evaluate", "--nodes", str(paths["nodes"]), "--edges", str(paths["edges"])]
    result = CliRunner().invoke(app, [*args, "--splits", str(paths["splits"])])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("supervised ROC-AUC")
    assert {line.split()[0] for line in lines} == {"supervised", "dense_block", "association", "degree"}
    auc = float(lines[0].split()[2])
    assert auc > 0.8 and "(2 folds)" in lines[0]
    directed = CliRunner().invoke(app, [*args, "--splits", str(paths["splits"]), "--directed"])
    assert directed.exit_code == 0 and directed.output.startswith("supervised ROC-AUC")


def test_graph_evaluate_rejects_bad_input_with_a_message(tmp_path: Path) -> None:
    paths = _labelled_graph(tmp_path)
    pl.DataFrame({"node_id": [1], "split": ["holdout"]}).write_parquet(tmp_path / "bad.parquet")
    result = CliRunner().invoke(
        app,
        ["graph", "evaluate", "--nodes", str(paths["nodes"]), "--edges", str(paths["edges"]),
         "--splits", str(tmp_path / "bad.parquet")],
    )
    assert result.exit_code == 2 and "split must be train, val or test" in result.output
