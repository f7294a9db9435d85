"""The entries members file on the log, their canonical encoding and their signatures.

Every entry is a JSON object in canonical form (keys sorted, no spaces; msgspec's ``order="sorted"``),
signed with the filing member's Ed25519 key over ``riskguard-consortium/entry/v1\\n`` followed by the
canonical encoding without the ``sig`` field. The log's leaf is the canonical encoding with the
signature, so anyone holding the roster can check who filed what, and that nobody changed it.
"""

from __future__ import annotations

import base64
import functools
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from riskguard.consortium.note import Signer, Verifier
from riskguard.consortium.privacy import PrivacyError, check_text

SIGNING_PREFIX = b"riskguard-consortium/entry/v1\n"
KINDS = ("genesis", "membership", "report", "retraction", "appeal_opened", "appeal_decided", "confirmation")
SUBJECT_KINDS = ("account", "phone", "card", "device", "payee")
CATEGORIES = (
    "mule",
    "telecom-fraud",
    "proxy-agent",
    "account-takeover",
    "fake-account",
    "loan-intermediary",
    "card-testing",
    "money-laundering",
)
ROLES = ("admin", "reporter", "witness", "tokens", "log")
MEMBER_ID = re.compile(r"^[a-z][a-z0-9-]{1,47}$")
ENTRY_ID = re.compile(r"^[0-9a-f]{32}$")
TOKEN = re.compile(r"^[0-9a-f]{64}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_ENTRY_BYTES = 16_384


class EntryError(ValueError):
    """An entry that is malformed, badly signed or not allowed by the consortium's rules."""


class Member(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: str
    name: str
    key: str  # note verifier key: id+hash+base64(0x01 || ed25519 public key)
    roles: list[str]
    url: str = ""  # where the member's node answers (witness, tokens, details)


class Genesis(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    origin: str
    log_key: str
    token_key: str  # hex of the token service's VOPRF public key (ristretto255)
    token_member: str
    members: list[Member]
    witness_threshold: int = 2
    default_expiry_days: int = 730
    max_expiry_days: int = 2190
    appeal_response_days: int = 30


class Membership(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    action: Literal["add", "update", "remove"]
    member: Member


class Evidence(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    hash: str  # SHA-256 of the evidence package the reporter keeps
    held_by: str  # the member that holds it (always the reporter)
    reference: str = ""  # the reporter's own case reference (screened: no identifiers)


class SealedDetails(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    nonce: str
    ciphertext: str


class Report(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    subject: str  # OPRF token, 64 hex
    subject_kind: Literal["account", "phone", "card", "device", "payee"]
    category: Literal[
        "mule",
        "telecom-fraud",
        "proxy-agent",
        "account-takeover",
        "fake-account",
        "loan-intermediary",
        "card-testing",
        "money-laundering",
    ]
    severity: int
    evidence: Evidence
    legal_basis: str
    expires_at: str
    details: SealedDetails | None = None


class Retraction(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    report: str
    reason: str


class AppealOpened(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    report: str
    grounds: Literal["mistaken_identity", "victim_not_mule", "account_resolved", "other"]
    note: str = ""


class AppealDecided(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    appeal: str
    outcome: Literal["upheld", "overturned"]
    reason: str


class Confirmation(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    report: str
    note: str = ""


BODY_TYPES: dict[str, type[msgspec.Struct]] = {
    "genesis": Genesis,
    "membership": Membership,
    "report": Report,
    "retraction": Retraction,
    "appeal_opened": AppealOpened,
    "appeal_decided": AppealDecided,
    "confirmation": Confirmation,
}


class Entry(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    kind: Literal["genesis", "membership", "report", "retraction", "appeal_opened", "appeal_decided", "confirmation"]
    id: str
    member: str
    at: str
    body: dict[str, Any]
    sig: str = ""

    def payload(self) -> bytes:
        """What the filer signs: the prefix and the canonical entry without its signature."""
        return SIGNING_PREFIX + canonical(msgspec.structs.replace(self, sig=""))

    def typed(self) -> Any:
        """The body as its kind's struct (EntryError if it does not fit)."""
        try:
            return msgspec.convert(self.body, BODY_TYPES[self.kind])
        except msgspec.ValidationError as exc:
            raise EntryError(f"{self.kind} body: {exc}") from None

    @property
    def time(self) -> datetime:
        return parse_time(self.at, "at")


def canonical(value: Any) -> bytes:
    return msgspec.json.encode(value, order="sorted")


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@functools.lru_cache(maxsize=4096)
def _parse_utc(text: str) -> datetime | None:
    if not _TIME.match(text):
        return None
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_time(text: str, field: str) -> datetime:
    moment = _parse_utc(text) if isinstance(text, str) else None
    if moment is None:
        raise EntryError(f"{field}: a UTC time written as 2026-11-25T10:00:00Z")
    return moment


def new_entry_id() -> str:
    return secrets.token_hex(16)


def sign_entry(
    signer: Signer,
    kind: str,
    body: msgspec.Struct | dict[str, Any],
    *,
    at: datetime | None = None,
    entry_id: str | None = None,
) -> Entry:
    """A new entry filed by ``signer`` (whose key name is the member id), checked and signed."""
    builtins = msgspec.to_builtins(body) if isinstance(body, msgspec.Struct) else body
    entry = Entry(
        kind=kind,  # type: ignore[arg-type]
        id=entry_id or new_entry_id(),
        member=signer.name,
        at=format_time(at or datetime.now(UTC)),
        body=builtins,
    )
    check_shape(entry)
    signature = base64.b64encode(signer.sign(entry.payload())).decode()
    return msgspec.structs.replace(entry, sig=signature)


def encode(entry: Entry) -> bytes:
    return canonical(entry)


def decode(data: bytes) -> Entry:
    """Parses a leaf; refuses anything that is not the canonical encoding of a well-formed entry."""
    if len(data) > MAX_ENTRY_BYTES:
        raise EntryError(f"an entry is at most {MAX_ENTRY_BYTES} bytes")
    try:
        entry = msgspec.json.decode(data, type=Entry)
    except msgspec.DecodeError as exc:
        raise EntryError(f"not an entry: {exc}") from None
    if canonical(entry) != data:
        raise EntryError("an entry must be in canonical form (sorted keys, no spaces)")
    return entry


def verify_signature(entry: Entry, key: Verifier) -> None:
    try:
        signature = base64.b64decode(entry.sig, validate=True)
    except ValueError:
        raise EntryError("sig: not base64") from None
    if entry.member != key.name or not key.verify(entry.payload(), signature):
        raise EntryError(f"the signature of entry {entry.id} is not {entry.member!r}'s")


def check_shape(entry: Entry) -> Any:
    """Checks what an entry says on its own (no roster, no history); returns the typed body."""
    if not ENTRY_ID.match(entry.id):
        raise EntryError("id: 32 lower-case hex characters")
    if not MEMBER_ID.match(entry.member):
        raise EntryError("member: lower-case letters, digits and '-'")
    entry.time  # noqa: B018 - validates the time
    body = entry.typed()
    try:
        _check_body(entry, body)
    except PrivacyError as exc:
        raise EntryError(str(exc)) from None
    return body


def _check_member(member: Member) -> None:
    if not MEMBER_ID.match(member.id):
        raise EntryError(f"member id {member.id!r}: lower-case letters, digits and '-'")
    check_text("member.name", member.name, max_length=120, required=True)
    verifier = _verifier(member.key)
    if verifier.name != member.id:
        raise EntryError(f"the key of member {member.id!r} is named {verifier.name!r}")
    unknown = set(member.roles) - set(ROLES)
    if unknown or not member.roles:
        raise EntryError(f"member {member.id!r}: roles are some of {', '.join(ROLES)}")


def _verifier(text: str) -> Verifier:
    from riskguard.consortium.note import NoteError

    try:
        return Verifier.parse(text)
    except NoteError as exc:
        raise EntryError(str(exc)) from None


def _check_body(entry: Entry, body: Any) -> None:
    if isinstance(body, Report):
        if not TOKEN.match(body.subject):
            raise EntryError("subject: a 64-hex-character token from the token service, never an identifier")
        if not 1 <= body.severity <= 5:
            raise EntryError("severity: 1 (low) to 5 (critical)")
        if not SHA256_HEX.match(body.evidence.hash):
            raise EntryError("evidence.hash: the SHA-256 (64 hex) of the evidence package")
        if body.evidence.held_by != entry.member:
            raise EntryError("evidence.held_by: evidence stays with the reporting member")
        check_text("evidence.reference", body.evidence.reference, max_length=64)
        check_text("legal_basis", body.legal_basis, max_length=200, required=True)
        if parse_time(body.expires_at, "expires_at") <= entry.time:
            raise EntryError("expires_at: after the report's time")
    elif isinstance(body, Retraction):
        _check_ref(body.report, "report")
        check_text("reason", body.reason, required=True)
    elif isinstance(body, AppealOpened):
        _check_ref(body.report, "report")
        check_text("note", body.note)
    elif isinstance(body, AppealDecided):
        _check_ref(body.appeal, "appeal")
        check_text("reason", body.reason, required=True)
    elif isinstance(body, Confirmation):
        _check_ref(body.report, "report")
        check_text("note", body.note)
    elif isinstance(body, Membership):
        _check_member(body.member)
    elif isinstance(body, Genesis):
        check_text("origin", body.origin, max_length=120, required=True)
        if " " in body.origin:
            raise EntryError("origin: no spaces (it names the log in its checkpoints)")
        _verifier(body.log_key)
        if not re.fullmatch(r"[0-9a-f]{64}", body.token_key):
            raise EntryError("token_key: the token service's public key, 64 hex characters")
        ids = [m.id for m in body.members]
        if len(set(ids)) != len(ids) or not ids:
            raise EntryError("members: one or more, each id once")
        for member in body.members:
            _check_member(member)
        if body.token_member not in ids:
            raise EntryError("token_member: a member of the roster")
        witnesses = sum("witness" in m.roles for m in body.members)
        if not 1 <= body.witness_threshold <= max(witnesses, 1):
            raise EntryError("witness_threshold: from 1 to the number of witnesses in the roster")
        if not 1 <= body.default_expiry_days <= body.max_expiry_days:
            raise EntryError("default_expiry_days: from 1 to max_expiry_days")
        if not 1 <= body.appeal_response_days <= 365:
            raise EntryError("appeal_response_days: from 1 to 365")


def _check_ref(value: str, field: str) -> None:
    if not ENTRY_ID.match(value):
        raise EntryError(f"{field}: the id of an entry on the log (32 hex)")


def expiry(at: datetime, days: int) -> str:
    return format_time(at + timedelta(days=days))
