"""Scores a strategy's decisions on a world against its ground truth: the demo's summary.

Definitions (also in docs/simulator.md):

- **caught**: the decision is not ``allow`` (challenge, review or block); **missed**: ``allow``.
- **fraud value** of a typology: the amounts of its events that take money from a victim or the platform
  (``loss`` in the labels: a victim's payment, a drain, a fee to an agent, a purchase with a stolen card,
  a farm's bonus cash-out) plus the amounts at stake in its loan applications and complaints. Mule hops
  are counted apart as **laundered value**, so that one victim's money is counted once.
- **loss rate**: value of ``loss`` events allowed / value of all money-moving events (payments,
  transfers, withdrawals; fraudulent and legitimate).
- **friction**: share of legitimate events (no fraud label) that were challenged, reviewed or blocked.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl

from riskguard.sim.config import TYPOLOGIES
from riskguard.sim.stream import Decided
from riskguard.sim.table import MONEY_MOVING

OUTCOMES = ("allow", "challenge", "review", "block")
EXPOSURE_TYPES = ("loan_application", "complaint")


def _yuan(fen: int) -> str:
    return str((Decimal(int(fen)) / 100).quantize(Decimal("0.01")))


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    array = np.asarray(values)
    return {
        "p50": round(float(np.percentile(array, 50)), 3),
        "p99": round(float(np.percentile(array, 99)), 3),
        "max": round(float(array.max()), 3),
    }


def summarise(
    events: pl.DataFrame, labels: pl.DataFrame, decided: dict[str, Decided], *, wall_s: float | None = None
) -> dict[str, Any]:
    """The summary of one streamed world (events: the world's events; labels: its labels file)."""
    event_labels = labels.filter(pl.col("label_kind") == "event").select("event_id", "typology", "role", "loss")
    frame = (
        events.select("event_id", "type", "amount")
        .with_columns((pl.col("amount").cast(pl.Decimal(20, 2)) * 100).cast(pl.Int64).fill_null(0).alias("fen"))
        .join(event_labels, on="event_id", how="left")
        .with_columns(
            pl.Series("decision", [decided[e].decision if e in decided else "missing" for e in events["event_id"]])
        )
    )
    frame = frame.with_columns(
        caught=pl.col("decision").is_in(["challenge", "review", "block"]),
        moves=pl.col("type").is_in(list(MONEY_MOVING)),
        fraud=pl.col("typology").is_not_null(),
        loss=pl.col("loss").fill_null(False),
    )
    total_value = int(frame.filter(pl.col("moves"))["fen"].sum())
    lost = int(frame.filter(pl.col("loss") & (pl.col("decision") == "allow"))["fen"].sum())

    per_typology: dict[str, Any] = {}
    for typology in TYPOLOGIES:
        rows = frame.filter(pl.col("typology") == typology)
        if rows.is_empty():
            continue
        valued = rows.filter(pl.col("loss") | pl.col("type").is_in(list(EXPOSURE_TYPES)))
        laundered = rows.filter(pl.col("moves") & ~pl.col("loss"))
        per_typology[typology] = {
            "events": rows.height,
            "caught_events": int(rows["caught"].sum()),
            "decisions": {o: int((rows["decision"] == o).sum()) for o in OUTCOMES},
            "fraud_value": _yuan(valued["fen"].sum()),
            "caught_value": _yuan(valued.filter(pl.col("caught"))["fen"].sum()),
            "missed_value": _yuan(valued.filter(pl.col("decision") == "allow")["fen"].sum()),
            "laundered_value": _yuan(laundered["fen"].sum()),
            "laundered_caught_value": _yuan(laundered.filter(pl.col("caught"))["fen"].sum()),
            "loss_allowed_value": _yuan(rows.filter(pl.col("loss") & (pl.col("decision") == "allow"))["fen"].sum()),
            "top_rules": _top_rules(rows["event_id"], decided),
        }

    legit = frame.filter(~pl.col("fraud"))
    legit_challenged = legit.filter(pl.col("caught"))
    by_type = (
        legit.group_by("type").agg(pl.len().alias("events"), pl.col("caught").sum().alias("challenged")).sort("type")
    )
    latencies = [d.latency_ms for d in decided.values() if d.decision != "error"]
    round_trips = [d.round_trip_ms for d in decided.values() if d.decision != "error"]
    errors = [d for d in decided.values() if d.decision == "error"]
    summary: dict[str, Any] = {
        "events": events.height,
        "decided": len(decided) - len(errors),
        "errors": len(errors),
        "error_examples": [f"{d.event_id}: {d.error}" for d in errors[:3]],
        "fraud_events": int(frame["fraud"].sum()),
        "decisions": {o: int((frame["decision"] == o).sum()) for o in OUTCOMES},
        "typologies": per_typology,
        "total_value": _yuan(total_value),
        "loss_value_allowed": _yuan(lost),
        "loss_rate": lost / total_value if total_value else 0.0,
        "legit_events": legit.height,
        "legit_challenged": legit_challenged.height,
        "friction": legit_challenged.height / legit.height if legit.height else 0.0,
        "friction_by_outcome": {o: int((legit["decision"] == o).sum()) for o in OUTCOMES[1:]},
        "friction_by_type": {
            row["type"]: {"events": row["events"], "challenged": int(row["challenged"])}
            for row in by_type.iter_rows(named=True)
        },
        "friction_rules": _top_rules(legit_challenged["event_id"], decided, limit=8),
        "latency_ms": _percentiles(latencies),
        "round_trip_ms": _percentiles(round_trips),
    }
    if wall_s is not None:
        summary["stream_s"] = round(wall_s, 2)
        summary["events_per_s"] = round(len(decided) / wall_s, 1) if wall_s else 0.0
    return summary


def _top_rules(event_ids: pl.Series, decided: dict[str, Decided], limit: int = 5) -> list[tuple[str, int]]:
    counts: Counter[str] = Counter()
    for event_id in event_ids:
        d = decided.get(event_id)
        if d is not None:
            counts.update(d.rules)
    return counts.most_common(limit)
