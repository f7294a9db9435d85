"""Intake: complaint, loan-application and transfer events as the records the analyser links.

Everything comes in the ordinary event envelope (``events/schema.py``); what the envelope has no field
for travels in ``attributes``, as the simulator writes it:

=====================  =========================================================================
envelope field         meaning here
=====================  =========================================================================
``account_id``         the complainant or applicant (the customer)
``phone``              the customer's registered phone
``device_id``, ``ip``  the device and address the complaint or application was submitted from
``amount``             the disputed amount, the loan asked for, or the transfer's amount
``counterparty_id``    (transfers) the payee
``channel``            app, web, hotline, ...
=====================  =========================================================================

``attributes`` of a complaint: ``text`` (Chinese or English), ``demand``, ``contact_phone``,
``contact_email``, ``refund_account`` (where the customer asks the money to go), ``agent_name``,
``agent_phone``, ``agent_id_number``, ``power_of_attorney`` (true/false), ``attachment_hashes`` (a list of
digests of the supporting documents). Of a loan application: ``contact_phone``, ``contact_email``,
``employer``, ``address``, ``declared_income``, ``purpose``, ``term_months``. Every attribute is optional;
a wrong type is refused with the attribute named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import polars as pl

from riskguard.errors import ValidationFailed
from riskguard.events.schema import Event

KINDS = ("complaint", "loan_application", "transfer")
MAX_TEXT = 20_000
MAX_ATTACHMENTS = 50

_TEXT_ATTRIBUTES = (
    "text",
    "demand",
    "contact_phone",
    "contact_email",
    "refund_account",
    "agent_name",
    "agent_phone",
    "agent_id_number",
    "employer",
    "address",
    "purpose",
)
_NON_DIGIT = re.compile(r"\D")
_SPACE = re.compile(r"\s+")


def phone_key(phone: str | None) -> str | None:
    """Digits of a phone number without the +86 / 0086 country prefix (so ``+86 138-1234-5678`` and
    ``13812345678`` compare equal)."""
    if not phone:
        return None
    digits = _NON_DIGIT.sub("", phone)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11:
            digits = digits[len(prefix) :]
    return digits or None


def _plain(value: str | None) -> str | None:
    if value is None:
        return None
    folded = _SPACE.sub("", value).casefold()
    return folded or None


@dataclass(slots=True)
class Record:
    """One complaint, loan application or transfer, with what the linking needs."""

    event_id: str
    kind: str
    account: str
    at_ms: int
    registered_phone: str | None = None
    device: str | None = None
    ip: str | None = None
    channel: str | None = None
    amount: Decimal | None = None
    counterparty: str | None = None
    text: str = ""
    demand: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    refund_account: str | None = None
    agent_name: str | None = None
    agent_phone: str | None = None
    agent_id_number: str | None = None
    power_of_attorney: bool | None = None
    attachments: tuple[str, ...] = ()
    employer: str | None = None
    address: str | None = None
    declared_income: Decimal | None = None
    purpose: str | None = None

    @property
    def contact_is_third_party(self) -> bool | None:
        """Whether the contact phone is not the customer's registered one (None when either is missing)."""
        contact, own = phone_key(self.contact_phone), phone_key(self.registered_phone)
        if contact is None or own is None:
            return None
        return contact != own

    @property
    def has_agent(self) -> bool:
        return bool(self.agent_name or self.agent_phone or self.agent_id_number)

    def strong_identifiers(self) -> list[tuple[str, str]]:
        """``(kind, value)`` pairs that, shared by different customers, tie their records to one operator."""
        out: list[tuple[str, str]] = []
        if self.kind == "transfer":
            return out
        if self.contact_is_third_party:
            out.append(("phone", phone_key(self.contact_phone) or ""))
        if self.agent_phone:
            out.append(("phone", phone_key(self.agent_phone) or self.agent_phone))
        if self.contact_email:
            out.append(("email", self.contact_email.strip().casefold()))
        if self.agent_id_number:
            out.append(("agent_id", self.agent_id_number.strip().upper()))
        if self.refund_account and self.refund_account != self.account:
            out.append(("receiving_account", self.refund_account))
        for digest in self.attachments:
            out.append(("attachment", digest.strip().lower()))
        if self.device:
            out.append(("device", self.device))
        if self.kind == "loan_application" and self.address:
            address = _plain(self.address)
            if address:
                out.append(("address", address))
        return list(dict.fromkeys(out))

    def field_template(self) -> tuple[str, str, str] | None:
        """A loan application's employer, declared income and purpose: intermediaries fill the same ones."""
        if self.kind != "loan_application" or not self.employer or self.declared_income is None:
            return None
        return (_plain(self.employer) or "", str(self.declared_income), self.purpose or "")


def _fail(loc: list[Any], msg: str) -> ValidationFailed:
    return ValidationFailed([{"loc": loc, "type": "value_error", "msg": msg}])


def _decimal(value: Any, loc: list[Any]) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise _fail(loc, "must be a number or a decimal string")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _fail(loc, f"{value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise _fail(loc, "must be a finite, non-negative number")
    return number


def _attributes(attributes: Mapping[str, Any], prefix: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _TEXT_ATTRIBUTES:
        value = attributes.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _fail([*prefix, name], "must be a string")
        if len(value) > MAX_TEXT:
            raise _fail([*prefix, name], f"at most {MAX_TEXT} characters")
        out[name] = value
    poa = attributes.get("power_of_attorney")
    if poa is not None and not isinstance(poa, bool):
        raise _fail([*prefix, "power_of_attorney"], "must be true or false")
    out["power_of_attorney"] = poa
    hashes = attributes.get("attachment_hashes") or []
    if not isinstance(hashes, list) or not all(isinstance(h, str) and 0 < len(h) <= 256 for h in hashes):
        raise _fail([*prefix, "attachment_hashes"], "must be a list of digest strings (1 to 256 characters)")
    if len(hashes) > MAX_ATTACHMENTS:
        raise _fail([*prefix, "attachment_hashes"], f"at most {MAX_ATTACHMENTS} attachments")
    out["attachments"] = tuple(hashes)
    out["declared_income"] = _decimal(attributes.get("declared_income"), [*prefix, "declared_income"])
    return out


def from_fields(body: Mapping[str, Any], prefix: list[Any] | None = None) -> Record:
    """A record from an envelope given as a mapping (``attributes`` a mapping or a JSON string), as the
    event log and Parquet exports hold it; ``occurred_at`` a datetime or an ISO-8601 string."""
    prefix = prefix if prefix is not None else ["body"]
    kind = body.get("type")
    if kind not in KINDS:
        raise _fail([*prefix, "type"], f"the complaints analyser takes {', '.join(KINDS)}; got {kind!r}")
    if kind == "transfer" and not body.get("counterparty_id"):
        raise _fail([*prefix, "counterparty_id"], "required for transfers")
    occurred = body.get("occurred_at")
    if isinstance(occurred, str):
        try:
            occurred = datetime.fromisoformat(occurred)
        except ValueError:
            raise _fail([*prefix, "occurred_at"], "an ISO-8601 time with its offset") from None
    if not isinstance(occurred, datetime) or occurred.tzinfo is None:
        raise _fail([*prefix, "occurred_at"], "an ISO-8601 time with its offset")
    for name in ("event_id", "account_id"):
        if not isinstance(body.get(name), str) or not body.get(name):
            raise _fail([*prefix, name], "required")
    raw = body.get("attributes") or {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise _fail([*prefix, "attributes"], "not a JSON object") from None
    if not isinstance(raw, Mapping):
        raise _fail([*prefix, "attributes"], "must be an object")
    attrs = _attributes(raw, [*prefix, "attributes"])
    return Record(
        event_id=body["event_id"],
        kind=kind,
        account=body["account_id"],
        at_ms=int(occurred.timestamp() * 1000),
        registered_phone=body.get("phone"),
        device=body.get("device_id"),
        ip=body.get("ip"),
        channel=body.get("channel"),
        amount=_decimal(body.get("amount"), [*prefix, "amount"]),
        counterparty=body.get("counterparty_id"),
        text=attrs.get("text", ""),
        demand=attrs.get("demand"),
        contact_phone=attrs.get("contact_phone"),
        contact_email=attrs.get("contact_email"),
        refund_account=attrs.get("refund_account"),
        agent_name=attrs.get("agent_name"),
        agent_phone=attrs.get("agent_phone"),
        agent_id_number=attrs.get("agent_id_number"),
        power_of_attorney=attrs["power_of_attorney"],
        attachments=attrs["attachments"],
        employer=attrs.get("employer"),
        address=attrs.get("address"),
        declared_income=attrs["declared_income"],
        purpose=attrs.get("purpose"),
    )


def from_event(event: Event, prefix: list[Any] | None = None) -> Record:
    """A record from a validated envelope (the HTTP and Python intake)."""
    body = {
        "event_id": event.event_id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "account_id": event.account_id,
        "amount": event.amount,
        "counterparty_id": event.counterparty_id,
        "device_id": event.device_id,
        "ip": event.ip,
        "phone": event.phone,
        "channel": event.channel,
        "attributes": event.attributes,
    }
    return from_fields(body, prefix)


ENVELOPE_COLUMNS = (
    "event_id",
    "type",
    "occurred_at",
    "account_id",
    "amount",
    "counterparty_id",
    "device_id",
    "ip",
    "phone",
    "channel",
    "attributes",
)


def from_frame(frame: pl.DataFrame, kinds: Iterable[str] = KINDS) -> Iterator[Record]:
    """Records from envelope rows (a world's ``events/*.parquet``, an export): the rows of ``kinds``, in
    time order."""
    kinds = list(kinds)
    missing = [c for c in ("event_id", "type", "occurred_at", "account_id") if c not in frame.columns]
    if missing:
        raise _fail(["events"], f"columns missing: {', '.join(missing)}")
    rows = frame.filter(pl.col("type").is_in(kinds))
    for name in ENVELOPE_COLUMNS:
        if name not in rows.columns:
            rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias(name))
    if rows.schema["occurred_at"] == pl.String:
        rows = rows.with_columns(at=pl.col("occurred_at").str.to_datetime(time_zone="UTC"))
    else:
        rows = rows.with_columns(at=pl.col("occurred_at"))
    rows = rows.sort("at", maintain_order=True).drop("at")
    for index, body in enumerate(rows.select(ENVELOPE_COLUMNS).iter_rows(named=True)):
        yield from_fields(body, ["events", index])


def read_events(path: Path) -> pl.DataFrame:
    """The complaint, loan-application and transfer rows of Parquet envelope files: a world directory
    (its ``events/``), a directory of Parquet files, or one file."""
    if path.is_dir():
        parts = path / "events"
        files = sorted((parts if parts.is_dir() else path).glob("*.parquet"))
    else:
        files = [path]
    if not files or not all(f.exists() for f in files):
        raise _fail(["events"], f"{path}: no Parquet event files there")
    try:
        frame = pl.scan_parquet(files).filter(pl.col("type").is_in(list(KINDS))).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _fail(["events"], f"{path}: {exc}") from None
    return frame
