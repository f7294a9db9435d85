"""Where ledgers and reports come from: the service's event store, event files, simulated worlds.

- ``ledger_from_store``: the ``events`` table (every event the service decided or accepted): payments,
  transfers and withdrawals in a time range, one currency. Balances are reconstructed unless the caller
  gives opening balances (``ledger.py``).
- ``ledger_from_events``: a Parquet, CSV or JSON-lines file (or a directory of Parquet parts) of events in
  the API envelope (``riskguard simulate`` writes them).
- ``ledger_from_world``: a simulated world: its events, plus ``credits.parquet`` (money arriving from
  outside) and the opening balances of ``accounts.parquet``, so balances are ``given``, exact.
- ``reports_from_file`` / ``reports_from_world``: victim reports as JSON (a list, or ``{"reports": [...]}``),
  JSON lines, CSV or Parquet with the fields of ``ReportIn``; or a world's ``victim_reports.parquet``.

A transfer leaves the platform when its ``attributes.off_platform`` is ``true`` (the envelope has no other
way to say that a payee is outside); such a transfer is an exit.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
from sqlalchemy import Engine, select

from riskguard.errors import ValidationFailed
from riskguard.privacy.fields import open_document
from riskguard.store.tables import events as events_table
from riskguard.tracing.ledger import Ledger, parse_amounts
from riskguard.tracing.money import AmountError, to_minor
from riskguard.tracing.reports import ReportIn, ms_of, parse_reports

MONEY_TYPES = ("transfer", "payment", "withdrawal")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%:z"


class _Stored(msgspec.Struct):
    event_id: str
    type: str
    occurred_at: datetime
    account_id: str
    amount: Decimal | None = None
    currency: str | None = None
    counterparty_id: str | None = None
    merchant_id: str | None = None
    card_id: str | None = None
    attributes: dict[str, Any] = {}


_decode = msgspec.json.Decoder(_Stored).decode


def _problem(where: str, message: str) -> ValidationFailed:
    return ValidationFailed([{"loc": ["ledger", where], "type": "value_error", "msg": message}])


def ledger_from_store(
    engine: Engine,
    since: datetime,
    until: datetime,
    *,
    currency: str | None = None,
    opening: dict[str, int] | None = None,
) -> Ledger:
    """Money-moving events stored between ``since`` and ``until``; with ``currency``, only that one
    (wallets are per currency), otherwise the ledger must hold one currency."""
    query = (
        select(events_table.c.payload)
        .where(events_table.c.type.in_(MONEY_TYPES))
        .where(events_table.c.occurred_at >= since, events_table.c.occurred_at <= until)
    )
    columns: dict[str, list[Any]] = {
        k: []
        for k in (
            "event_id",
            "ts",
            "kind",
            "account",
            "counterparty",
            "merchant",
            "card",
            "amount",
            "wallet",
            "off_platform",
            "age_days",
        )
    }
    currencies: set[str] = set()
    with engine.connect() as connection:
        for (payload,) in connection.execute(query):
            event = _decode(open_document(payload))  # personal fields are sealed at rest
            if event.amount is None:
                continue
            if currency is not None and event.currency != currency:
                continue
            currencies.add(event.currency or "")
            attributes = event.attributes or {}
            age = attributes.get("account_age_days")
            try:
                amount = to_minor(event.amount)
            except AmountError as exc:
                raise _problem("amount", f"event {event.event_id!r}: {exc}") from None
            columns["event_id"].append(event.event_id)
            columns["ts"].append(ms_of(event.occurred_at))
            columns["kind"].append(event.type)
            columns["account"].append(event.account_id)
            columns["counterparty"].append(event.counterparty_id)
            columns["merchant"].append(event.merchant_id)
            columns["card"].append(event.card_id)
            columns["amount"].append(amount)
            columns["wallet"].append(event.card_id is None)
            columns["off_platform"].append(attributes.get("off_platform") is True)
            columns["age_days"].append(int(age) if isinstance(age, int | float) and not isinstance(age, bool) else None)
    if len(currencies) > 1:
        raise _problem(
            "currency",
            f"the events hold several currencies ({', '.join(sorted(currencies))}); give the currency to trace",
        )
    frame = pl.DataFrame(columns, schema_overrides={"ts": pl.Int64, "amount": pl.Int64, "age_days": pl.Int64})
    return Ledger.from_frame(
        frame,
        opening=opening,
        currency=currency or (next(iter(currencies)) if currencies else "CNY"),
        source=f"event store, {since.isoformat()} to {until.isoformat()}",
    )


def _scan_events(path: Path) -> pl.LazyFrame:
    if path.is_dir():
        parts = sorted((path / "events").glob("part-*.parquet")) or sorted(path.glob("*.parquet"))
        if not parts:
            raise _problem("file", f"{path} holds no Parquet event files")
        return pl.scan_parquet(parts)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pl.scan_parquet(path)
    if suffix == ".csv":
        return pl.scan_csv(path, infer_schema=False)
    if suffix in (".jsonl", ".ndjson"):
        return pl.scan_ndjson(path, infer_schema_length=None)
    raise _problem("file", f"{path}: give a .parquet, .csv or .jsonl file of events, or a world directory")


def events_frame(path: Path) -> tuple[pl.DataFrame, set[str]]:
    """Money-moving events of an envelope file as a ledger frame, and the currencies seen."""
    if not path.exists():
        raise _problem("file", f"{path} does not exist")
    lazy = _scan_events(path)
    names = lazy.collect_schema().names()
    for column in ("event_id", "type", "occurred_at", "account_id", "amount"):
        if column not in names:
            raise _problem("file", f"{path}: the events have no {column!r} column")

    def optional(column: str) -> pl.Expr:
        return pl.col(column).cast(pl.String) if column in names else pl.lit(None, dtype=pl.String)

    raw = (
        lazy.filter(pl.col("type").is_in(MONEY_TYPES) & pl.col("amount").is_not_null())
        .select(
            event_id=pl.col("event_id").cast(pl.String),
            kind=pl.col("type").cast(pl.String),
            occurred_at=pl.col("occurred_at").cast(pl.String),
            account=pl.col("account_id").cast(pl.String),
            counterparty=optional("counterparty_id"),
            merchant=optional("merchant_id"),
            card=optional("card_id"),
            amount_text=pl.col("amount").cast(pl.String),
            currency=optional("currency"),
            attributes=optional("attributes"),
        )
        .collect()
    )
    ts = raw["occurred_at"].str.to_datetime(TIME_FORMAT, time_zone="UTC", strict=False)
    if ts.null_count():
        ts = raw["occurred_at"].str.to_datetime(time_zone="UTC", strict=False)
    if ts.null_count():
        first = int(ts.is_null().arg_max() or 0)
        raise _problem("occurred_at", f"event {raw['event_id'][first]!r}: {raw['occurred_at'][first]!r} is not a time")
    attributes = raw["attributes"].fill_null("{}")
    frame = pl.DataFrame(
        {
            "event_id": raw["event_id"],
            "ts": ts.dt.epoch("ms"),
            "kind": raw["kind"],
            "account": raw["account"],
            "counterparty": raw["counterparty"],
            "merchant": raw["merchant"],
            "card": raw["card"],
            "amount": parse_amounts(raw["amount_text"], raw["event_id"]),
            "wallet": raw["card"].is_null(),
            "off_platform": attributes.str.json_path_match("$.off_platform") == "true",
            "age_days": attributes.str.json_path_match("$.account_age_days").cast(pl.Int64, strict=False),
        }
    )
    return frame, set(raw["currency"].drop_nulls().unique().to_list())


def ledger_from_events(path: Path, *, opening: dict[str, int] | pl.DataFrame | None = None) -> Ledger:
    frame, currencies = events_frame(path)
    if len(currencies) > 1:
        raise _problem("currency", f"{path} holds several currencies ({', '.join(sorted(currencies))})")
    return Ledger.from_frame(
        frame, opening=opening, currency=next(iter(currencies), "CNY"), source=f"events file {path}"
    )


def ledger_from_world(world: Path) -> Ledger:
    """A simulated world's ledger, with its credits and exact opening balances."""
    if not (world / "world.json").exists():
        raise _problem("world", f"{world} is not a world directory (no world.json); run `riskguard simulate`")
    frame, currencies = events_frame(world)
    credits = pl.read_parquet(world / "credits.parquet")
    credit_frame = pl.DataFrame(
        {
            "event_id": credits["event_id"],
            "ts": credits["credited_at"].dt.epoch("ms"),
            "kind": pl.Series(["credit"] * credits.height, dtype=pl.String),
            "account": credits["account_id"],
            "merchant": credits["kind"],
            "amount": parse_amounts(credits["amount"], credits["account_id"]),
        }
    )
    accounts = pl.read_parquet(world / "accounts.parquet", columns=["account_id", "opening_balance"])
    opening = pl.DataFrame(
        {
            "account": accounts["account_id"],
            "opening": parse_amounts(accounts["opening_balance"], accounts["account_id"]),
        }
    )
    # credits first: at the same millisecond the simulator settles credits before debits
    combined = pl.concat([credit_frame, frame], how="diagonal_relaxed")
    return Ledger.from_frame(
        combined,
        opening=opening,
        currency=next(iter(currencies), "CNY"),
        source=f"world {world} (events, credits.parquet, opening balances of accounts.parquet)",
    )


def reports_from_world(world: Path, typology: str | None = "telecom_fraud") -> tuple[list[ReportIn], pl.DataFrame]:
    """A world's victim reports (of one typology, or all with ``None``) and the report rows (with gangs)."""
    rows = pl.read_parquet(world / "victim_reports.parquet")
    if typology is not None:
        rows = rows.filter(pl.col("typology") == typology)
    reports = [
        ReportIn(
            victim_account=row["account_id"],
            loss=Decimal(row["amount"]),
            reported_at=row["reported_at"],
            report_id=row["report_id"],
            event_ids=list(row["event_ids"]),
        )
        for row in rows.iter_rows(named=True)
    ]
    return reports, rows


def reports_from_file(path: Path) -> list[ReportIn]:
    """Reports from JSON, JSON lines, CSV or Parquet (list columns ``event_ids``/``payees``; in CSV, give
    them separated by ``;``; windows as ``window_start`` and ``window_end``)."""
    if not path.exists():
        raise ValidationFailed([{"loc": ["reports"], "type": "value_error", "msg": f"{path} does not exist"}])
    suffix = path.suffix.lower()
    loc = ("reports",)
    if suffix == ".json":
        return parse_reports(path.read_bytes(), loc=loc)
    if suffix in (".jsonl", ".ndjson"):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        try:
            return parse_reports([json.loads(line) for line in lines], loc=loc)
        except json.JSONDecodeError as exc:
            raise ValidationFailed([{"loc": list(loc), "type": "json_invalid", "msg": str(exc)}]) from None
    if suffix in (".csv", ".parquet"):
        frame = pl.read_csv(path, infer_schema=False) if suffix == ".csv" else pl.read_parquet(path)
        items = []
        for row in frame.iter_rows(named=True):
            item = {k: v for k, v in row.items() if v is not None and k not in ("window_start", "window_end")}
            for key in ("event_ids", "payees"):
                if isinstance(item.get(key), str):
                    item[key] = [p for p in item[key].split(";") if p]
            if row.get("window_start") is not None or row.get("window_end") is not None:
                item["window"] = {"start": row.get("window_start"), "end": row.get("window_end")}
            for key in ("loss", "recovered"):
                if key in item:
                    item[key] = str(item[key])
            for key in ("reported_at",):
                if isinstance(item.get(key), datetime):
                    item[key] = item[key].isoformat()
            items.append(item)
        return parse_reports(items, loc=loc)
    raise ValidationFailed(
        [{"loc": list(loc), "type": "value_error", "msg": f"{path}: give a .json, .jsonl, .csv or .parquet file"}]
    )
