"""Training: point-in-time features from the offline path, a time-ordered split, LightGBM, calibration,
and a model card — written as one version directory.

- **Features** are those the live engine would have computed for each event at its moment
  (``replay.engine.replay_features``: offline_features, with label events folded when each label became
  known), so the model sees in training exactly what it will see in production.
- **Split** by time: the earliest ``1 - validation_share`` of the scored events train, the latest validate
  (early stopping, calibration and the card's metrics); no shuffling, no event in both.
- **Class imbalance**: positives weighted by ``min(negatives / positives, 100)`` (``scale_pos_weight``;
  ``params`` may set another weight).
- **Calibration**: Platt scaling of the raw score on the validation split, so ``model.score`` is a
  probability in percent; monotone, so it never changes the ranking.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from riskguard.errors import ValidationFailed
from riskguard.models.inputs import DEFAULT_TYPES, FeatureSet, matrix
from riskguard.models.trees import TreeEnsemble
from riskguard.replay.engine import replay_features
from riskguard.replay.history import History

PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "max_depth": 8,
    "min_child_samples": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,  # beside a live service; and LightGBM's threads spin when cores are shared
    "seed": 1,
}
FRICTION_BUDGETS = (0.001, 0.005, 0.01)


@dataclass
class Trained:
    booster: Any
    ensemble: TreeEnsemble
    feature_set: FeatureSet
    card: dict[str, Any]


def _fail(message: str) -> ValidationFailed:
    return ValidationFailed([{"loc": ["train"], "msg": message, "type": "value_error"}])


def recall_at_budgets(
    y: np.ndarray, scores: np.ndarray, budgets: tuple[float, ...] = FRICTION_BUDGETS
) -> dict[str, float]:
    """Share of positives caught when flagging the highest scores until that share of negatives is flagged."""
    out: dict[str, float] = {}
    positives = int(y.sum())
    negatives = len(y) - positives
    order = np.argsort(-scores, kind="stable")
    false_flags = np.cumsum(~y[order].astype(bool))
    true_flags = np.cumsum(y[order].astype(bool))
    for budget in budgets:
        allowed = int(budget * negatives)
        cut = int(np.searchsorted(false_flags, allowed, side="right"))
        out[f"{budget:.1%}"] = float(true_flags[cut - 1] / positives) if cut and positives else 0.0
    return out


def train(
    history: History,
    feature_set: FeatureSet,
    *,
    name: str,
    version: int,
    validation_share: float = 0.2,
    rounds: int = 300,
    params: dict[str, Any] | None = None,
    lateness_seconds: float = 3600.0,
    since_us: int | None = None,
    until_us: int | None = None,
    features: Any = None,
) -> Trained:
    """Trains one model version on ``history`` (events between ``since_us`` and ``until_us`` if given)."""
    import lightgbm
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_auc_score

    if not 0.05 <= validation_share <= 0.5:
        raise _fail("validation share must be between 0.05 and 0.5")
    events = history.events
    types = feature_set.types or [t for t in DEFAULT_TYPES if (events.column("type") == t).any()]
    if not types:
        types = sorted(set(events.column("type").to_list()))
    feature_set = feature_set.with_types(types)
    if features is None:
        features = replay_features(history, feature_set.model_features, lateness_seconds=lateness_seconds)
    truth = history.truth()
    scored = events.column("type").is_in(types).to_numpy()
    if since_us is not None:
        scored &= events.t_us >= since_us
    if until_us is not None:
        scored &= events.t_us < until_us
    rows = np.flatnonzero(scored)
    if len(rows) < 100:
        raise _fail(f"only {len(rows)} events of types {', '.join(types)} in the window: too few to train on")
    rows = rows[np.argsort(events.t_us[rows], kind="stable")]
    x = matrix(feature_set, features, events)[rows]
    y = truth.get_column("fraud").to_numpy()[rows].astype(np.int8)
    cut = int(len(rows) * (1 - validation_share))
    train_rows, valid_rows = slice(0, cut), slice(cut, len(rows))
    y_train, y_valid = y[train_rows], y[valid_rows]
    if y_train.sum() == 0:
        raise _fail("no fraud-labelled events in the training part of the window")
    negatives, positives = int((y_train == 0).sum()), int(y_train.sum())
    settings = {**PARAMS, "scale_pos_weight": min(negatives / positives, 100.0), **(params or {})}
    names = feature_set.input_names()
    train_set = lightgbm.Dataset(x[train_rows], y_train, feature_name=names, free_raw_data=True)
    callbacks = []
    valid_sets = []
    if y_valid.sum() > 0:
        valid_sets = [lightgbm.Dataset(x[valid_rows], y_valid, reference=train_set)]
        settings["metric"] = "average_precision"
        callbacks.append(lightgbm.early_stopping(50, verbose=False))
    booster = lightgbm.train(settings, train_set, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks)
    if booster.best_iteration and booster.best_iteration < booster.current_iteration():
        booster = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    ensemble = TreeEnsemble.from_dump(booster.dump_model())
    raw_valid = ensemble.raw(x[valid_rows])
    slope, intercept = 1.0, 0.0
    if 0 < y_valid.sum() < len(y_valid):
        platt = LogisticRegression(C=1e6, max_iter=1000).fit(raw_valid.reshape(-1, 1), y_valid)
        slope, intercept = float(platt.coef_[0][0]), float(platt.intercept_[0])
        if slope <= 0:
            slope, intercept = 1.0, 0.0
    metrics: dict[str, Any] = {"validation_events": len(y_valid), "validation_frauds": int(y_valid.sum())}
    if 0 < y_valid.sum() < len(y_valid):
        metrics["auc"] = round(float(roc_auc_score(y_valid, raw_valid)), 4)
        metrics["average_precision"] = round(float(average_precision_score(y_valid, raw_valid)), 4)
        metrics["recall_at_friction"] = {k: round(v, 4) for k, v in recall_at_budgets(y_valid, raw_valid).items()}
    gain = booster.feature_importance(importance_type="gain")
    importance = sorted(zip(names, gain.tolist(), strict=True), key=lambda item: -item[1])
    times = events.t_us[rows]
    card = {
        "name": name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "types": types,
        "data": {
            "window": [_iso(times[0]), _iso(times[-1])],
            "train": {"from": _iso(times[0]), "to": _iso(times[cut - 1]), "events": cut, "frauds": positives},
            "validation": {
                "from": _iso(times[cut]) if cut < len(rows) else None,
                "to": _iso(times[-1]),
                "events": len(y_valid),
                "frauds": int(y_valid.sum()),
            },
        },
        "features": [s.name for s in feature_set.model_features],
        "inputs": names,
        "timezone": feature_set.timezone,
        "params": {k: v for k, v in settings.items() if k not in ("verbose",)},
        "trees": ensemble.n_trees,
        "calibration": {"method": "platt", "slope": slope, "intercept": intercept},
        "metrics": metrics,
        "importance": [{"input": n, "gain": round(g, 3)} for n, g in importance],
    }
    return Trained(booster, ensemble, feature_set, card)


def _iso(t_us: int) -> str:
    return datetime.fromtimestamp(int(t_us) / 1e6, UTC).isoformat()


def write(trained: Trained, directory: Path) -> Path:
    """Writes the version directory: model.txt, trees.npz, card.json, card.md, features.yaml."""
    directory.mkdir(parents=True, exist_ok=False)
    trained.booster.save_model(str(directory / "model.txt"))
    trained.ensemble.save(directory / "trees.npz")
    (directory / "card.json").write_text(json.dumps(trained.card, indent=2) + "\n", encoding="utf-8")
    (directory / "card.md").write_text(card_markdown(trained.card), encoding="utf-8")
    source = trained.feature_set.source or _features_yaml(trained.feature_set)
    (directory / "features.yaml").write_text(source, encoding="utf-8")
    return directory


def _features_yaml(feature_set: FeatureSet) -> str:
    import msgspec
    import yaml

    document = {
        "name": feature_set.name,
        "features": msgspec.to_builtins(feature_set.features),
        "inputs": feature_set.inputs,
        "timezone": feature_set.timezone,
        "types": feature_set.types,
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def card_markdown(card: dict[str, Any]) -> str:
    """The model card as a page a reviewer reads."""
    data, metrics = card["data"], card["metrics"]
    lines = [
        f"# Model card: {card['name']} version {card['version']}",
        "",
        f"Trained {card['created_at']} on events of types {', '.join(card['types'])}.",
        "",
        "## Data",
        f"- window: {data['window'][0]} to {data['window'][1]}",
        f"- training: {data['train']['events']:,} events, {data['train']['frauds']:,} frauds "
        f"({data['train']['from']} to {data['train']['to']})",
        f"- validation (later in time): {data['validation']['events']:,} events, "
        f"{data['validation']['frauds']:,} frauds",
        "",
        "## Metrics (validation)",
    ]
    for key, value in metrics.items():
        lines.append(f"- {key}: {value}")
    lines += [
        "",
        "## Inputs",
        ", ".join(card["inputs"]),
        "",
        "## Feature importance (gain)",
        "| input | gain |",
        "|---|---|",
    ]
    lines += [f"| {item['input']} | {item['gain']:,.1f} |" for item in card["importance"][:20]]
    cal = card["calibration"]
    lines += [
        "",
        "## Calibration",
        f"Platt scaling: score = 100 / (1 + exp(-({cal['slope']:.6g} x raw + {cal['intercept']:.6g})))",
        "",
        f"{card['trees']} trees; parameters: `{json.dumps(card['params'], sort_keys=True)}`",
        "",
    ]
    return "\n".join(lines)
