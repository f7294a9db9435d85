"""Organised complaints and illegal loan intermediaries: find the one operator behind many customers.

Illegal "proxy rights-defence" agents file templated complaints for many customers from their own
phones and devices; illegal loan intermediaries package applications the same way. This package ties
records of different customers to one operator and routes each record, never rejecting one:

- ``records``: intake of ``complaint``, ``loan_application`` and ``transfer`` envelopes;
- ``text``, ``textindex``: character-shingle MinHash (datasketch) and LSH, exact similarity, template
  groups, incremental and bulk;
- ``lexicon``: lure and pressure terms from regulators' warnings and industry guides (features only);
- ``analyzer``: shared identifiers, rings, text-and-timing ties, signals; ``scoring``: score and route;
- ``evidence``, ``alerts``: rings as alerts with their evidence, for case management;
- ``service``, ``http``, ``cli``: the stored records, ``/v1/complaints/*`` and ``riskguard complaints``;
- ``evaluate``: precision and recall against a simulated world's agent rings.

See ``docs/complaints.md``.
"""

from riskguard.complaints.analyzer import AnalyzerConfig, Assessment, ComplaintAnalyzer, Ring
from riskguard.complaints.records import Record, from_event, from_fields, from_frame
from riskguard.complaints.scoring import HANDLE, REVIEW, ROUTES, VERIFY

__all__ = [
    "HANDLE",
    "REVIEW",
    "ROUTES",
    "VERIFY",
    "AnalyzerConfig",
    "Assessment",
    "ComplaintAnalyzer",
    "Record",
    "Ring",
    "from_event",
    "from_fields",
    "from_frame",
]
