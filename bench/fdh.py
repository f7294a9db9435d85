"""The Fraud Detection Handbook benchmark, run through riskguard (../shared/data/fdh/README.md).

Transactions are replayed as ``payment`` events (customer → ``account_id``, terminal → ``merchant_id``);
every transaction's label becomes known 7 days after it (the book's delay), as a ``label`` event, so the
terminal-risk features only see labels known at decision time. Features are riskguard declarations
computed by the offline path; each of the book's 4 prequential folds trains ``riskguard.models.train`` on
its 7 training days and scores its 7 test days with the serving evaluator. Test sets and metrics follow
the book: customers known compromised (frauds in training, then in the days up to each test day minus the
delay) are removed from each test day; AUC ROC and average precision over test transactions; card
precision@100 per day (cards already detected on earlier days removed), averaged; means over the folds.

Beyond the book's features (customer windows; terminal risk under the label delay) riskguard's row adds
features any strategy can declare: the card's largest earlier amount and the amount relative to the card's
usual (``amount/FEATURE`` inputs), first use of a terminal by the card, the card's payments in the last
hour and its own confirmed frauds. Model settings are chosen per fold on the training week's validation
split (CANDIDATES), never on a test week.

Usage: ``python bench/fdh.py`` (about seven minutes on two loaded cores).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score

from riskguard.features.offline_input import load_events
from riskguard.models.inputs import FeatureSet, load_feature_set, matrix
from riskguard.models.train import train
from riskguard.replay.engine import replay_features
from riskguard.replay.history import History, read_labels

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "fdh" / "transactions.parquet"
DELAY = timedelta(days=7)
FOLDS = [datetime(2018, 8, 8), datetime(2018, 8, 15), datetime(2018, 8, 22), datetime(2018, 8, 29)]
# Model settings: each fold trains these candidates (up to ROUNDS trees, early stopping on the validation
# average precision) and keeps the one with the best average precision on its training week's own
# time-ordered validation split (the last 20 % of the week) -- the test weeks never choose anything.
ROUNDS = 1000
CANDIDATES: list[tuple[str, dict[str, Any]]] = [
    ("weighted", {}),  # riskguard's defaults: positives weighted by negatives / positives (at most 100)
    ("unweighted", {"scale_pos_weight": 1.0}),
    ("unweighted, 63 leaves", {"scale_pos_weight": 1.0, "num_leaves": 63, "max_depth": -1, "min_child_samples": 50}),
    ("unweighted, rate 0.02", {"scale_pos_weight": 1.0, "learning_rate": 0.02, "feature_fraction": 0.6}),
]
PUBLISHED = [
    ("3", "Logistic regression", 0.871, 0.606, 0.291),
    ("3", "Random forest", 0.867, 0.658, 0.287),
    ("3", "XGBoost", 0.862, 0.639, 0.273),
    ("5", "XGBoost (validated)", 0.869, 0.687, 0.303),
    ("5", "XGBoost (best of grid)", 0.872, 0.694, 0.304),
    ("5", "Random forest (best of grid)", 0.875, 0.678, 0.303),
    ("6", "Balanced bagging", 0.879, 0.680, 0.305),
    ("7", "Feed-forward neural network", 0.876, 0.675, 0.303),
]
FRAUD = 'event.type == "label" && event.attributes.label == "fraud"'
LABELLED = 'event.type == "label"'
PAYMENT = 'event.type == "payment"'
FEATURES = f"""
name: fdh
timezone: UTC
types: [payment]
inputs: [amount, hour, weekday, amount/card_avg_30d, amount/card_avg_7d, amount/card_prev_max_30d]
features:
  # the book's customer windows (the current transaction included)
  - {{name: card_tx_1d, entity: account_id, aggregate: count, window: 1d, when: '{PAYMENT}'}}
  - {{name: card_tx_7d, entity: account_id, aggregate: count, window: 7d, when: '{PAYMENT}'}}
  - {{name: card_tx_30d, entity: account_id, aggregate: count, window: 30d, when: '{PAYMENT}'}}
  - {{name: card_avg_1d, entity: account_id, aggregate: avg, field: amount, window: 1d, when: '{PAYMENT}'}}
  - {{name: card_avg_7d, entity: account_id, aggregate: avg, field: amount, window: 7d, when: '{PAYMENT}'}}
  - {{name: card_avg_30d, entity: account_id, aggregate: avg, field: amount, window: 30d, when: '{PAYMENT}'}}
  - {{name: card_max_14d, entity: account_id, aggregate: max, field: amount, window: 14d, when: '{PAYMENT}'}}
  # the book's delayed terminal risk: labels arrive 7 days after the transaction, so a window of labels
  # read at t covers the transactions of the same window one delay earlier
  - {{name: terminal_labels_1d, entity: merchant_id, aggregate: count, window: 1d, when: '{LABELLED}'}}
  - {{name: terminal_labels_7d, entity: merchant_id, aggregate: count, window: 7d, when: '{LABELLED}'}}
  - {{name: terminal_labels_30d, entity: merchant_id, aggregate: count, window: 30d, when: '{LABELLED}'}}
  - {{name: terminal_frauds_1d, entity: merchant_id, aggregate: count, window: 1d, when: '{FRAUD}'}}
  - {{name: terminal_frauds_7d, entity: merchant_id, aggregate: count, window: 7d, when: '{FRAUD}'}}
  - {{name: terminal_frauds_30d, entity: merchant_id, aggregate: count, window: 30d, when: '{FRAUD}'}}
  - {{name: terminal_last_fraud_30d, entity: merchant_id, aggregate: last_seen, window: 30d, when: '{FRAUD}'}}
  - {{name: terminal_risk_1d, aggregate: ratio, of: [terminal_frauds_1d, terminal_labels_1d]}}
  - {{name: terminal_risk_7d, aggregate: ratio, of: [terminal_frauds_7d, terminal_labels_7d]}}
  - {{name: terminal_risk_30d, aggregate: ratio, of: [terminal_frauds_30d, terminal_labels_30d]}}
  # what riskguard adds: the card's own confirmed frauds, the terminal's recent payments, the card's usual
  # (its largest earlier amount: inputs divide the amount by it and by its averages), how often the card
  # used this terminal (1 = first use) and its burst of payments in the last hour
  - {{name: card_frauds_30d, entity: account_id, aggregate: count, window: 30d, when: '{FRAUD}'}}
  - {{name: terminal_tx_1d, entity: merchant_id, aggregate: count, window: 1d, when: '{PAYMENT}'}}
  - {{name: card_prev_max_30d, entity: account_id, aggregate: max, field: amount, window: 30d, when: '{PAYMENT}',
     include_current: false}}
  - {{name: card_terminal_tx_30d, entity: [account_id, merchant_id], aggregate: count, window: 30d,
     when: '{PAYMENT}'}}
  - {{name: card_tx_1h, entity: account_id, aggregate: count, window: 1h, when: '{PAYMENT}'}}
"""


def history(start: datetime, end: datetime) -> tuple[History, pl.DataFrame]:
    raw = pl.read_parquet(DATA).filter((pl.col("TX_DATETIME") >= start) & (pl.col("TX_DATETIME") < end))
    raw = raw.sort("TX_DATETIME", "TRANSACTION_ID")
    iso = pl.col("TX_DATETIME").dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    events = raw.select(
        event_id=pl.col("TRANSACTION_ID").cast(pl.String),
        type=pl.lit("payment"),
        occurred_at=iso,
        account_id=pl.lit("c") + pl.col("CUSTOMER_ID").cast(pl.String),
        amount=pl.col("TX_AMOUNT").round(2).cast(pl.Decimal(12, 2)).cast(pl.String),
        currency=pl.lit("EUR"),
        merchant_id=pl.lit("t") + pl.col("TERMINAL_ID").cast(pl.String),
    )
    labels = raw.select(
        event_id=pl.col("TRANSACTION_ID").cast(pl.String),
        label=pl.when(pl.col("TX_FRAUD") == 1).then(pl.lit("fraud")).otherwise(pl.lit("legit")),
        labelled_at=(pl.col("TX_DATETIME") + DELAY).dt.replace_time_zone("UTC"),
        loss=pl.col("TX_FRAUD") == 1,
    )
    return History(load_events(events), read_labels(labels)), raw


def us(moment: datetime) -> int:
    """A naive (UTC) time as integer microseconds since the epoch."""
    return int((moment - datetime(1970, 1, 1)).total_seconds() * 1_000_000)


def card_precision(frame: pl.DataFrame, k: int = 100) -> float:
    """The book's CP@k: per day, cards ranked by their highest score; detected cards leave later days."""
    detected: set[int] = set()
    values = []
    for day in sorted(frame.get_column("day").unique().to_list()):
        today = frame.filter((pl.col("day") == day) & ~pl.col("CUSTOMER_ID").is_in(list(detected)))
        cards = today.group_by("CUSTOMER_ID").agg(pl.col("score").max(), pl.col("TX_FRAUD").max())
        top = cards.sort("score", descending=True).head(k)
        values.append(float(top.get_column("TX_FRAUD").sum()) / k)
        detected |= set(top.filter(pl.col("TX_FRAUD") == 1).get_column("CUSTOMER_ID").to_list())
    return float(np.mean(values))


def evaluate(
    data: History,
    raw: pl.DataFrame,
    feature_set: FeatureSet,
    features: pl.DataFrame,
    settings: list[tuple[str, dict[str, Any]]] = CANDIDATES,
) -> list[tuple[float, float, float]]:
    """(AUC, AP, CP@100) of each prequential fold; each model sees only its own 7 training days, and the
    candidate settings are chosen on its validation split."""
    x_all = None
    days = raw.select(((pl.col("TX_DATETIME") - datetime(2018, 4, 1)).dt.total_days()).alias("day")).to_series()
    day = days.to_numpy()
    fraud = raw.get_column("TX_FRAUD").to_numpy()
    customer = raw.get_column("CUSTOMER_ID").to_numpy()
    results = []
    for test_start in FOLDS:
        train_start = test_start - timedelta(days=14)
        candidates = [
            train(
                data,
                feature_set.with_types(["payment"]),
                name="fdh",
                version=1,
                since_us=us(train_start),
                until_us=us(train_start + timedelta(days=7)),
                features=features,
                rounds=ROUNDS,
                params=params,
            )
            for _, params in settings
        ]
        validation_ap = [t.card["metrics"]["average_precision"] for t in candidates]
        best = int(np.argmax(validation_ap))
        trained, chosen = candidates[best], settings[best][0]
        if x_all is None:
            x_all = matrix(trained.feature_set, features, data.events)
        first_test = (test_start - datetime(2018, 4, 1)).days
        train_days = (train_start - datetime(2018, 4, 1)).days
        known = set(customer[(day >= train_days) & (day < train_days + 7) & (fraud == 1)].tolist())
        keep = np.zeros(len(fraud), dtype=bool)
        for offset in range(7):
            delay_day = train_days + 7 + offset - 1
            known |= set(customer[(day == delay_day) & (fraud == 1)].tolist())
            today = day == first_test + offset
            keep |= today & ~np.isin(customer, list(known))
        scores = trained.ensemble.raw(x_all[keep])  # the serving evaluator, on the test rows only
        test = pl.DataFrame({"day": day[keep], "CUSTOMER_ID": customer[keep], "TX_FRAUD": fraud[keep], "score": scores})
        y, s = fraud[keep], scores
        results.append((roc_auc_score(y, s), average_precision_score(y, s), card_precision(test)))
        auc_k, ap_k, cp_k = results[-1]
        print(
            f"  fold {test_start:%Y-%m-%d}: {chosen} (validation AP {validation_ap[best]:.3f}), "
            f"{trained.ensemble.n_trees} trees; test AUC {auc_k:.3f}, AP {ap_k:.3f}, CP@100 {cp_k:.3f}",
            flush=True,
        )
    return results


def main() -> None:
    started = time.perf_counter()
    data, raw = history(FOLDS[0] - timedelta(days=14 + 40), FOLDS[-1] + timedelta(days=7))
    feature_set = load_feature_set(FEATURES)
    features = replay_features(data, feature_set.model_features, lateness_seconds=3600.0)
    print(f"{len(data.events):,} payments and as many labels; features in {time.perf_counter() - started:.0f} s")
    results = evaluate(data, raw, feature_set, features)
    auc, ap, cp = (float(np.mean([r[i] for r in results])) for i in range(3))
    print()
    print("| chapter | model | AUC | AP | CP@100 |")
    print("|---|---|---|---|---|")
    for chapter, name, a, b, c in PUBLISHED:
        print(f"| {chapter} | {name} | {a:.3f} | {b:.3f} | {c:.3f} |")
    print(f"| riskguard | riskguard | {auc:.3f} | {ap:.3f} | {cp:.3f} |")
    print(f"\nriskguard {auc:.3f} {ap:.3f} {cp:.3f} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
