"""Supervised scoring: LightGBM on node features plus neighbour aggregates (1 and 2 hops).

For each node: its own features; the mean and the maximum of its neighbours' features (1 hop) and of
those means and maxima one hop further (2 hops); and the neighbours' *known labels* — the share and count
of fraud among neighbours whose label is known, 1 and 2 hops away, counting only training nodes and never
the node itself (2-hop walks that come back to it are subtracted), so no label leaks from the nodes being
scored. On a directed graph the aggregates are taken over in- and out-neighbours separately.

Cost: a few sparse matrix products over the edges plus LightGBM's training (histogram boosting, both
cores). Published benchmark studies found gradient-boosted trees on such aggregates competitive with
fraud GNNs at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, diags


@dataclass(frozen=True)
class ModelConfig:
    params: dict[str, Any] = field(
        default_factory=lambda: {
            "objective": "binary",
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_child_samples": 20,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "verbose": -1,
            "seed": 7,
            "num_threads": 2,
        }
    )
    rounds: int = 400
    early_stopping: int = 40


def _row_max(matrix: csr_matrix, values: np.ndarray) -> np.ndarray:
    """Per row of ``matrix``, the column-wise maximum of ``values`` over its neighbours (0 with none)."""
    out = np.zeros((matrix.shape[0], values.shape[1]))
    counts = np.diff(matrix.indptr)
    rows = np.flatnonzero(counts)
    if len(rows):
        gathered = values[matrix.indices]
        out[rows] = np.maximum.reduceat(gathered, matrix.indptr[rows], axis=0)
    return out


def _mean(matrix: csr_matrix, values: np.ndarray) -> np.ndarray:
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    inverse = np.divide(1.0, degree, out=np.zeros_like(degree, dtype=np.float64), where=degree > 0)
    return diags(inverse) @ (matrix @ values)


def _one_direction(matrix: csr_matrix, x: np.ndarray, known: np.ndarray, fraud: np.ndarray) -> list[np.ndarray]:
    mean1, max1 = _mean(matrix, x), _row_max(matrix, x)
    mean2, max2 = _mean(matrix, mean1), _row_max(matrix, max1)
    count1, fraud1 = matrix @ known, matrix @ fraud
    back = np.asarray(matrix.multiply(matrix.T).sum(axis=1)).ravel()  # 2-hop walks back to the node
    count2 = matrix @ count1 - back * known
    fraud2 = matrix @ fraud1 - back * fraud
    share1 = np.divide(fraud1, count1, out=np.full_like(fraud1, np.nan), where=count1 > 0)
    share2 = np.divide(fraud2, count2, out=np.full_like(fraud2, np.nan), where=count2 > 0)
    labels = np.column_stack([fraud1, share1, fraud2, share2])
    return [mean1, max1, mean2, max2, labels]


def neighbour_features(
    x: np.ndarray, src: np.ndarray, dst: np.ndarray, train_labels: np.ndarray, *, directed: bool = False
) -> np.ndarray:
    """``x`` plus its neighbour aggregates. ``train_labels`` is 1/0 on training nodes, NaN elsewhere."""
    n = x.shape[0]
    ones = np.ones(len(src))
    out_edges = csr_matrix((ones, (src, dst)), shape=(n, n))
    out_edges.data[:] = 1.0  # duplicate edges count once
    known = (~np.isnan(train_labels)).astype(np.float64)
    fraud = np.nan_to_num(train_labels, nan=0.0)
    if directed:
        parts = _one_direction(out_edges, x, known, fraud) + _one_direction(out_edges.T.tocsr(), x, known, fraud)
    else:
        both = (out_edges + out_edges.T).tocsr()
        both.data[:] = 1.0
        both.setdiag(0)
        both.eliminate_zeros()
        parts = _one_direction(both, x, known, fraud)
    degree = np.asarray((out_edges + out_edges.T).sum(axis=1)).ravel()[:, None]
    return np.column_stack([x, degree, *parts])


def train_and_score(
    features: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    valid: np.ndarray,
    config: ModelConfig | None = None,
) -> np.ndarray:
    """Fits on ``train`` (early-stopped on ``valid``) and returns a fraud probability for every node."""
    import lightgbm

    config = config or ModelConfig()
    train_set = lightgbm.Dataset(features[train], labels[train])
    callbacks = []
    valid_sets = []
    if valid.any():
        valid_sets = [lightgbm.Dataset(features[valid], labels[valid], reference=train_set)]
        callbacks = [lightgbm.early_stopping(config.early_stopping, verbose=False)]
    booster = lightgbm.train(
        config.params, train_set, num_boost_round=config.rounds, valid_sets=valid_sets, callbacks=callbacks
    )
    return booster.predict(features, num_iteration=booster.best_iteration or None)
