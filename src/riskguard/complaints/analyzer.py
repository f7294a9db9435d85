"""The analyser: links complaints and loan applications of different customers to one operator.

``ComplaintAnalyzer.add(record)`` takes one record at a time (a complaint or application is matched
against every earlier one: its text through the LSH index, its identifiers through hash look-ups) and
returns its :class:`Assessment`; ``build(records)`` takes a whole batch at once, vectorised, and leaves
the same state behind, from which ``add`` can go on. ``rings()`` lists the suspected rings.

How records are tied (every tie is kept as evidence):

1. **Shared identifiers.** Two records of different customers that share a strong identifier within
   ``link_window_days`` of each other are joined: a contact phone that is not the customer's registered
   one, an agent's phone or ID number, a contact e-mail, a receiving account that is not the customer's
   (a refund account, or the payee of a fee paid soon after: ``complaint_fee_days`` /
   ``loan_fee_days``, a share of the disputed or borrowed amount within ``fee_share``), an attachment's
   digest, the submitting device, and (applications) the address. Joined records form components.
2. **A ring** is a component spanning ``single_kind_customers`` customers or more, or at least
   ``min_customers`` customers tied by two kinds of identifier that each tie ``min_customers`` of them (a
   household that shares a device, and a relative's phone as a contact, is not a ring).
3. **Text and timing.** A record left outside every ring joins the ring of the ring member whose text is
   most alike (exact Jaccard at least ``attach_similarity``), filed within ``attach_window_hours`` of it:
   an agent filing from a customer's own phone still files the agent's template in the agent's burst.

Because components only grow, the rings are the same whatever order the records come in (``add`` one by
one, or ``build``); the signals of an assessment use what was known when it was made.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from riskguard.complaints import lexicon
from riskguard.complaints.pii import masked
from riskguard.complaints.records import Record
from riskguard.complaints.scoring import WEIGHTS, Signal, lexicon_weight, route_of, score_of
from riskguard.complaints.structures import Groups, Timeline
from riskguard.complaints.text import jaccard
from riskguard.complaints.textindex import TextIndex
from riskguard.errors import ValidationFailed

DISTINCT_SAMPLE = 200
FEE_UNIT = Decimal(100)  # agents charge round sums: a fee is a whole number of hundreds
HOUR = 3_600_000
DAY = 24 * HOUR


@dataclass(frozen=True)
class AnalyzerConfig:
    num_perm: int = 64  # MinHash permutations
    lsh_threshold: float = 0.5  # similarity the LSH bands are tuned for
    template_similarity: float = 0.7  # texts this alike are one template
    attach_similarity: float = 0.5  # a text this alike to a ring member's, in its burst, joins the ring
    attach_window_hours: float = 2.0
    template_window_days: float = 7.0
    link_window_days: float = 90.0
    complaint_fee_days: float = 14.0
    loan_fee_days: float = 7.0
    fee_share: tuple[Decimal, Decimal] = (Decimal("0.05"), Decimal("0.35"))
    min_customers: int = 3
    single_kind_customers: int = 5
    template_customers: int = 2  # other customers with the same template that make it a signal
    per_bucket: int = 32  # texts taken from each LSH bucket when a new text is matched

    def __post_init__(self) -> None:
        checks = {
            "num_perm": 16 <= self.num_perm <= 512,
            "lsh_threshold": 0.05 <= self.lsh_threshold <= 0.95,
            "template_similarity": 0.0 < self.template_similarity <= 1.0,
            "attach_similarity": 0.0 < self.attach_similarity <= 1.0,
            "attach_window_hours": self.attach_window_hours > 0,
            "template_window_days": self.template_window_days > 0,
            "link_window_days": self.link_window_days > 0,
            "min_customers": self.min_customers >= 2,
            "single_kind_customers": self.single_kind_customers >= self.min_customers,
            "per_bucket": self.per_bucket >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValidationFailed(
                [{"loc": ["config", name], "type": "value_error", "msg": "out of range"} for name in bad]
            )


@dataclass
class Assessment:
    event_id: str
    kind: str
    account: str
    score: float
    route: str
    ring: str | None  # the ring's key
    ring_customers: int
    signals: list[Signal] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "kind": self.kind,
            "account_id": masked(self.account),
            "score": self.score,
            "route": self.route,
            "ring": {"key": self.ring, "customers": self.ring_customers} if self.ring else None,
            "signals": [s.to_dict() for s in self.signals],
        }


@dataclass
class Ring:
    key: str
    kind: str  # agent_ring | loan_ring
    members: list[int]  # record numbers tied by identifiers
    attached: list[tuple[int, int, float]]  # (record, the ring member it matched, similarity)
    customers: int
    identifier_kinds: list[str]


def ring_key(kind: str, first_event_id: str) -> str:
    return hashlib.sha256(f"{kind}\n{first_event_id}".encode()).hexdigest()[:40]


class ComplaintAnalyzer:
    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        self.config = c = config or AnalyzerConfig()
        self.records: list[Record] = []
        self.owner: list[str] = []  # the customer of each record
        self.rid_of: dict[str, int] = {}
        self.transfers: set[str] = set()
        self.text = TextIndex(
            num_perm=c.num_perm,
            lsh_threshold=c.lsh_threshold,
            template_similarity=c.template_similarity,
            per_bucket=c.per_bucket,
        )
        self.uid: list[int] = []
        self.links = Groups()
        self.customers: dict[int, set[str]] = {}
        self.kinds: dict[int, dict[str, set[str]]] = {}  # per root: identifier kind → customers it ties
        self.first: dict[int, int] = {}
        self.idents: dict[tuple[str, str], Timeline] = {}
        self.ident_owners: dict[tuple[str, str], set[str]] = {}  # the customers filed under an identifier
        self.fee_idents: dict[int, list[tuple[str, str]]] = {}
        self.fee_links = 0  # fees tied so far
        self.by_account: dict[str, Timeline] = {}
        self.by_ip: dict[str, Timeline] = {}
        self.by_fields: dict[tuple[str, str, str], Timeline] = {}
        self.attach: dict[int, dict[int, tuple[float, int, str]]] = {}  # record → anchor → rank
        self.by_time = Timeline()  # every record with a text
        self.ring_time = Timeline()  # ring members with a text
        self._newly: list[int] = []
        self._link_window = int(c.link_window_days * DAY)
        self._attach_window = int(c.attach_window_hours * HOUR)

    def __len__(self) -> int:
        return len(self.records)

    # ------------------------------------------------------------------ rings
    def is_ring(self, root: int) -> bool:
        customers = len(self.customers[root])
        if customers >= self.config.single_kind_customers:
            return True
        least = self.config.min_customers
        return customers >= least and sum(1 for tied in self.kinds[root].values() if len(tied) >= least) >= 2

    def ring_of(self, rid: int) -> int | None:
        """The root of the ring ``rid`` belongs to (by identifiers, else by text and timing), if any."""
        root = self.links.find(rid)
        if self.is_ring(root):
            return root
        tie = self.tie_of(rid)
        return self.links.find(tie[0]) if tie else None

    def tie_of(self, rid: int) -> tuple[int, float, int] | None:
        """``(anchor, similarity, gap ms)``: the ring member a record outside the rings is tied to by text and
        timing, the most alike first, then the nearest in time; only members that carry their ring's
        template and whose template is the ring's own (see ``_eligible``) count."""
        found = self.attach.get(rid)
        if not found:
            return None
        for (similarity, gap, _event), anchor in sorted(((k, a) for a, k in found.items()), reverse=True):
            if self.is_ring(self.links.find(anchor)) and self._eligible(anchor):
                return anchor, similarity, -gap
        return None

    def _order(self, rid: int) -> tuple[int, str]:
        """Records in time order, then by event id: the same whatever order they were filed in."""
        record = self.records[rid]
        return record.at_ms, record.event_id

    def key_of(self, root: int) -> str:
        first = self.records[self.first[root]]
        return ring_key(self.ring_kind(root), first.event_id)

    def ring_kind(self, root: int) -> str:
        members = self.links.members[root]
        complaints = sum(1 for m in members if self.records[m].kind == "complaint")
        return "agent_ring" if complaints * 2 >= len(members) else "loan_ring"

    def identifiers(self, rid: int) -> list[tuple[str, str]]:
        return self.records[rid].strong_identifiers() + self.fee_idents.get(rid, [])

    def rings(self) -> list[Ring]:
        attached: dict[int, list[tuple[int, int, float]]] = {}
        for rid in self.attach:
            if self.is_ring(self.links.find(rid)):
                continue
            tie = self.tie_of(rid)
            if tie is not None:
                attached.setdefault(self.links.find(tie[0]), []).append((rid, tie[0], tie[1]))
        out = []
        for root in self.links.roots():
            if not self.is_ring(root):
                continue
            out.append(
                Ring(
                    key=self.key_of(root),
                    kind=self.ring_kind(root),
                    members=sorted(self.links.members[root]),
                    attached=sorted(attached.get(root, [])),
                    customers=len(
                        self.customers[root] | {self.records[r].account for r, _, _ in attached.get(root, [])}
                    ),
                    identifier_kinds=sorted(self.kinds[root]),
                )
            )
        return sorted(out, key=lambda ring: min(self._order(m) for m in ring.members))

    # ------------------------------------------------------------------ one at a time
    def add(self, record: Record) -> Assessment | None:
        """Files one record and assesses it (``None`` for a transfer, which only links fees). A repeated
        event id is assessed again, not filed twice."""
        if record.event_id in self.rid_of:
            return self.assess(self.rid_of[record.event_id])
        if record.kind == "transfer":
            if record.event_id not in self.transfers:
                self.transfers.add(record.event_id)
                self._fee(record)
                self._settle()
            return None
        rid = self._file(record)
        self.uid.append(self.text.add(record.text, rid, record.at_ms))
        if self.uid[rid] >= 0:
            self.by_time.add(record.at_ms, rid)
        for ident in record.strong_identifiers():
            self._link(rid, ident)
        self._settle()
        if self.ring_of(rid) is None:
            self._attach(rid)
        return self.assess(rid)

    def _file(self, record: Record) -> int:
        rid = len(self.records)
        self.records.append(record)
        self.owner.append(record.account)
        self.rid_of[record.event_id] = rid
        self.links.add()
        self.customers[rid] = {record.account}
        self.kinds[rid] = {}
        self.first[rid] = rid
        self._timeline(self.by_account, record.account).add(record.at_ms, rid)
        if record.ip:
            self._timeline(self.by_ip, record.ip).add(record.at_ms, rid)
        template = record.field_template()
        if template:
            self._timeline(self.by_fields, template).add(record.at_ms, rid)
        return rid

    @staticmethod
    def _timeline(index: dict[Any, Timeline], key: Any) -> Timeline:
        found = index.get(key)
        if found is None:
            found = index[key] = Timeline()
        return found

    def _link(self, rid: int, ident: tuple[str, str]) -> None:
        """Files ``rid`` under identifier ``ident``. An identifier ties records only once it is shared by
        ``min_customers`` customers (a hub): a device or phone two customers share (a household, or a
        customer's own phone an agent once borrowed) ties nobody, so it cannot join two agents' rings."""
        record = self.records[rid]
        timeline = self._timeline(self.idents, ident)
        timeline.add(record.at_ms, rid)
        owners = self.ident_owners.setdefault(ident, set())
        was_hub = len(owners) >= self.config.min_customers
        owners.add(record.account)
        if len(owners) < self.config.min_customers:
            return
        if not was_hub:  # it has just become a hub: tie its whole timeline
            for a, b in self._chain(timeline):
                self._union(a, b, ident[0])
            return
        for other in timeline.nearest_other(record.at_ms, self._link_window, self.owner, record.account):
            if other is not None:
                self._union(rid, other, ident[0])

    def _chain(self, timeline: Timeline) -> list[tuple[int, int]]:
        """The ties within an identifier's timeline: each record with the nearest record of another
        customer before and after it, within the link window (what ``add`` makes one record at a time)."""
        runs: list[list[int]] = []
        for rid in timeline.rids:
            if runs and self.owner[runs[-1][-1]] == self.owner[rid]:
                runs[-1].append(rid)
            else:
                runs.append([rid])
        at = [self.records[r].at_ms for r in timeline.rids]
        when = dict(zip(timeline.rids, at, strict=True))
        out = []
        for i, run in enumerate(runs):
            for rid in run:
                if i and when[rid] - when[runs[i - 1][-1]] <= self._link_window:
                    out.append((rid, runs[i - 1][-1]))
                if i + 1 < len(runs) and when[runs[i + 1][0]] - when[rid] <= self._link_window:
                    out.append((rid, runs[i + 1][0]))
        return out

    def _union(self, a: int, b: int, kind: str) -> None:
        ra, rb = self.links.find(a), self.links.find(b)
        pair = {self.owner[a], self.owner[b]}
        if ra != rb:
            was = {r: self.is_ring(r) for r in (ra, rb)}
            before = {r: list(self.links.members[r]) for r in (ra, rb) if not was[r]}
            root = self.links.union(ra, rb)
            other = rb if root == ra else ra
            self.customers[root] |= self.customers.pop(other)
            kinds = self.kinds[root]
            for name, tied in self.kinds.pop(other).items():
                kinds.setdefault(name, set()).update(tied)
            kinds.setdefault(kind, set()).update(pair)
            self.first[root] = min(self.first[root], self.first.pop(other), key=self._order)
            if self.is_ring(root):
                for members in before.values():
                    self._newly.extend(members)
        elif not pair <= self.kinds[ra].get(kind, set()):
            was_ring = self.is_ring(ra)
            self.kinds[ra].setdefault(kind, set()).update(pair)
            if not was_ring and self.is_ring(ra):
                self._newly.extend(self.links.members[ra])

    def _settle(self) -> None:
        """Records that have just become ring members may be the burst a text-only record belongs to."""
        newly, self._newly = self._newly, []
        for member in dict.fromkeys(newly):
            if self.uid[member] >= 0:
                self.ring_time.add(self.records[member].at_ms, member)
        for member in dict.fromkeys(newly):
            self._reach_from(member)

    def _better(self, rid: int, anchor: int, similarity: float) -> None:
        gap = abs(self.records[rid].at_ms - self.records[anchor].at_ms)
        self.attach.setdefault(rid, {})[anchor] = (round(similarity, 6), -gap, self.records[anchor].event_id)

    def _eligible(self, anchor: int) -> bool:
        """Whether ring member ``anchor`` may pull text-only records into its ring: its text is the ring's
        template (another customer of the ring wrote one of the same template group) and the template is
        the ring's own, not a common complaint (among the ``DISTINCT_SAMPLE`` records of that template
        nearest in time, no more are outside every ring than in one). An ordinary complaint tied to a ring
        by a shared household device pulls nothing."""
        uid = self.uid[anchor]
        root = self.links.find(anchor)
        group = self.text.groups.find(uid)
        members = self.links.members[root]
        owner = self.owner[anchor]
        find = self.text.groups.find
        if not any(self.owner[m] != owner and self.uid[m] >= 0 and find(self.uid[m]) == group for m in members):
            return False
        timeline = self.text.group_times.get(group)
        inside = outside = 0
        for rid in itertools.islice(timeline.outward(self.records[anchor].at_ms, DAY), DISTINCT_SAMPLE):
            if self.is_ring(self.links.find(rid)):
                inside += 1
            else:
                outside += 1
        return outside <= inside

    def _tie(self, rid: int, anchors: list[int]) -> None:
        """Notes the ring members near in time (``anchors``) that share an LSH band with record ``rid``
        (outside every ring) and are alike enough; ``tie_of`` picks among them."""
        uid = self.uid[rid]
        anchors = [a for a in anchors if a != rid and self._kin(rid, a)]
        if uid < 0 or not anchors:
            return
        uids = np.fromiter((self.uid[a] for a in anchors), dtype=np.int64, count=len(anchors))
        close = self.text.share_band(uid, uids)
        chosen = [a for a, ok in zip(anchors, close.tolist(), strict=True) if ok]
        if not chosen:
            return
        similarity = self.text.verify(uid, [self.uid[a] for a in chosen])
        for anchor, value in zip(chosen, similarity.tolist(), strict=True):
            if value >= self.config.attach_similarity:
                self._better(rid, anchor, value)

    def _attach(self, rid: int) -> None:
        self._tie(rid, self.ring_time.within(self.records[rid].at_ms, self._attach_window))

    def _reach_from(self, member: int) -> None:
        uid = self.uid[member]
        if uid < 0:
            return
        nearby = self.by_time.within(self.records[member].at_ms, self._attach_window)
        if not nearby:
            return
        uids = np.fromiter((self.uid[r] for r in nearby), dtype=np.int64, count=len(nearby))
        close = self.text.share_band(uid, uids)
        for other, ok in zip(nearby, close.tolist(), strict=True):
            if ok and other != member and not self.is_ring(self.links.find(other)):
                self._tie(other, [member])

    def _kin(self, a: int, b: int) -> bool:
        """A complaint attaches only to a ring's complaints (an application only to applications)."""
        return self.records[a].kind == self.records[b].kind

    def _fee(self, transfer: Record, *, link: bool = True) -> None:
        """A transfer from a customer soon after their complaint or application, of a round share of its
        amount: the payee becomes a receiving account of that record (tied at once unless ``link`` is
        false, as in a bulk build, which ties everything afterwards)."""
        payee, paid = transfer.counterparty, transfer.amount
        timeline = self.by_account.get(transfer.account)
        if not payee or payee == transfer.account or paid is None or timeline is None:
            return
        low, high = self.config.fee_share
        horizon = int(max(self.config.complaint_fee_days, self.config.loan_fee_days) * DAY)
        for rid in timeline.within(transfer.at_ms, horizon):
            ident = ("receiving_account", payee)
            if self._is_fee(
                self.records[rid], transfer.at_ms, paid, low, high
            ) and ident not in self.fee_idents.setdefault(rid, []):
                self.fee_idents[rid].append(ident)
                self.fee_links += 1
                if link:
                    self._link(rid, ident)

    def _is_fee(self, record: Record, at: int, paid: Decimal, low: Decimal, high: Decimal) -> bool:
        days = self.config.complaint_fee_days if record.kind == "complaint" else self.config.loan_fee_days
        if not (record.at_ms <= at <= record.at_ms + days * DAY) or not record.amount:
            return False
        return paid >= FEE_UNIT and paid % FEE_UNIT == 0 and low <= paid / record.amount <= high

    # ------------------------------------------------------------------ assessment
    def _others(self, timeline: Timeline | None, at: int, window: int, account: str, cap: int) -> int:
        """Distinct other customers among ``timeline``'s records within ``window`` of ``at`` (at most ``cap``)."""
        if timeline is None:
            return 0
        seen: set[str] = set()
        for rid in timeline.outward(at, window):
            customer = self.records[rid].account
            if customer != account:
                seen.add(customer)
                if len(seen) >= cap:
                    break
        return len(seen)

    def assess(self, rid: int) -> Assessment:
        record = self.records[rid]
        at, account = record.at_ms, record.account
        signals: list[Signal] = []
        root = self.links.find(rid)
        ring = self.ring_of(rid)
        if ring is not None and ring == root:
            signals.append(
                Signal(
                    "agent_ring",
                    WEIGHTS["agent_ring"],
                    {"customers": len(self.customers[root]), "tied_by": sorted(self.kinds[root])},
                )
            )
        elif ring is not None:
            anchor, similarity, gap = self.tie_of(rid)  # type: ignore[misc]
            signals.append(
                Signal(
                    "ring_by_text",
                    WEIGHTS["ring_by_text"],
                    {
                        "similarity": similarity,
                        "minutes_apart": round(gap / 60_000, 1),
                        "matched": self.records[anchor].event_id,
                    },
                )
            )
        else:
            shared = {
                kind: len(self.ident_owners.get((kind, value), ()))
                for kind, value in self.identifiers(rid)
                if len(self.ident_owners.get((kind, value), ())) > 1
            }
            if shared:
                family = max(shared.values()) == 2 and len(shared) == 1  # e.g. a household's device
                signals.append(
                    Signal(
                        "shared_identifier",
                        WEIGHTS["shared_with_one"] if family else WEIGHTS["shared_identifier"],
                        {"customers": max(shared.values()), "tied_by": sorted(shared)},
                    )
                )
        if record.contact_is_third_party:
            # an application's contact is often a relative (an emergency contact): half the weight
            weight = WEIGHTS["contact_not_registered"] * (0.5 if record.kind == "loan_application" else 1.0)
            signals.append(
                Signal(
                    "contact_not_registered",
                    weight,
                    {"contact_phone": masked(record.contact_phone)},
                )
            )
        if record.has_agent:
            signals.append(
                Signal("agent_declared", WEIGHTS["agent_declared"], {"power_of_attorney": record.power_of_attorney})
            )
        uid = self.uid[rid]
        if uid >= 0:
            lures = self.text.lures[uid]
            group = self.text.groups.find(uid)
            cap = 10
            others = self._others(
                self.text.group_times.get(group), at, int(self.config.template_window_days * DAY), account, cap
            )
            if others >= self.config.template_customers:
                name = "template_lures" if lures else "template"
                signals.append(Signal(name, WEIGHTS[name], {"other_customers": others if others < cap else f"{cap}+"}))
            if lures:
                weight = lexicon_weight([lexicon.LEVEL_OF[t] for t in lures])
                signals.append(Signal("lexicon", weight, {"terms": list(lures)}))
        template = record.field_template()
        if (
            template
            and self._others(self.by_fields.get(template), at, int(self.config.template_window_days * DAY), account, 10)
            >= 2
        ):
            signals.append(Signal("shared_fields", WEIGHTS["shared_fields"], {}))
        if record.ip and self._others(self.by_ip.get(record.ip), at, DAY // 2, account, 10) >= 2:
            signals.append(Signal("shared_ip", WEIGHTS["shared_ip"], {"ip": masked(record.ip)}))
        account_records = self.by_account.get(account)
        if account_records is not None and len(account_records.within(at, 30 * DAY)) >= 3:
            signals.append(Signal("repeat", WEIGHTS["repeat"], {"within_days": 30}))
        score = score_of(signals)
        return Assessment(
            event_id=record.event_id,
            kind=record.kind,
            account=account,
            score=score,
            route=route_of(score),
            ring=self.key_of(ring) if ring is not None else None,
            ring_customers=len(self.customers[ring]) if ring is not None else 0,
            signals=signals,
        )

    # ------------------------------------------------------------------ in bulk
    def build(self, records: Iterable[Record]) -> list[Assessment]:
        """Files a whole batch at once into an empty analyser (records in time order; transfers link fees)
        and assesses every complaint and application."""
        if self.records:
            raise ValueError("bulk build needs an empty analyser; add() goes on from a built one")
        batch = sorted(records, key=lambda r: r.at_ms)
        transfers = [r for r in batch if r.kind == "transfer"]
        for record in batch:
            if record.kind != "transfer" and record.event_id not in self.rid_of:
                self._file(record)
        self.transfers = {t.event_id for t in transfers}
        n = len(self.records)
        ats = np.fromiter((r.at_ms for r in self.records), dtype=np.int64, count=n)
        self.uid = self.text.build([r.text for r in self.records], ats).tolist()
        for transfer in transfers:
            self._fee(transfer, link=False)
        self._bulk_links(ats)
        self._bulk_attach(ats)
        return [self.assess(rid) for rid in range(n)]

    def _bulk_links(self, ats: np.ndarray) -> None:
        n = len(self.records)
        rows_rid, rows_kind, rows_value = [], [], []
        for rid in range(n):
            for kind, value in self.identifiers(rid):
                rows_rid.append(rid)
                rows_kind.append(kind)
                rows_value.append(value)
        accounts = pl.Series([r.account for r in self.records], dtype=pl.String)
        frame = pl.DataFrame(
            {"rid": rows_rid, "kind": rows_kind, "value": rows_value},
            schema={"rid": pl.Int64, "kind": pl.String, "value": pl.String},
        )
        frame = frame.with_columns(
            at=pl.lit(pl.Series(ats)).gather(pl.col("rid")), account=accounts.gather(frame["rid"])
        )
        frame = frame.sort("kind", "value", "at", "rid")
        owners = frame.group_by("kind", "value").agg(pl.col("account").unique())
        self.ident_owners = {
            (kind, value): set(accounts) for kind, value, accounts in owners.iter_rows() if len(accounts) > 1
        }
        for kind, value, accounts in owners.iter_rows():
            if len(accounts) == 1:
                self.ident_owners[(kind, value)] = set(accounts)
        idents_frame = frame
        hubs = owners.filter(pl.col("account").list.len() >= self.config.min_customers).select("kind", "value")
        frame = frame.join(hubs, on=["kind", "value"], how="semi")
        # runs of one customer's records within an identifier's timeline; each record is tied to the
        # last record of the run before and the first of the run after (the nearest other customers')
        group = pl.struct("kind", "value")
        frame = frame.with_columns(
            run=((pl.col("account") != pl.col("account").shift(1)) | (group != group.shift(1)))
            .fill_null(True)
            .cum_sum()
        )
        runs = frame.group_by("run").agg(
            pl.col("kind").first(),
            pl.col("value").first(),
            last_rid=pl.col("rid").last(),
            last_at=pl.col("at").last(),
            first_rid=pl.col("rid").first(),
            first_at=pl.col("at").first(),
        )
        previous = runs.select(
            "kind", "value", run=pl.col("run") + 1, prev=pl.col("last_rid"), prev_at=pl.col("last_at")
        )
        following = runs.select(
            "kind", "value", run=pl.col("run") - 1, prev=pl.col("first_rid"), prev_at=pl.col("first_at")
        )
        edges = pl.concat(
            [frame.join(side, on=["kind", "value", "run"], how="inner") for side in (previous, following)]
        ).filter((pl.col("at") - pl.col("prev_at")).abs() <= self._link_window)
        graph = sparse.coo_matrix(
            (np.ones(edges.height), (edges["rid"].to_numpy(), edges["prev"].to_numpy())), shape=(n, n)
        )
        _count, labels = connected_components(graph, directed=False)
        self.links = Groups()
        self.links.load(labels.tolist())
        root_of = {int(labels[root]): root for root in self.links.roots()}
        self.customers, self.kinds, self.first = {}, {}, {}
        for root in self.links.roots():
            members = self.links.members[root]
            self.customers[root] = {self.records[m].account for m in members}
            self.kinds[root] = {}
            self.first[root] = min(members, key=self._order)
        owner = self.owner
        for rid, prev, kind in zip(
            edges["rid"].to_list(), edges["prev"].to_list(), edges["kind"].to_list(), strict=True
        ):
            self.kinds[root_of[int(labels[rid])]].setdefault(kind, set()).update((owner[rid], owner[prev]))
        self.idents = {}
        grouped = idents_frame.group_by("kind", "value", maintain_order=True).agg("at", "rid")
        for kind, value, times, rids in grouped.iter_rows():
            self.idents[(kind, value)] = Timeline(times, rids)

    def _bulk_attach(self, ats: np.ndarray) -> None:
        """Ties every record outside the rings as ``add`` does: ring members within the window sharing an
        LSH band (one join per band over records bucketed by time), verified, templated."""
        n = len(self.records)
        uid = np.asarray(self.uid, dtype=np.int64)
        ring_root = np.array([self.is_ring(self.links.find(r)) for r in range(n)], dtype=bool)
        has_text = uid >= 0
        texts = np.flatnonzero(has_text)
        self.by_time = Timeline(ats[texts].tolist(), texts.tolist())
        inside = np.flatnonzero(has_text & ring_root)
        self.ring_time = Timeline(ats[inside].tolist(), inside.tolist())
        outside = np.flatnonzero(has_text & ~ring_root)
        if not len(outside) or not len(inside):
            return
        window = self._attach_window
        keys = self.text.band_keys
        pairs = []
        for band in range(keys.shape[1]):
            left = pl.DataFrame({"rid": outside, "key": keys[uid[outside], band], "slot": ats[outside] // window})
            right = pl.DataFrame({"anchor": inside, "key": keys[uid[inside], band], "slot": ats[inside] // window})
            right = pl.concat([right.with_columns(slot=pl.col("slot") + shift) for shift in (-1, 0, 1)])
            pairs.append(left.join(right, on=["key", "slot"]).select("rid", "anchor"))
        found = pl.concat(pairs).unique().sort("rid", "anchor")
        rids, anchors = found["rid"].to_numpy(), found["anchor"].to_numpy()
        keep = np.abs(ats[rids] - ats[anchors]) <= window
        for rid, anchor in zip(rids[keep].tolist(), anchors[keep].tolist(), strict=True):
            if self._kin(rid, anchor):
                similarity = jaccard(self.text.keys[uid[rid]], self.text.keys[uid[anchor]])
                if similarity >= self.config.attach_similarity:
                    self._better(rid, anchor, similarity)
