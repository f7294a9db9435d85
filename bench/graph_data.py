"""Turns the YelpChi review graph (``../shared/data/yelpchi``, read in place, never copied into the repo)
into the three Parquet files ``riskguard graph evaluate`` reads, in a directory you choose.

Nodes are users and products; a user is labelled spam (1) when **any** of their reviews is filtered
(label -1 in the source; ``rule="majority"``: when more than half are); products carry label 0 and are
left out of the splits. Features: each node's
number of reviews (``f_reviews``) and whether it is a product (``f_product``). Splits: users are split at
random (seed per fold), 40 % train, 10 % validation, 50 % test, stratified by label, five folds.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl

YELPCHI = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "yelpchi" / "metadata.gz"


def read_reviews(path: Path = YELPCHI) -> pl.DataFrame:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [line.split() for line in handle if line.strip()]
    return pl.DataFrame(
        {"user": [r[0] for r in rows], "product": [r[1] for r in rows], "label": [int(r[3]) for r in rows]}
    )


def spam_users(reviews: pl.DataFrame, rule: str) -> pl.DataFrame:
    """``user``, ``label`` (1: spammer by ``rule``: ``any`` or ``majority`` of the reviews filtered), ``n``."""
    filtered = (pl.col("label") == -1).cast(pl.Int64)
    spam = filtered.sum() > 0 if rule == "any" else filtered.sum() * 2 > pl.len()
    return reviews.group_by("user").agg(spam.cast(pl.Int8).alias("label"), pl.len().alias("n")).sort("user")


def split_users(labels: np.ndarray, fold: int) -> np.ndarray:
    """``train``/``val``/``test`` per user: 40/10/50 %, stratified by label, seeded by the fold."""
    rng = np.random.default_rng(fold)
    split = np.empty(len(labels), dtype=object)
    for value in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == value))
        cut1, cut2 = int(0.4 * len(members)), int(0.5 * len(members))
        split[members[:cut1]] = "train"
        split[members[cut1:cut2]] = "val"
        split[members[cut2:]] = "test"
    return split


def write_evaluation_files(out: Path, folds: int = 5, rule: str = "any") -> dict[str, Path]:
    reviews = read_reviews()
    users = spam_users(reviews, rule)
    products = reviews.group_by("product").agg(pl.len().alias("n"))
    nodes = pl.concat(
        [
            users.select(
                ("u" + pl.col("user")).alias("node_id"),
                pl.col("n").cast(pl.Float64).alias("f_reviews"),
                pl.lit(0.0).alias("f_product"),
                "label",
            ),
            products.select(
                ("p" + pl.col("product")).alias("node_id"),
                pl.col("n").cast(pl.Float64).alias("f_reviews"),
                pl.lit(1.0).alias("f_product"),
                pl.lit(0, dtype=pl.Int8).alias("label"),
            ),
        ]
    )
    edges = reviews.select(("u" + pl.col("user")).alias("src"), ("p" + pl.col("product")).alias("dst")).unique()
    parts = []
    ids = users["user"].to_numpy()
    labels = users["label"].to_numpy()
    for fold in range(folds):
        split = split_users(labels, fold)
        parts.append(pl.DataFrame({"node_id": ["u" + i for i in ids], "split": split.tolist(), "fold": fold}))
    out.mkdir(parents=True, exist_ok=True)
    paths = {"nodes": out / "nodes.parquet", "edges": out / "edges.parquet", "splits": out / "splits.parquet"}
    nodes.write_parquet(paths["nodes"])
    edges.write_parquet(paths["edges"])
    pl.concat(parts).write_parquet(paths["splits"])
    return paths
