"""A ring as an alert with its evidence: who, what they share, how alike their texts are, and when.

``ring_alert(analyzer, ring)`` gives ``{"key", "kind", "score", "accounts", "evidence"}``, the shape
``graph/alerts.py`` stores (plus the ring's stable key), with the evidence unmasked; ``mask_evidence``
makes the view every output shows except the audited admin view.

Evidence:

- ``members``: each record (up to ``MEMBER_LIMIT``): event id, customer, kind, time, how it is tied
  (``identifiers``, or ``text`` with the member it matched and the similarity), text, contact phone,
  device, address;
- ``shared``: the identifiers two or more of the ring's customers share, most shared first;
- ``similarity``: exact Jaccard similarity of the members' texts, pairwise over up to ``SIMILARITY_SAMPLE``
  texts (mean, median, minimum, maximum), the words most texts share (jieba, lexicon as dictionary) and
  the lure terms found;
- ``timeline``: first and last record, records per day, and bursts (records less than
  ``BURST_GAP_MINUTES`` apart).

The score orders alerts for review: the customers tied, plus 2 for each identifier kind beyond the first,
3 when the texts are templated (mean similarity at least 0.7) and 2 when most carry lure terms.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np

from riskguard.complaints import lexicon
from riskguard.complaints.analyzer import ComplaintAnalyzer, Ring
from riskguard.complaints.pii import mask_text, masked

MEMBER_LIMIT = 500
SIMILARITY_SAMPLE = 60
BURST_GAP_MINUTES = 60
_MASKED_FIELDS = ("account_id", "contact_phone", "device_id", "ip", "address", "agent_phone", "agent_id_number")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _similarity(analyzer: ComplaintAnalyzer, rids: list[int]) -> dict[str, Any]:
    uids = sorted({analyzer.uid[r] for r in rids if analyzer.uid[r] >= 0})
    texts = [r for r in rids if analyzer.uid[r] >= 0]
    if len(texts) < 2:
        return {"texts": len(texts)}
    sample = [analyzer.uid[r] for r in texts[:SIMILARITY_SAMPLE]]
    values = []
    for i, uid in enumerate(sample[:-1]):
        values.extend(analyzer.text.verify(uid, sample[i + 1 :]).tolist())
    lures = Counter(term for uid in (analyzer.uid[r] for r in texts) for term in analyzer.text.lures[uid])
    words = lexicon.shared_words([analyzer.records[r].text for r in texts[:200]])
    array = np.asarray(values)
    return {
        "texts": len(texts),
        "distinct_texts": len(uids),
        "pairs": len(values),
        "mean": round(float(array.mean()), 3),
        "median": round(float(np.median(array)), 3),
        "min": round(float(array.min()), 3),
        "max": round(float(array.max()), 3),
        "shared_words": words,
        "lure_terms": dict(lures.most_common()),
        "with_lures": sum(1 for r in texts if analyzer.text.lures[analyzer.uid[r]]),
    }


def _timeline(analyzer: ComplaintAnalyzer, rids: list[int]) -> dict[str, Any]:
    ordered = sorted(rids, key=lambda r: analyzer.records[r].at_ms)
    times = [analyzer.records[r].at_ms for r in ordered]
    days = Counter(_iso(t)[:10] for t in times)
    bursts, start = [], 0
    for i in range(1, len(times) + 1):
        if i == len(times) or times[i] - times[i - 1] > BURST_GAP_MINUTES * 60_000:
            if i - start >= 2:
                chunk = ordered[start:i]
                bursts.append(
                    {
                        "start": _iso(times[start]),
                        "end": _iso(times[i - 1]),
                        "records": i - start,
                        "customers": len({analyzer.records[r].account for r in chunk}),
                    }
                )
            start = i
    return {"first": _iso(times[0]), "last": _iso(times[-1]), "per_day": dict(sorted(days.items())), "bursts": bursts}


def _shared(analyzer: ComplaintAnalyzer, rids: list[int]) -> list[dict[str, Any]]:
    customers: dict[tuple[str, str], set[str]] = {}
    records: Counter[tuple[str, str]] = Counter()
    for rid in rids:
        for ident in analyzer.identifiers(rid):
            customers.setdefault(ident, set()).add(analyzer.records[rid].account)
            records[ident] += 1
    shared = [
        {"kind": kind, "value": value, "customers": len(owners), "records": records[(kind, value)]}
        for (kind, value), owners in customers.items()
        if len(owners) >= 2
    ]
    return sorted(shared, key=lambda s: (-s["customers"], s["kind"], s["value"]))


def ring_alert(analyzer: ComplaintAnalyzer, ring: Ring) -> dict[str, Any]:
    attached = {rid: (anchor, similarity) for rid, anchor, similarity in ring.attached}
    rids = ring.members + list(attached)
    members = []
    for rid in sorted(rids, key=lambda r: analyzer.records[r].at_ms)[:MEMBER_LIMIT]:
        record = analyzer.records[rid]
        item: dict[str, Any] = {
            "event_id": record.event_id,
            "account_id": record.account,
            "kind": record.kind,
            "occurred_at": _iso(record.at_ms),
            "tied_by": "text" if rid in attached else "identifiers",
            "text": record.text or None,
            "contact_phone": record.contact_phone,
            "device_id": record.device,
            "ip": record.ip,
            "address": record.address,
            "agent_phone": record.agent_phone,
            "agent_id_number": record.agent_id_number,
        }
        if rid in attached:
            anchor, similarity = attached[rid]
            item["matched"] = {"event_id": analyzer.records[anchor].event_id, "similarity": round(similarity, 3)}
        members.append({k: v for k, v in item.items() if v is not None})
    similarity = _similarity(analyzer, rids)
    accounts = sorted({analyzer.records[r].account for r in rids})
    score = float(ring.customers + 2 * max(0, len(ring.identifier_kinds) - 1))
    if similarity.get("mean", 0.0) >= 0.7:
        score += 3
    if similarity.get("with_lures", 0) * 2 > similarity.get("texts", 0) > 0:
        score += 2
    return {
        "key": ring.key,
        "kind": ring.kind,
        "score": score,
        "accounts": accounts,
        "evidence": {
            "ring_key": ring.key,
            "customers": ring.customers,
            "records": len(rids),
            "tied_by": ring.identifier_kinds,
            "members": members,
            "shared": _shared(analyzer, rids)[:200],
            "similarity": similarity,
            "timeline": _timeline(analyzer, rids),
        },
    }


def mask_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    """The evidence with every identifier masked and personal data inside texts masked."""
    out = dict(evidence)
    out["members"] = [
        {k: (mask_text(v) if k == "text" else masked(v) if k in _MASKED_FIELDS else v) for k, v in m.items()}
        for m in evidence.get("members", [])
    ]
    out["shared"] = [{**s, "value": masked(s["value"])} for s in evidence.get("shared", [])]
    if "accounts" in out:
        out["accounts"] = [masked(a) for a in out["accounts"]]
    return out
