"""A trained model version ready to score: online one event at a time, in replay a whole history, with the
same evaluator (trees.py) and the same calibration, so both give the same ``model.score``.

``model.score`` is the calibrated probability of fraud in percent (0–100, a double): Platt scaling fitted
on the time-ordered validation split, so 80.0 means about 80 % of such events were fraud. Reason codes
come from LightGBM's own per-feature contributions (``pred_contrib``, TreeSHAP), computed only for the
decisions that show them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from riskguard.errors import NotFound
from riskguard.events.schema import Event
from riskguard.models.inputs import FeatureSet, load_feature_set, matrix, vector
from riskguard.models.trees import TreeEnsemble

FILES = ("model.txt", "trees.npz", "card.json", "card.md", "features.yaml")


@dataclass
class LoadedModel:
    name: str
    version: int
    path: Path
    ensemble: TreeEnsemble
    feature_set: FeatureSet
    slope: float
    intercept: float
    card: dict[str, Any]
    _booster: Any = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def feature_specs(self) -> list[Any]:
        return self.feature_set.model_features

    @property
    def input_names(self) -> list[str]:
        return self.feature_set.input_names()

    @classmethod
    def load(cls, path: Path, *, name: str | None = None, version: int | None = None) -> LoadedModel:
        missing = [f for f in FILES if not (path / f).exists()]
        if missing:
            raise NotFound(f"{path} is not a model version directory (missing {', '.join(missing)})")
        card = json.loads((path / "card.json").read_text(encoding="utf-8"))
        feature_set = load_feature_set((path / "features.yaml").read_text(encoding="utf-8"))
        feature_set = feature_set.with_types(card["types"])
        return cls(
            name=name or card["name"],
            version=version if version is not None else int(card["version"]),
            path=path,
            ensemble=TreeEnsemble.load(path / "trees.npz"),
            feature_set=feature_set,
            slope=float(card["calibration"]["slope"]),
            intercept=float(card["calibration"]["intercept"]),
            card=card,
        )

    # ------------------------------------------------------------------ scores
    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Raw log-odds → calibrated probability in percent."""
        z = self.slope * raw + self.intercept
        return 100.0 / (1.0 + np.exp(-z))

    def scores(self, x: np.ndarray) -> np.ndarray:
        return self.calibrate(self.ensemble.raw(x))

    def applies(self, event_type: str) -> bool:
        return event_type in self.feature_set.types

    def score_event(self, features: dict[str, Any], event: Event) -> tuple[float, np.ndarray] | None:
        """The event's score and its input vector; None when the model does not score this event type."""
        if not self.applies(event.type):
            return None
        x = vector(self.feature_set, features, event)
        return float(self.calibrate(np.array([self.ensemble.raw_one(x)]))[0]), x

    def score_frame(self, features: pl.DataFrame, events: Any) -> np.ndarray:
        """Scores of every event of a history (NaN where the model does not score the type)."""
        x = matrix(self.feature_set, features, events)
        out = np.full(len(events), np.nan)
        rows = np.flatnonzero(events.column("type").is_in(self.feature_set.types).to_numpy())
        if len(rows):
            out[rows] = self.scores(x[rows])
        return out

    def columns(self, columns: Any, features: pl.DataFrame) -> tuple[dict[str, Any], np.ndarray]:
        """``model.*`` for a replay (see variables.py), and the scores."""
        from riskguard.replay.columns import Column

        scores = self.score_frame(features, columns.events)
        n = len(scores)
        scored = ~np.isnan(scores)
        score_values = scores.tolist()
        score_column = Column(
            scored,
            np.where(scored, np.arange(n), -1),
            lambda i: score_values[i],
            np.nan_to_num(scores),
            True,
        )
        always = np.ones(n, bool)
        return {
            "model.score": score_column,
            "model.available": Column(always, scored.astype(np.int64), lambda i: bool(scored[i])),
            "model.name": Column(always, np.zeros(n, np.int64), lambda _i: self.name),
            "model.version": Column(always, np.zeros(n, np.int64), lambda _i: self.version),
        }, scores

    # ------------------------------------------------------------------ reasons
    def contributions(self, x: np.ndarray) -> list[tuple[str, float, float]]:
        """(input, value, contribution to the raw score) for one input vector, largest first."""
        if self._booster is None:
            import lightgbm

            self._booster = lightgbm.Booster(model_file=str(self.path / "model.txt"))
        contrib = self._booster.predict(x.reshape(1, -1), pred_contrib=True, num_threads=1)[0][:-1]
        names = self.input_names
        order = np.argsort(-contrib, kind="stable")
        return [(names[i], float(x.reshape(-1)[i]), float(contrib[i])) for i in order]

    def reasons(self, x: np.ndarray, limit: int = 3) -> list[dict[str, Any]]:
        """The top contributions that raised the score, as reason entries."""
        out = []
        for name, value, contribution in self.contributions(x):
            if contribution <= 0 or len(out) >= limit:
                break
            shown = None if math.isnan(value) else round(value, 4)
            code = "MODEL_" + "".join(c if c.isalnum() else "_" for c in name).upper()
            out.append(
                {
                    "code": code,
                    "rule": None,
                    "model": self.label,
                    "feature": name,
                    "value": shown,
                    "contribution": round(contribution, 4),
                    "message": f"model {self.label}: {name} = {shown} raised the score",
                }
            )
        return out
