"""A LightGBM model as arrays, evaluated with numpy: the same function scores one live event and a whole
replayed history, so the two give the same score to the last bit.

Why not LightGBM's own ``predict`` online: one call costs about 90 µs of fixed overhead per row (and
several ms with its default threads); the target is 100 µs per event for 300 trees. Compilers (lleaves,
treelite) would bring LLVM or a C toolchain into the service for what numpy does here in a handful of
vectorised steps — written by hand because no library evaluates LightGBM trees with numpy.

The method is QuickScorer's (Lucchese et al., SIGIR 2015): every internal node of every tree is tested
at once (``x[feature] <= threshold``, with LightGBM's missing-value rules), and each *false* test removes
the leaves of that node's left subtree from a 64-bit mask of its tree's leaves (leaves numbered left to
right). The exit leaf of a tree is the leftmost leaf no false test removed: the lowest set bit of the AND
of its false nodes' masks. The score is the sum of the trees' exit-leaf values, added in tree order.

Limits: numerical splits only (riskguard's inputs are numbers), at most 64 leaves per tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
_MISSING = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold
CHUNK = 512


def _count(node: dict[str, Any]) -> int:
    if "leaf_value" in node:
        return 1
    return _count(node["left_child"]) + _count(node["right_child"])


def _walk(node: dict[str, Any], leaves: list[float], nodes: list[tuple[dict[str, Any], int, int]]) -> None:
    """Leaves left to right, and each internal node with the span of its left subtree's leaves."""
    if "leaf_value" in node:
        leaves.append(float(node["leaf_value"]))
        return
    if node.get("decision_type", "<=") != "<=":
        raise ValueError("categorical splits are not supported: give numeric inputs")
    nodes.append((node, len(leaves), _count(node["left_child"])))
    _walk(node["left_child"], leaves, nodes)
    _walk(node["right_child"], leaves, nodes)


class TreeEnsemble:
    """The trees of a LightGBM binary model as flat arrays."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.feature = arrays["feature"].astype(np.int64)
        self.threshold = arrays["threshold"].astype(np.float64)
        self.default_left = arrays["default_left"].astype(bool)
        self.missing = arrays["missing"].astype(np.int8)
        self.mask = arrays["mask"].astype(np.uint64)
        self.tree_start = arrays["tree_start"].astype(np.int64)  # first node of each tree with nodes
        self.node_trees = arrays["node_trees"].astype(np.int64)  # the trees that have internal nodes
        self.leaf_value = arrays["leaf_value"].astype(np.float64)  # all leaves, tree by tree
        self.leaf_start = arrays["leaf_start"].astype(np.int64)  # first leaf of each tree
        self.n_trees = len(self.leaf_start)
        self.n_features = int(arrays["n_features"][0])
        self._zero_missing = bool((self.missing == MISSING_ZERO).any())

    # ------------------------------------------------------------------ building
    @classmethod
    def from_dump(cls, dump: dict[str, Any]) -> TreeEnsemble:
        """From ``Booster.dump_model()``."""
        feature: list[int] = []
        threshold: list[float] = []
        default_left: list[bool] = []
        missing: list[int] = []
        mask: list[int] = []
        tree_start: list[int] = []
        node_trees: list[int] = []
        leaf_value: list[float] = []
        leaf_start: list[int] = []
        for index, tree in enumerate(dump["tree_info"]):
            leaf_start.append(len(leaf_value))
            root = tree["tree_structure"]
            if _count(root) > 64:
                raise ValueError("trees with more than 64 leaves are not supported (num_leaves <= 64)")
            leaves: list[float] = []
            nodes: list[tuple[dict[str, Any], int, int]] = []  # (node, first leaf of left, leaves on left)
            _walk(root, leaves, nodes)
            if nodes:
                tree_start.append(len(feature))
                node_trees.append(index)
            for node, first, width in nodes:
                feature.append(int(node["split_feature"]))
                threshold.append(float(node["threshold"]))
                default_left.append(bool(node["default_left"]))
                missing.append(_MISSING[node.get("missing_type", "None")])
                left = ((1 << width) - 1) << first
                mask.append(0xFFFFFFFFFFFFFFFF ^ left)
            leaf_value.extend(leaves)
        arrays = {
            "feature": np.asarray(feature, dtype=np.int64),
            "threshold": np.asarray(threshold, dtype=np.float64),
            "default_left": np.asarray(default_left, dtype=bool),
            "missing": np.asarray(missing, dtype=np.int8),
            "mask": np.asarray(mask, dtype=np.uint64),
            "tree_start": np.asarray(tree_start, dtype=np.int64),
            "node_trees": np.asarray(node_trees, dtype=np.int64),
            "leaf_value": np.asarray(leaf_value, dtype=np.float64),
            "leaf_start": np.asarray(leaf_start, dtype=np.int64),
            "n_features": np.asarray([dump.get("max_feature_idx", 0) + 1], dtype=np.int64),
        }
        return cls(arrays)

    def save(self, path: Path) -> None:
        np.savez(
            path,
            feature=self.feature,
            threshold=self.threshold,
            default_left=self.default_left,
            missing=self.missing,
            mask=self.mask,
            tree_start=self.tree_start,
            node_trees=self.node_trees,
            leaf_value=self.leaf_value,
            leaf_start=self.leaf_start,
            n_features=np.asarray([self.n_features], dtype=np.int64),
        )

    @classmethod
    def load(cls, path: Path) -> TreeEnsemble:
        with np.load(path) as data:
            return cls({k: data[k] for k in data.files})

    # ------------------------------------------------------------------ scoring
    def raw(self, x: np.ndarray) -> np.ndarray:
        """The raw scores (log-odds) of the rows of ``x`` (n × features, float64; NaN = missing)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        out = np.empty(len(x), dtype=np.float64)
        for start in range(0, len(x), CHUNK):
            out[start : start + CHUNK] = self._raw(x[start : start + CHUNK])
        return out

    def raw_one(self, x: np.ndarray) -> float:
        """The raw score of one input vector: the same steps as ``raw`` on 1-D arrays (fewer numpy calls),
        with the same sequential sum, so the result is identical to ``raw`` on that row."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        values = x.take(self.feature)
        if self._zero_missing or np.isnan(x).any():
            return float(self.raw(x.reshape(1, -1))[0])
        masks = self.mask | ((values <= self.threshold) * ALL)
        exits = np.zeros(self.n_trees, dtype=np.int64)
        if len(self.feature):
            reduced = np.bitwise_and.reduceat(masks, self.tree_start)
            exits[self.node_trees] = np.log2((reduced & (~reduced + np.uint64(1))).astype(np.float64))
        total = 0.0
        for value in self.leaf_value.take(self.leaf_start + exits).tolist():
            total += value
        return total

    def _raw(self, x: np.ndarray) -> np.ndarray:
        values = x[:, self.feature]
        if np.isnan(x).any() or self._zero_missing:
            nan = np.isnan(values)
            filled = np.where(nan & (self.missing != MISSING_NAN), 0.0, values)
            use_default = (nan & (self.missing == MISSING_NAN)) | (
                (self.missing == MISSING_ZERO) & (np.abs(filled) <= ZERO_THRESHOLD)
            )
            left = np.where(use_default, self.default_left, filled <= self.threshold)
        else:
            left = values <= self.threshold
        masks = self.mask | (left * ALL)
        exits = np.zeros((len(x), self.n_trees), dtype=np.int64)
        if len(self.feature):
            reduced = np.bitwise_and.reduceat(masks, self.tree_start, axis=1)
            lowest = reduced & (~reduced + np.uint64(1))
            exits[:, self.node_trees] = np.log2(lowest.astype(np.float64)).astype(np.int64)
        leaf_values = self.leaf_value[self.leaf_start + exits]
        # added one tree after another, as LightGBM does (cumsum is sequential), for one row or many
        return np.cumsum(leaf_values, axis=1)[:, -1]
