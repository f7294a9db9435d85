"""What a replay measured: decisions, rules, loss, friction, budgets, typologies, changes and drift.

Definitions (docs/replay.md):

- **caught** / **flagged**: the decision is challenge, review or block.
- **loss rate**: value of loss events (fraud that takes money from a victim or the platform) allowed,
  over the value of all money-moving events (payments, transfers, withdrawals).
- **friction**: share of legitimate (not fraud-labelled) events flagged.
- **recall at a friction budget** *f*: rank events by (decision severity, score, model score) and flag
  from the top until *f* of the legitimate events are flagged; the share of fraud events flagged then.
  **Loss rate at a friction budget** is the loss rate of that flagged set; with ``--vs`` the report gives
  each column's loss rate at the baseline's own friction ("at equal friction").
- **per rule**: hits (events it matched), precision (share of hits that are fraud), unique catches (fraud
  events caught where it is the only live rule that matched), fraud value caught (value of the fraud
  events it matched).
- **drift**: population stability index (PSI) of the model score and of the most important inputs per
  day against the first day: sum over ten quantile bins of (p - q) ln(p / q); above 0.25 is a shift.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl

from riskguard.replay.engine import OUTCOMES, Decisions
from riskguard.replay.history import History

BUDGETS = (0.001, 0.005, 0.01)
_UNIT = Decimal(1).scaleb(-4)


def money(units: int | np.integer[Any]) -> str:
    return str((Decimal(int(units)) * _UNIT).quantize(Decimal("0.01")))


def ranking(decisions: Decisions) -> np.ndarray:
    """Higher is riskier: severity, then score, then model score."""
    model = (
        np.zeros(len(decisions.score))
        if decisions.model_score is None
        else np.nan_to_num(decisions.model_score, nan=-1.0)
    )
    return decisions.decision.astype(np.float64) * 1e6 + decisions.score.astype(np.float64) * 1e3 + model


def at_budgets(
    key: np.ndarray, fraud: np.ndarray, loss: np.ndarray, units: np.ndarray, moves: np.ndarray, budgets: list[float]
) -> list[dict[str, Any]]:
    """Recall and loss rate when flagging the riskiest events up to each friction budget."""
    order = np.argsort(-key, kind="stable")
    legit_cum = np.cumsum(~fraud[order])
    legit_total = int((~fraud).sum())
    total_value = int(units[moves].sum())
    frauds = int(fraud.sum())
    loss_units = np.where(loss, units, 0)[order]
    loss_cum = np.cumsum(loss_units)
    loss_total = int(loss_units.sum())
    fraud_cum = np.cumsum(fraud[order])
    out = []
    for budget in budgets:
        cut = int(np.searchsorted(legit_cum, budget * legit_total, side="right"))
        caught_loss = int(loss_cum[cut - 1]) if cut else 0
        out.append(
            {
                "friction_budget": budget,
                "recall": float(fraud_cum[cut - 1] / frauds) if cut and frauds else 0.0,
                "loss_rate": (loss_total - caught_loss) / total_value if total_value else 0.0,
            }
        )
    return out


def column(history: History, truth: pl.DataFrame, decisions: Decisions, label: str) -> dict[str, Any]:
    fraud = truth.get_column("fraud").to_numpy()
    loss = truth.get_column("loss").to_numpy()
    moves = truth.get_column("moves").to_numpy()
    units = truth.get_column("units").to_numpy().astype(np.int64)
    flagged = decisions.decision > 0
    legit = ~fraud
    total_value = int(units[moves].sum())
    lost = int(units[loss & ~flagged].sum())
    live = [j for j, m in enumerate(decisions.modes) if m == "live"]
    matched = decisions.results == 1
    live_count = matched[:, live].sum(axis=1) if live else np.zeros(len(fraud), int)
    rules = []
    for j, rule_id in enumerate(decisions.rule_ids):
        hits = matched[:, j]
        fraud_hits = hits & fraud
        unique = fraud_hits & flagged & (live_count == 1) if decisions.modes[j] == "live" else np.zeros_like(hits)
        rules.append(
            {
                "rule": rule_id,
                "mode": decisions.modes[j],
                "hits": int(hits.sum()),
                "fraud_hits": int(fraud_hits.sum()),
                "precision": float(fraud_hits.sum() / hits.sum()) if hits.any() else None,
                "unique_catches": int(unique.sum()),
                "fraud_value_caught": money(units[fraud_hits].sum()),
                "errors": int((decisions.results[:, j] == 2).sum()),
            }
        )
    typologies = {}
    typology = truth.get_column("typology")
    for name in sorted(set(typology.drop_nulls().to_list())):
        rows = (typology == name).fill_null(False).to_numpy()
        typologies[name] = {
            "events": int(rows.sum()),
            "caught": int((rows & flagged).sum()),
            "recall": float((rows & flagged).sum() / rows.sum()),
            "fraud_value": money(units[rows & moves].sum()),
            "caught_value": money(units[rows & moves & flagged].sum()),
            "loss_allowed": money(units[rows & loss & ~flagged].sum()),
        }
    strategy = decisions.strategy
    return {
        "label": label,
        "strategy": {"name": strategy.name, "version": strategy.version},
        "model": None if decisions.model_score is None else label.split(" + ", 1)[-1],
        "decisions": {o: int((decisions.decision == i).sum()) for i, o in enumerate(OUTCOMES)},
        "fraud_events": int(fraud.sum()),
        "fraud_caught": int((fraud & flagged).sum()),
        "recall": float((fraud & flagged).sum() / fraud.sum()) if fraud.any() else 0.0,
        "total_value": money(total_value),
        "loss_value_allowed": money(lost),
        "loss_rate": lost / total_value if total_value else 0.0,
        "legit_events": int(legit.sum()),
        "legit_flagged": int((legit & flagged).sum()),
        "friction": float((legit & flagged).sum() / legit.sum()) if legit.any() else 0.0,
        "budgets": at_budgets(ranking(decisions), fraud, loss, units, moves, list(BUDGETS)),
        "rules": rules,
        "typologies": typologies,
        "timings": {k: round(v, 3) for k, v in decisions.timings.items()},
    }


def changed(
    history: History, truth: pl.DataFrame, base: Decisions, other: Decisions, limit: int = 500
) -> dict[str, Any]:
    rows = np.flatnonzero(base.decision != other.decision)
    fraud = truth.get_column("fraud").to_numpy()
    ids = history.events.column("event_id")
    transitions = Counter(f"{OUTCOMES[base.decision[r]]}→{OUTCOMES[other.decision[r]]}" for r in rows.tolist())
    events = [
        {
            "event_id": ids[int(r)],
            "type": history.events.column("type")[int(r)],
            "fraud": bool(fraud[r]),
            "before": OUTCOMES[base.decision[r]],
            "after": OUTCOMES[other.decision[r]],
            "rules_before": base.fired_rules(int(r)),
            "rules_after": other.fired_rules(int(r)),
        }
        for r in rows[:limit]
    ]
    return {
        "count": len(rows),
        "fraud": int(fraud[rows].sum()),
        "transitions": dict(transitions.most_common()),
        "events": events,
        "listed": len(events),
    }


def psi(reference: np.ndarray, sample: np.ndarray, bins: int = 10) -> float | None:
    reference = reference[~np.isnan(reference)]
    sample = sample[~np.isnan(sample)]
    if len(reference) < bins or len(sample) < bins:
        return None
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    p = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) / len(reference)
    q = np.bincount(np.searchsorted(edges, sample, side="right"), minlength=len(edges) + 1) / len(sample)
    p, q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))


def drift(
    history: History, decisions: Decisions, inputs: dict[str, np.ndarray], timezone: str = "UTC"
) -> dict[str, Any]:
    """PSI per day of the model score and the given inputs, against the first day."""
    days = (
        pl.Series(history.events.t_us)
        .cast(pl.Datetime("us", "UTC"))
        .dt.convert_time_zone(timezone)
        .dt.date()
        .to_numpy()
    )
    series = {}
    if decisions.model_score is not None:
        series["model.score"] = decisions.model_score
    series.update(inputs)
    unique_days = sorted(set(days.tolist()))
    if len(unique_days) < 2 or not series:
        return {"days": [str(d) for d in unique_days], "psi": {}}
    first = days == unique_days[0]
    out: dict[str, list[float | None]] = {}
    for name, values in series.items():
        values = np.asarray(values, dtype=np.float64)
        out[name] = [psi(values[first], values[days == day]) for day in unique_days]
    return {"days": [str(d) for d in unique_days], "reference": str(unique_days[0]), "psi": out}


def equal_friction(
    truth: pl.DataFrame, base: Decisions, other: Decisions, base_column: dict[str, Any]
) -> dict[str, Any]:
    """Each column's loss rate and recall when flagging up to the baseline's own friction."""
    fraud = truth.get_column("fraud").to_numpy()
    loss = truth.get_column("loss").to_numpy()
    moves = truth.get_column("moves").to_numpy()
    units = truth.get_column("units").to_numpy().astype(np.int64)
    budget = base_column["friction"]
    return {
        "friction": budget,
        "baseline": at_budgets(ranking(base), fraud, loss, units, moves, [budget])[0],
        "candidate": at_budgets(ranking(other), fraud, loss, units, moves, [budget])[0],
    }


def build(
    history: History,
    results: list[tuple[str, Decisions]],
    *,
    drift_inputs: dict[str, np.ndarray] | None = None,
    timezone: str = "UTC",
) -> dict[str, Any]:
    truth = history.truth()
    times = history.events.t_us
    from datetime import UTC, datetime

    def iso(us: int) -> str:
        return datetime.fromtimestamp(int(us) / 1e6, UTC).isoformat()

    report: dict[str, Any] = {
        "history": {
            "events": len(history.events),
            "from": iso(times.min()) if len(times) else None,
            "to": iso(times.max()) if len(times) else None,
            "fraud_events": int(truth.get_column("fraud").sum()),
            "labels": history.labels.height,
        },
        "columns": [column(history, truth, decisions, label) for label, decisions in results],
    }
    if len(results) == 2:
        base, other = results[0][1], results[1][1]
        report["changed"] = changed(history, truth, base, other)
        report["equal_friction"] = equal_friction(truth, base, other, report["columns"][0])
    main = results[-1][1]
    report["drift"] = drift(history, main, drift_inputs or {}, timezone)
    return report
