"""From signals to a score and a route.

Each signal the analyser finds carries a weight in [0, 1); the score is their noisy-OR,
``1 - Π(1 - weight)``, so every signal adds to it and none is needed. The route follows the score:

=========================================  ==========  ====================================================
route                                      score       what the institution does
=========================================  ==========  ====================================================
``handle normally``                        < 0.40      the complaint or application goes its usual way
``verify identity and authorisation``      ≥ 0.40      confirm on the registered phone that the customer
                                                       filed it; ask an agent for ID and power of attorney
``review as suspected agent``              ≥ 0.80      a person reviews it with the ring's evidence
=========================================  ==========  ====================================================

Nothing is rejected automatically: a real complainant must be served whatever the score says. The
lexicon's share is capped at ``LEXICON_CAP`` (below the "verify" line), so lure words alone never change
a route; a ring needs shared identifiers or a text and time tie to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HANDLE = "handle normally"
VERIFY = "verify identity and authorisation"
REVIEW = "review as suspected agent"
ROUTES = (HANDLE, VERIFY, REVIEW)
VERIFY_AT = 0.4
REVIEW_AT = 0.8

WEIGHTS: dict[str, float] = {
    "agent_ring": 0.9,  # in a ring: records of several customers tied by shared identifiers
    "ring_by_text": 0.85,  # its text and timing tie it to a ring (nearly the same text within hours)
    "shared_identifier": 0.45,  # shares contacts, devices, accounts or documents with other customers
    "shared_with_one": 0.25,  # shares one kind of identifier with one other customer (often a household)
    "contact_not_registered": 0.4,  # the contact phone is not the customer's registered phone
    "agent_declared": 0.4,  # filed through an agent (name, phone or ID given)
    "template_lures": 0.35,  # nearly the same text as several other customers', with lure terms
    "shared_fields": 0.3,  # (applications) the same employer, income and purpose as other applicants
    "shared_ip": 0.15,  # submitted from an address other customers used the same day
    "repeat": 0.1,  # the customer's third record within 30 days
    "template": 0.05,  # nearly the same text as several other customers' (a common complaint)
}
LEXICON_LEVEL = {1: 0.15, 2: 0.1, 3: 0.05}
LEXICON_CAP = 0.3


@dataclass(frozen=True)
class Signal:
    name: str
    weight: float
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, **self.detail}


def lexicon_weight(levels: list[int]) -> float:
    return min(LEXICON_CAP, sum(LEXICON_LEVEL.get(level, 0.0) for level in levels))


def score_of(signals: list[Signal]) -> float:
    keep = 1.0
    for signal in signals:
        keep *= 1.0 - signal.weight
    return round(1.0 - keep, 4)


def route_of(score: float) -> str:
    if score >= REVIEW_AT:
        return REVIEW
    if score >= VERIFY_AT:
        return VERIFY
    return HANDLE
