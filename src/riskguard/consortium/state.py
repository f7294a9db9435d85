"""Governance state folded from the log: the roster, every report's standing, appeals with their
deadlines, and each member's contribution. Checking an entry against this state is what decides
whether the log accepts it; every mirror replays the same checks on what it receives.

Rules (docs/consortium.md, Governance):

- The first entry is the genesis: the founding roster and parameters, filed by one of its admins.
- Only admins change the roster; only reporters file reports; evidence stays with the reporter.
- A report lives until it expires (default ``default_expiry_days``, never beyond ``max_expiry_days``),
  is retracted by its filer, or is overturned on appeal.
- Any member may open an appeal for a person it serves. The filer answers within
  ``appeal_response_days``; past that deadline the report is suspended (no longer a hit) until it is
  decided, and any admin may decide it (escalation).
- A member's contribution counts its reports that matched: corroborated by another member's report on
  the same subject, or confirmed by another member.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from riskguard.consortium.entries import (
    AppealDecided,
    AppealOpened,
    Confirmation,
    Entry,
    EntryError,
    Genesis,
    Member,
    Membership,
    Report,
    Retraction,
    check_shape,
    parse_time,
    verify_signature,
)
from riskguard.consortium.note import Verifier

ACTIVE = "active"
UNDER_APPEAL = "under_appeal"
SUSPENDED = "suspended"
HIT_STATUSES = (ACTIVE, UNDER_APPEAL)


@dataclass
class ReportState:
    id: str
    index: int
    member: str
    filed_at: datetime
    report: Report
    expires_at: datetime
    retracted_at: datetime | None = None
    overturned_at: datetime | None = None
    appeals: list[str] = field(default_factory=list)
    confirmed_by: set[str] = field(default_factory=set)


@dataclass
class AppealState:
    id: str
    index: int
    report: str
    opened_by: str
    opened_at: datetime
    deadline: datetime
    outcome: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True)
class Hit:
    """What the consortium says about one subject token now."""

    token: str
    reporters: tuple[str, ...]
    categories: tuple[str, ...]
    severity: int
    under_appeal: bool
    expires_at: datetime
    reports: tuple[str, ...]


class LedgerState:
    def __init__(self) -> None:
        self.genesis: Genesis | None = None
        self.members: dict[str, Member] = {}
        self.keys: dict[str, Verifier] = {}
        self.reports: dict[str, ReportState] = {}
        self.appeals: dict[str, AppealState] = {}
        self.ids: set[str] = set()
        self.by_subject: dict[str, list[str]] = defaultdict(list)
        self.size = 0
        self.kinds: dict[str, int] = defaultdict(int)

    # ------------------------------------------------------------------ roster
    def witnesses(self) -> list[Verifier]:
        return [self.keys[m.id] for m in self.members.values() if "witness" in m.roles]

    @property
    def threshold(self) -> int:
        return self.genesis.witness_threshold if self.genesis else 1

    def member_key(self, member: str) -> Verifier:
        key = self.keys.get(member)
        if key is None:
            raise EntryError(f"{member!r} is not a member of the consortium")
        return key

    def _has_role(self, member: str, role: str) -> None:
        if role not in self.members[member].roles:
            raise EntryError(f"member {member!r} lacks the {role!r} role")

    # ------------------------------------------------------------------ checking and applying
    def check(self, entry: Entry) -> Any:
        """Raises EntryError unless ``entry`` may be appended next; returns its typed body."""
        body = check_shape(entry)
        if entry.id in self.ids:
            raise EntryError(f"entry id {entry.id} is already on the log")
        if self.genesis is None:
            if not isinstance(body, Genesis):
                raise EntryError("the first entry of a log is its genesis")
            founders = {m.id: m for m in body.members}
            if entry.member not in founders or "admin" not in founders[entry.member].roles:
                raise EntryError("the genesis is filed by one of the founding admins")
            verify_signature(entry, Verifier.parse(founders[entry.member].key))
            return body
        if isinstance(body, Genesis):
            raise EntryError("a log has one genesis")
        verify_signature(entry, self.member_key(entry.member))
        if isinstance(body, Membership):
            self._has_role(entry.member, "admin")
            exists = body.member.id in self.members
            if body.action == "add" and exists:
                raise EntryError(f"{body.member.id!r} is already a member")
            if body.action != "add" and not exists:
                raise EntryError(f"{body.member.id!r} is not a member")
            if body.action == "remove" and body.member.id == entry.member:
                raise EntryError("an admin cannot remove itself")
        elif isinstance(body, Report):
            self._has_role(entry.member, "reporter")
            assert self.genesis is not None
            longest = entry.time + timedelta(days=self.genesis.max_expiry_days)
            if parse_time(body.expires_at, "expires_at") > longest:
                raise EntryError(f"expires_at: at most {self.genesis.max_expiry_days} days after filing")
        elif isinstance(body, Retraction):
            report = self._report(body.report)
            if report.member != entry.member:
                raise EntryError("only the member that filed a report retracts it")
            if report.retracted_at or report.overturned_at:
                raise EntryError("that report is already withdrawn")
        elif isinstance(body, AppealOpened):
            report = self._report(body.report)
            if report.retracted_at or report.overturned_at:
                raise EntryError("that report is already withdrawn")
            if any(self.appeals[a].outcome is None for a in report.appeals):
                raise EntryError("an appeal on that report is already open")
        elif isinstance(body, AppealDecided):
            appeal = self.appeals.get(body.appeal)
            if appeal is None:
                raise EntryError(f"no appeal {body.appeal} on the log")
            if appeal.outcome is not None:
                raise EntryError("that appeal is already decided")
            filer = self.reports[appeal.report].member
            if entry.member != filer:
                if entry.time <= appeal.deadline:
                    raise EntryError("the filer decides an appeal; admins may only after its deadline")
                self._has_role(entry.member, "admin")
        elif isinstance(body, Confirmation):
            report = self._report(body.report)
            if report.member == entry.member:
                raise EntryError("a member does not confirm its own report")
            if entry.member in report.confirmed_by:
                raise EntryError("already confirmed by this member")
        return body

    def _report(self, report_id: str) -> ReportState:
        report = self.reports.get(report_id)
        if report is None:
            raise EntryError(f"no report {report_id} on the log")
        return report

    def apply(self, entry: Entry, body: Any, index: int) -> None:
        """Folds an entry that passed ``check`` (or was verified earlier) into the state."""
        at = entry.time
        self.ids.add(entry.id)
        self.kinds[entry.kind] += 1
        self.size = index + 1
        if isinstance(body, Genesis):
            self.genesis = body
            for member in body.members:
                self._set_member(member)
        elif isinstance(body, Membership):
            if body.action == "remove":
                self.members.pop(body.member.id, None)
                self.keys.pop(body.member.id, None)
            else:
                self._set_member(body.member)
        elif isinstance(body, Report):
            self.reports[entry.id] = ReportState(
                entry.id, index, entry.member, at, body, parse_time(body.expires_at, "expires_at")
            )
            self.by_subject[body.subject].append(entry.id)
        elif isinstance(body, Retraction):
            self.reports[body.report].retracted_at = at
        elif isinstance(body, AppealOpened):
            assert self.genesis is not None
            deadline = at + timedelta(days=self.genesis.appeal_response_days)
            self.appeals[entry.id] = AppealState(entry.id, index, body.report, entry.member, at, deadline)
            self.reports[body.report].appeals.append(entry.id)
        elif isinstance(body, AppealDecided):
            appeal = self.appeals[body.appeal]
            appeal.outcome, appeal.decided_by, appeal.decided_at = body.outcome, entry.member, at
            if body.outcome == "overturned":
                self.reports[appeal.report].overturned_at = at
        elif isinstance(body, Confirmation):
            self.reports[body.report].confirmed_by.add(entry.member)

    def _set_member(self, member: Member) -> None:
        self.members[member.id] = member
        self.keys[member.id] = Verifier.parse(member.key)

    def admit(self, entry: Entry, index: int) -> Any:
        body = self.check(entry)
        self.apply(entry, body, index)
        return body

    # ------------------------------------------------------------------ reading
    def status(self, report: ReportState, now: datetime) -> str:
        if report.retracted_at is not None:
            return "retracted"
        if report.overturned_at is not None:
            return "overturned"
        if report.expires_at <= now:
            return "expired"
        open_appeals = [self.appeals[a] for a in report.appeals if self.appeals[a].outcome is None]
        if open_appeals:
            return SUSPENDED if any(a.deadline < now for a in open_appeals) else UNDER_APPEAL
        return ACTIVE

    def hits(self, now: datetime, tokens: set[str] | None = None) -> dict[str, Hit]:
        """Subject token → what live reports say about it (only ``tokens``, when given)."""
        subjects = self.by_subject.keys() if tokens is None else (t for t in tokens if t in self.by_subject)
        found: dict[str, Hit] = {}
        for token in subjects:
            live = [
                (r, s)
                for r in (self.reports[i] for i in self.by_subject[token])
                if (s := self.status(r, now)) in HIT_STATUSES
            ]
            if not live:
                continue
            found[token] = Hit(
                token=token,
                reporters=tuple(sorted({r.member for r, _ in live})),
                categories=tuple(sorted({r.report.category for r, _ in live})),
                severity=max(r.report.severity for r, _ in live),
                under_appeal=any(s == UNDER_APPEAL for _, s in live),
                expires_at=max(r.expires_at for r, _ in live),
                reports=tuple(r.id for r, _ in live),
            )
        return found

    def contributions(self, now: datetime) -> dict[str, dict[str, int]]:
        """Per member: reports filed, live now, withdrawn, and matched (corroborated or confirmed)."""
        counts: dict[str, dict[str, int]] = {
            m: {"filed": 0, "live": 0, "retracted": 0, "overturned": 0, "matched": 0} for m in self.members
        }
        for report in self.reports.values():
            row = counts.setdefault(
                report.member, {"filed": 0, "live": 0, "retracted": 0, "overturned": 0, "matched": 0}
            )
            row["filed"] += 1
            status = self.status(report, now)
            if status in HIT_STATUSES:
                row["live"] += 1
            elif status in ("retracted", "overturned"):
                row[status] += 1
            others = {self.reports[i].member for i in self.by_subject[report.report.subject]} - {report.member}
            if others or report.confirmed_by:
                row["matched"] += 1
        return counts

    def describe(self, report: ReportState, now: datetime) -> dict[str, Any]:
        """A report as the API shows it (a token, never an identifier)."""
        appeals = [self.appeals[a] for a in report.appeals]
        return {
            "id": report.id,
            "index": report.index,
            "member": report.member,
            "filed_at": report.filed_at,
            "status": self.status(report, now),
            "subject": report.report.subject,
            "subject_kind": report.report.subject_kind,
            "category": report.report.category,
            "severity": report.report.severity,
            "expires_at": report.expires_at,
            "evidence": {"hash": report.report.evidence.hash, "held_by": report.report.evidence.held_by},
            "legal_basis": report.report.legal_basis,
            "has_details": report.report.details is not None,
            "confirmed_by": sorted(report.confirmed_by),
            "appeals": [
                {
                    "id": a.id,
                    "opened_by": a.opened_by,
                    "opened_at": a.opened_at,
                    "deadline": a.deadline,
                    "outcome": a.outcome,
                    "decided_by": a.decided_by,
                    "decided_at": a.decided_at,
                }
                for a in appeals
            ],
        }
