"""Rings found against a simulated world's ground truth: precision and recall, and how ordinary
customers were routed.

Precision and recall are B-cubed (Amigó et al., 2009), over records: a record's precision is the share of
its ring that belongs to its own gang (an ordinary record is a gang of one), averaged over the records
put in rings; a gang record's recall is the share of its gang found in its ring (0 when it is in none),
averaged over the gang records. Merging two gangs costs precision, splitting one costs recall, and
ordinary complaints swept into a ring cost both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from riskguard.complaints.analyzer import Assessment, ComplaintAnalyzer
from riskguard.complaints.scoring import REVIEW, VERIFY

RING_ROLES = {"complaint": "agent_complaint", "loan_application": "packaged_application"}


@dataclass
class Score:
    kind: str
    records: int
    gang_records: int
    gangs: int
    gangs_found: int
    precision: float
    recall: float
    record_precision: float
    record_recall: float
    flagged_ordinary: int
    ordinary: int
    verified_ordinary: int

    @property
    def false_flag_rate(self) -> float:
        return self.flagged_ordinary / self.ordinary if self.ordinary else 0.0

    @property
    def verify_rate(self) -> float:
        return self.verified_ordinary / self.ordinary if self.ordinary else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["false_flag_rate"] = self.false_flag_rate
        out["verify_rate"] = self.verify_rate
        return out


def clusters(analyzer: ComplaintAnalyzer) -> dict[str, str]:
    """Event id → ring key, for every record in a ring (tied by identifiers or attached by text)."""
    out: dict[str, str] = {}
    for ring in analyzer.rings():
        for rid in ring.members:
            out[analyzer.records[rid].event_id] = ring.key
        for rid, _anchor, _similarity in ring.attached:
            out[analyzer.records[rid].event_id] = ring.key
    return out


def score(
    kind: str,
    event_ids: list[str],
    truth: Mapping[str, str | None],
    found: Mapping[str, str],
    routes: Mapping[str, str],
) -> Score:
    """``truth``: event id → gang (None for ordinary records); ``found``: event id → ring key."""
    gang_size = Counter(g for e in event_ids if (g := truth.get(e)) is not None)
    ring_size = Counter(found[e] for e in event_ids if e in found)
    both = Counter((found[e], truth.get(e)) for e in event_ids if e in found and truth.get(e) is not None)
    flagged = [e for e in event_ids if e in found]
    precision_sum = 0.0
    for e in flagged:
        gang = truth.get(e)
        same = both[(found[e], gang)] if gang is not None else 1
        precision_sum += same / ring_size[found[e]]
    recall_sum = 0.0
    gang_records = [e for e in event_ids if truth.get(e) is not None]
    for e in gang_records:
        if e in found:
            recall_sum += both[(found[e], truth[e])] / gang_size[truth[e]]
    gangs_found = 0
    for gang, size in gang_size.items():
        best = max((n for (ring, g), n in both.items() if g == gang), default=0)
        if best * 2 >= size:
            gangs_found += 1
    ordinary = [e for e in event_ids if truth.get(e) is None]
    return Score(
        kind=kind,
        records=len(event_ids),
        gang_records=len(gang_records),
        gangs=len(gang_size),
        gangs_found=gangs_found,
        precision=precision_sum / len(flagged) if flagged else 1.0,
        recall=recall_sum / len(gang_records) if gang_records else 1.0,
        record_precision=sum(1 for e in flagged if truth.get(e) is not None) / len(flagged) if flagged else 1.0,
        record_recall=sum(1 for e in gang_records if e in found) / len(gang_records) if gang_records else 1.0,
        flagged_ordinary=sum(1 for e in ordinary if routes.get(e) == REVIEW),
        ordinary=len(ordinary),
        verified_ordinary=sum(1 for e in ordinary if routes.get(e) == VERIFY),
    )


def world_truth(world: Path) -> dict[str, str | None]:
    """Event id → gang id for a world's complaints and loan applications (None for ordinary ones)."""
    labels = pl.read_parquet(world / "labels.parquet").filter(
        (pl.col("label_kind") == "event") & pl.col("role").is_in(list(RING_ROLES.values()))
    )
    gangs = dict(zip(labels["event_id"].to_list(), labels["gang_id"].to_list(), strict=True))
    events = pl.scan_parquet(world / "events" / "*.parquet").filter(pl.col("type").is_in(list(RING_ROLES)))
    ids = events.select("event_id").collect()["event_id"].to_list()
    return {e: gangs.get(e) for e in ids}


def evaluate(
    analyzer: ComplaintAnalyzer, assessments: list[Assessment], truth: Mapping[str, str | None]
) -> list[Score]:
    found = clusters(analyzer)
    routes = {a.event_id: a.route for a in assessments}
    out = []
    for kind in RING_ROLES:
        ids = [a.event_id for a in assessments if a.kind == kind and a.event_id in truth]
        out.append(score(kind, ids, truth, found, routes))
    return out
