"""``riskguard graph evaluate``: measures the supervised model and the unsupervised scores on any labelled
graph given as three Parquet files.

- nodes: ``node_id``, feature columns ``f_*`` (numbers) and ``label`` (0/1);
- edges: ``src``, ``dst`` (node ids; undirected unless ``directed``);
- splits: ``node_id``, ``split`` (``train``/``val``/``test``) and optionally ``fold`` (each fold is evaluated
  and the figures reported as mean ± standard deviation).

Scores, each measured by ROC-AUC and average precision on the test nodes:

- ``supervised``: LightGBM on the features and neighbour aggregates (``supervised.py``);
- ``dense_block``: Fraudar peel score of each node on the adjacency seen as a bipartite graph (no labels);
- ``association``: personalised PageRank from the training fraud nodes (labels of training nodes only);
- ``association_per_degree``: the same divided by the node's degree (PageRank mass grows with degree
  whatever a node's closeness to the seeds; divided, it ranks closeness);
- ``degree``: the number of neighbours (the simplest baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from sklearn.metrics import average_precision_score, roc_auc_score

from riskguard.errors import ValidationFailed
from riskguard.graph.association import personalised_pagerank
from riskguard.graph.dense import fraudar
from riskguard.graph.supervised import ModelConfig, neighbour_features, train_and_score

SCORES = ("supervised", "dense_block", "association", "association_per_degree", "degree")


def _fail(where: str, message: str) -> None:
    raise ValidationFailed([{"loc": [where], "type": "value_error", "msg": message}])


def _read(path: Path, where: str) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for missing or malformed files
        _fail(where, f"cannot read {path} as Parquet: {exc}")
    raise AssertionError


@dataclass
class LabelledGraph:
    ids: pl.Series
    x: np.ndarray
    y: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    splits: pl.DataFrame  # index, split, fold


def load_graph(nodes_path: Path, edges_path: Path, splits_path: Path) -> LabelledGraph:
    nodes = _read(nodes_path, "nodes")
    edges = _read(edges_path, "edges")
    splits = _read(splits_path, "splits")
    for column in ("node_id", "label"):
        if column not in nodes.columns:
            _fail("nodes", f"{nodes_path} needs a {column!r} column")
    features = [c for c in nodes.columns if c.startswith("f_")]
    if nodes["node_id"].n_unique() != nodes.height:
        _fail("nodes", "node_id values must be unique")
    if not set(nodes["label"].drop_nulls().unique().to_list()) <= {0, 1}:
        _fail("nodes", "label must be 0 or 1")
    for column in ("src", "dst"):
        if column not in edges.columns:
            _fail("edges", f"{edges_path} needs a {column!r} column")
    for column in ("node_id", "split"):
        if column not in splits.columns:
            _fail("splits", f"{splits_path} needs a {column!r} column")
    bad = set(splits["split"].unique().to_list()) - {"train", "val", "test"}
    if bad:
        _fail("splits", f"split must be train, val or test; found {sorted(map(str, bad))}")
    for column in features:
        if not nodes.schema[column].is_numeric():
            _fail("nodes", f"feature column {column!r} must be numeric")
    index = nodes.select(pl.col("node_id"), pl.int_range(pl.len()).alias("i"))
    key = nodes.schema["node_id"]
    edges = edges.select(pl.col("src").cast(key), pl.col("dst").cast(key))
    joined = edges.join(index.rename({"node_id": "src", "i": "s"}), on="src").join(
        index.rename({"node_id": "dst", "i": "d"}), on="dst"
    )
    if joined.height < edges.height:
        _fail("edges", f"{edges.height - joined.height} edges name nodes that are not in {nodes_path}")
    if "fold" not in splits.columns:
        splits = splits.with_columns(pl.lit(0).alias("fold"))
    splits = splits.select(pl.col("node_id").cast(key), "split", "fold").join(index, on="node_id", how="inner")
    x = nodes.select(features).to_numpy().astype(np.float64) if features else np.zeros((nodes.height, 0))
    return LabelledGraph(
        ids=nodes["node_id"],
        x=x,
        y=nodes["label"].fill_null(0).to_numpy().astype(np.float64),
        src=joined["s"].to_numpy(),
        dst=joined["d"].to_numpy(),
        splits=splits.select("i", "split", "fold"),
    )


def _unsupervised(graph: LabelledGraph, train: np.ndarray, directed: bool) -> dict[str, np.ndarray]:
    n = len(graph.y)
    peel = fraudar(graph.src, graph.dst, n, n, blocks=5).peel_score
    if not directed:
        peel = np.maximum(peel, fraudar(graph.dst, graph.src, n, n, blocks=5).peel_score)
    w = np.ones(len(graph.src))
    adjacency = coo_matrix(
        (np.concatenate([w, w]), (np.concatenate([graph.src, graph.dst]), np.concatenate([graph.dst, graph.src]))),
        shape=(n, n),
    ).tocsr()
    seeds = (train & (graph.y == 1)).astype(np.float64)
    association = personalised_pagerank(adjacency, seeds)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    per_degree = np.divide(association, degree, out=np.zeros(n), where=degree > 0)
    return {"dense_block": peel, "association": association, "association_per_degree": per_degree, "degree": degree}


def evaluate(
    graph: LabelledGraph, *, directed: bool = False, config: ModelConfig | None = None
) -> dict[str, dict[str, list[float]]]:
    """``{score: {"auc": [...per fold], "ap": [...]}}``."""
    results: dict[str, dict[str, list[float]]] = {s: {"auc": [], "ap": []} for s in SCORES}
    for fold in sorted(graph.splits["fold"].unique().to_list()):
        part = graph.splits.filter(pl.col("fold") == fold)
        masks = {}
        for name in ("train", "val", "test"):
            mask = np.zeros(len(graph.y), dtype=bool)
            mask[part.filter(pl.col("split") == name)["i"].to_numpy()] = True
            masks[name] = mask
        test = masks["test"]
        if not masks["train"].any() or not test.any():
            _fail("splits", f"fold {fold} needs train and test nodes")
        if len(np.unique(graph.y[test])) < 2:
            _fail("splits", f"fold {fold}: the test nodes need both labels for ROC-AUC")
        train_labels = np.where(masks["train"], graph.y, np.nan)
        features = neighbour_features(graph.x, graph.src, graph.dst, train_labels, directed=directed)
        scores = {"supervised": train_and_score(features, graph.y, masks["train"], masks["val"], config)}
        scores.update(_unsupervised(graph, masks["train"], directed))
        for name, score in scores.items():
            results[name]["auc"].append(float(roc_auc_score(graph.y[test], score[test])))
            results[name]["ap"].append(float(average_precision_score(graph.y[test], score[test])))
    return results


def render(results: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = []
    for name in SCORES:
        auc, ap = np.asarray(results[name]["auc"]), np.asarray(results[name]["ap"])
        folds = len(auc)
        lines.append(
            f"{name} ROC-AUC {auc.mean():.4f} ± {auc.std():.4f}  AP {ap.mean():.4f} ± {ap.std():.4f}"
            f"  ({folds} fold{'s' if folds != 1 else ''})"
        )
    return lines
