"""The graph refresh on Spark equals the in-process refresh: ring components (as partitions of the node
set, and numbered alike), the propagation score (within 1e-9), and the whole refresh's published features.

Spark runs in ``local[2]`` (one session for the module, stopped at the end); the tests skip where PySpark
or Java 17 is missing unless RISKGUARD_REQUIRE_SERVICES=1 (CI), where they fail instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from riskguard.config import Settings
from riskguard.errors import ConfigError
from riskguard.graph.association import association_risk
from riskguard.graph.build import EntityGraph
from riskguard.graph.encode import encode
from riskguard.graph.refresh import RefreshConfig, _fraud_seeds, analyse
from riskguard.graph.rings import RingConfig
from riskguard.graph.view import binding_of
from riskguard.sim.config import TYPOLOGIES, WorldConfig
from riskguard.sim.world import simulate
from riskguard.sim.writer import read_events, write_world
from spark_helpers import module_spark

TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    yield from module_spark("riskguard-tests-graph", partitions=2)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small world with gangs of every typology (rings, takeover crews, card testers), and labels."""
    out = tmp_path_factory.mktemp("spark_world")
    config = WorldConfig(accounts=2_000, days=6, seed=31, intensity=dict.fromkeys(TYPOLOGIES, 60.0))
    write_world(simulate(config), out)
    return out


@pytest.fixture(scope="module")
def graph(world: Path) -> EntityGraph:
    return EntityGraph.from_events(read_events(world))


@pytest.fixture(scope="module")
def labels(world: Path) -> pl.DataFrame:
    frame = pl.read_parquet(world / "labels.parquet")
    return frame.select("entity_kind", "entity_value", "label", "labelled_at")


@pytest.fixture(scope="module")
def on_spark(spark: Any, graph: EntityGraph, labels: pl.DataFrame) -> dict[str, Any]:
    """The whole refresh with its two graph-wide steps on Spark (run once for the module)."""
    from riskguard.spark.graph import spark_offload

    stats: dict[str, Any] = {}
    captured: dict[str, Any] = {}
    offload = spark_offload(spark, graph, RefreshConfig(), stats)

    def capture(view: Any, seeds: list[tuple[str, int]]) -> tuple[np.ndarray, pl.DataFrame]:
        captured["components"], captured["risk"] = offload(view, seeds)
        captured["seeds"] = seeds
        return captured["components"], captured["risk"]

    captured["result"] = analyse(graph, labels, RefreshConfig(), offload=capture)
    captured["stats"] = stats
    return captured


def test_ring_components_equal_scipy_as_partitions_and_numbers(graph: EntityGraph, on_spark: dict[str, Any]) -> None:
    view = binding_of(encode(graph), graph.config).restrict(RingConfig().kinds)
    keep = (view.degree[view.col] >= RingConfig().min_shared) & ~view.rotating
    assert keep.sum() > 100, "the world must give the components something to join"
    n = view.n_accounts + view.n_idents
    matrix = coo_matrix((np.ones(int(keep.sum())), (view.row[keep], view.n_accounts + view.col[keep])), shape=(n, n))
    _, expected = connected_components(matrix, directed=False)
    got = on_spark["components"]

    def partition(labels: np.ndarray) -> set[frozenset[int]]:
        order = np.argsort(labels, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(labels[order])) + 1)
        return {frozenset(g.tolist()) for g in groups}

    assert partition(got) == partition(expected)
    assert np.array_equal(got, expected)  # numbered alike, so ring ids downstream are the same
    sizes = np.bincount(expected)
    assert sizes.max() >= 8 and (sizes >= 3).sum() >= 10  # real components, some large enough to be split
    assert on_spark["stats"]["components_rounds"] >= 2


def test_propagation_score_equals_in_process(graph: EntityGraph, on_spark: dict[str, Any]) -> None:
    seeds = on_spark["seeds"]
    assert len(seeds) >= 5
    expected = association_risk(graph, seeds)
    got = on_spark["risk"]
    assert got["account"].to_list() == expected["account"].to_list()
    difference = np.abs(got["risk"].to_numpy() - expected["risk"].to_numpy())
    assert difference.max() <= TOLERANCE
    risky = expected["risk"].to_numpy()
    assert (risky > 0).sum() > 50 and ((risky > 0) & (risky < 1)).sum() > 20  # spread, not just the seeds
    assert on_spark["stats"]["propagation_iterations"] >= 10


def test_refresh_on_spark_publishes_the_in_process_features(
    graph: EntityGraph, labels: pl.DataFrame, on_spark: dict[str, Any]
) -> None:
    local = analyse(graph, labels, RefreshConfig())
    spark_result = on_spark["result"]
    assert local.rings.rings.equals(spark_result.rings.rings)
    columns = list(local.rings.members.columns)  # rows in no particular order (polars groups them)
    assert local.rings.members.sort(columns).equals(spark_result.rings.members.sort(columns))
    assert local.rings.reported().height >= 3
    assert set(local.features) == set(spark_result.features)
    for source, values in local.features.items():
        other = spark_result.features[source]
        assert set(values) == set(other), source
        assert all(abs(values[k] - other[k]) <= TOLERANCE for k in values), source
    assert "offload" in spark_result.timings and "offload" not in local.timings


def test_seeds_of_the_world_are_confirmed_fraud_accounts(labels: pl.DataFrame, on_spark: dict[str, Any]) -> None:
    assert sorted(on_spark["seeds"]) == sorted(_fraud_seeds(labels))


def test_components_of_a_long_chain_and_separate_pieces(spark: Any) -> None:
    """A 300-node path (many rounds of plain propagation), a star, a cycle and self-loops."""
    from riskguard.spark.components import components

    edges = [(i, i + 1) for i in range(300)] + [(1000, 1000 + k) for k in range(1, 20)]
    edges += [(2000 + k, 2000 + (k + 1) % 7) for k in range(7)] + [(3000, 3000), (4000, 4001), (4001, 4000)]
    rng = np.random.default_rng(3)
    shuffled = [edges[i] for i in rng.permutation(len(edges))]
    frame = spark.createDataFrame(shuffled, "src long, dst long")
    labels, rounds = components(frame)
    got = {row["node"]: row["component"] for row in labels.collect()}
    nodes = sorted({n for e in edges for n in e})
    index = {node: i for i, node in enumerate(nodes)}
    src = [index[a] for a, _ in edges]
    dst = [index[b] for _, b in edges]
    _, expected = connected_components(coo_matrix((np.ones(len(edges)), (src, dst)), shape=(len(nodes),) * 2))
    for node in nodes:  # every component labelled by its smallest node
        members = [m for m in nodes if expected[index[m]] == expected[index[node]]]
        assert got[node] == min(members)
    assert rounds < 40  # pointer jumping: far fewer rounds than the path is long


def test_spark_engine_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="RISKGUARD_BATCH_ENGINE"):
        Settings.from_env(environ={"RISKGUARD_BATCH_ENGINE": "hadoop"})
    with pytest.raises(ConfigError, match="RISKGUARD_SPARK_MASTER"):
        Settings.from_env(environ={"RISKGUARD_SPARK_MASTER": "http://cluster"})
    with pytest.raises(ConfigError, match="RISKGUARD_SPARK_DRIVER_MEMORY"):
        Settings.from_env(environ={"RISKGUARD_SPARK_DRIVER_MEMORY": "lots"})
    settings = Settings.from_env(
        environ={"RISKGUARD_BATCH_ENGINE": "spark", "RISKGUARD_SPARK_MASTER": "spark://10.0.0.5:7077"}
    )
    assert settings.batch_engine == "spark" and settings.spark_master == "spark://10.0.0.5:7077"


def test_graph_refresh_cli_refuses_an_unknown_engine(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from riskguard.cli.main import app

    result = CliRunner().invoke(app, ["graph", "refresh", "--engine", "hadoop", "--out", str(tmp_path / "g")])
    assert result.exit_code == 1
    assert "--engine hadoop: give local or spark" in result.output and "Traceback" not in result.output
