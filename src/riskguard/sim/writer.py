"""Writes a world as Parquet files, and reads its events back as API envelopes.

Layout of a world directory::

    world.json                  configuration, world id, counts, file list (no clock readings: deterministic)
    events/part-00000.parquet   the events, in time order, one row per API request body (see ``EVENT_COLUMNS``)
    labels.parquet              fraud labels: one row per fraud event and per gang member entity
    victim_reports.parquet      what victims reported: when, which payments, how much
    complaints.parquet          every complaint, with its text and whether an agent filed it
    truth.parquet               the gangs and their members (accounts, devices, IPs, phones, cards, shops)
    accounts.parquet            account profiles, opening and closing wallet balances
    merchants.parquet           shops and their categories
    credits.parquet             money from outside the event stream: salaries, loans, bonuses, inbound transfers

Events are the API envelope exactly (``occurred_at`` an ISO-8601 string in Beijing time, ``amount`` a
decimal string, ``attributes`` a JSON object in a string), so each row replays through ``POST
/v1/decisions`` unchanged (``iter_events``). The other files use typed columns (timestamps in UTC).
Every file is written with fixed settings, so the same world gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from riskguard.sim import ids
from riskguard.sim.config import TYPOLOGIES
from riskguard.sim.context import CREDIT_KINDS
from riskguard.sim.population import CATEGORY_NAMES
from riskguard.sim.table import (
    CHANNELS,
    DEMANDS,
    EVENT_TYPES,
    LOAN_PURPOSES,
    LOCALES,
    PASSWORD_METHODS,
    PROFILE_FIELDS,
    PROMO_CODES,
    ROLES,
    EventTable,
    T,
)
from riskguard.sim.texts import REGIONS
from riskguard.sim.world import World

FORMAT_VERSION = 1
EVENT_COLUMNS = (
    "event_id",
    "type",
    "occurred_at",
    "account_id",
    "amount",
    "currency",
    "counterparty_id",
    "merchant_id",
    "device_id",
    "ip",
    "phone",
    "card_id",
    "channel",
    "locale",
    "attributes",
)
FILES = (
    "labels.parquet",
    "victim_reports.parquet",
    "complaints.parquet",
    "truth.parquet",
    "accounts.parquet",
    "merchants.parquet",
    "credits.parquet",
)
#: roles of gang members that are people the gang uses, not members: never labelled fraud
NOT_PERPETRATORS = frozenset({"client", "customer"})
#: event types that carry account_age_days
AGED_TYPES = (T["payment"], T["transfer"], T["withdrawal"], T["loan_application"])
_WRITE = {"compression": "zstd", "compression_level": 3, "statistics": True, "row_group_size": 256_000}


def _utc(ms: np.ndarray) -> pl.Series:
    return pl.Series(ms.astype(np.int64)).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")


def decimal_strings(fen: np.ndarray) -> pl.Series:
    """Integer fen → ``"1234.50"`` (null for -1)."""
    v = pl.Series(fen.astype(np.int64))
    text = pl.select((v // 100).cast(pl.String) + "." + (v % 100).cast(pl.String).str.zfill(2)).to_series()
    return text.set(v < 0, None)


def _lookup(table: list[str], codes: np.ndarray) -> pl.Series:
    """``table[code]`` per row, null where the code is -1."""
    index = pl.Series(codes.astype(np.int64))
    index = index.set(index < 0, None)
    return pl.Series(table, dtype=pl.String).gather(index)


def _json_strings(values: list[str]) -> list[str]:
    return [json.dumps(v, ensure_ascii=False) for v in values]


def _present(name: str) -> pl.Expr:
    """The column, null where it holds the "absent" marker -1."""
    return pl.when(pl.col(name) >= 0).then(pl.col(name))


def _gather(table: list[str], name: str) -> pl.Expr:
    return pl.lit(pl.Series(table, dtype=pl.String)).gather(_present(name))


def _ident(name: str, kind: str) -> pl.Expr:
    prefix, width = ids.FORMATS[kind]
    return pl.lit(prefix) + _present(name).cast(pl.String).str.zfill(width)


def _bool(name: str) -> pl.Expr:
    return pl.when(pl.col(name) == 1).then(pl.lit("true")).when(pl.col(name) == 0).then(pl.lit("false"))


def _int(name: str) -> pl.Expr:
    return _present(name).cast(pl.String)


def _quoted(expr: pl.Expr) -> pl.Expr:
    return pl.lit('"') + expr + pl.lit('"')


def _phone(name: str) -> pl.Expr:
    return pl.lit("+86") + _present(name).cast(pl.String)


def _ip(name: str) -> pl.Expr:
    v = _present(name)
    octets = [(v // (1 << shift) % 256).cast(pl.String) for shift in (24, 16, 8, 0)]
    return pl.concat_str(octets, separator=".")


def _decimal(name: str) -> pl.Expr:
    v = _present(name)
    return (v // 100).cast(pl.String) + pl.lit(".") + (v % 100).cast(pl.String).str.zfill(2)


class _Formatter:
    """Turns rows of the world's event table into envelope columns, a part at a time, in one polars query
    (polars evaluates the columns in parallel)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.salt = world.config.seed
        self.texts_json = _json_strings(world.texts.values)
        self.width = max(9, len(str(len(world.events))))

    def accounts(self, values: np.ndarray) -> pl.Series:
        return ids.id_strings(values, "account", self.salt)

    def events(self, start: int, stop: int) -> pl.DataFrame:
        w, salt = self.world, self.salt
        e = EventTable({k: v[start:stop] for k, v in w.events.cols.items()})
        kind, device, merchant = e["type"], e["device"], e["merchant"]
        has_device = device >= 0
        flags = np.where(has_device, 0, -1).astype(np.int8)
        opened = w.accounts["opened_ms"][e["account"]]
        raw = pl.DataFrame(
            {
                "position": np.arange(start, stop, dtype=np.int64),
                "type": kind,
                "ts": e["ts"] + 8 * 3_600_000,  # Beijing wall time; the offset is appended as text
                "account": ids.scramble(e["account"], "account", salt),
                "amount": e["amount"],
                "counterparty": ids.scramble(e["counterparty"], "account", salt),
                "merchant": ids.scramble(merchant, "merchant", salt),
                "device": ids.scramble(device, "device", salt),
                "ip": e["ip"],
                "phone": e["phone"],
                "card": ids.scramble(e["card"], "card", salt),
                "channel": e["channel"],
                "locale": e["locale"],
                "success": e["success"],
                "emulator": np.where(has_device, w.device_emulator[np.maximum(device, 0)], flags),
                "rooted": np.where(has_device, w.device_rooted[np.maximum(device, 0)], flags),
                "carrier": np.where(
                    np.isin(kind, (T["signup"], T["profile_change"], T["device_bind"])) & (e["phone"] >= 0),
                    ids.is_virtual(e["phone"]).astype(np.int8),
                    -1,
                ),
                "age": np.where(np.isin(kind, AGED_TYPES), (e["ts"] - opened) // 86_400_000, -1),
                "category": np.where(merchant >= 0, w.merchant_category[np.maximum(merchant, 0)], -1),
                "remark": e["remark"],
                "on_call": e["on_call"],
                "screen_sharing": e["screen_sharing"],
                "payee_name_matches": e["payee_name_matches"],
                "promo_code": e["promo_code"],
                "field": e["field"],
                "method": e["method"],
                "contact_phone": e["contact_phone"],
                "declared_income": e["declared_income"],
                "employer": e["employer"],
                "address": e["address"],
                "purpose": e["purpose"],
                "term_months": e["term_months"],
                "text": e["text"],
                "demand": e["demand"],
                "refund_account": ids.scramble(e["refund_account"], "account", salt),
            }
        )
        texts = self.texts_json
        attributes = [
            ("success", _bool("success")),
            ("emulator", _bool("emulator")),
            ("rooted", _bool("rooted")),
            ("phone_carrier_type", _gather(_json_strings(["mno", "virtual"]), "carrier")),
            ("account_age_days", _int("age")),
            ("merchant_category", _gather(_json_strings(list(CATEGORY_NAMES)), "category")),
            ("remark", _gather(texts, "remark")),
            ("on_call", _bool("on_call")),
            ("screen_sharing", _bool("screen_sharing")),
            ("payee_name_matches", _bool("payee_name_matches")),
            ("promo_code", _gather(_json_strings(list(PROMO_CODES)), "promo_code")),
            ("field", _gather(_json_strings(list(PROFILE_FIELDS)), "field")),
            ("method", _gather(_json_strings(list(PASSWORD_METHODS)), "method")),
            ("contact_phone", _quoted(_phone("contact_phone"))),
            ("declared_income", _int("declared_income")),
            ("employer", _gather(texts, "employer")),
            ("address", _gather(texts, "address")),
            ("purpose", _gather(_json_strings(list(LOAN_PURPOSES)), "purpose")),
            ("term_months", _int("term_months")),
            ("text", _gather(texts, "text")),
            ("demand", _gather(_json_strings(list(DEMANDS)), "demand")),
            ("refund_account", _quoted(_ident("refund_account", "account"))),
        ]
        body = pl.concat_str(
            [pl.lit(f'"{key}":') + value for key, value in attributes], separator=",", ignore_nulls=True
        )
        return raw.select(
            event_id=pl.lit(w.world_id + "-") + pl.col("position").cast(pl.String).str.zfill(self.width),
            type=_gather(list(EVENT_TYPES), "type"),
            occurred_at=pl.col("ts").cast(pl.Datetime("ms")).dt.strftime("%Y-%m-%dT%H:%M:%S%.3f") + pl.lit("+08:00"),
            account_id=_ident("account", "account"),
            amount=_decimal("amount"),
            currency=pl.when(pl.col("amount") >= 0).then(pl.lit("CNY")),
            counterparty_id=_ident("counterparty", "account"),
            merchant_id=_ident("merchant", "merchant"),
            device_id=_ident("device", "device"),
            ip=_ip("ip"),
            phone=_phone("phone"),
            card_id=_ident("card", "card"),
            channel=_gather(list(CHANNELS), "channel"),
            locale=_gather(list(LOCALES), "locale"),
            attributes=pl.lit("{") + body + pl.lit("}"),
        )


def write_world(world: World, out: Path, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Writes every file of ``world`` under ``out`` (created if needed; earlier world files replaced)."""
    out.mkdir(parents=True, exist_ok=True)
    parts_dir = out / "events"
    parts_dir.mkdir(exist_ok=True)
    for old in parts_dir.glob("part-*.parquet"):
        old.unlink()
    fmt = _Formatter(world)
    n = len(world.events)
    step = world.config.part_rows
    parts = max(1, -(-n // step))
    for part in range(parts):
        if progress:
            progress("writing events", part, parts)
        frame = fmt.events(part * step, min(n, (part + 1) * step))
        frame.write_parquet(parts_dir / f"part-{part:05d}.parquet", **_WRITE)
    if progress:
        progress("writing events", parts, parts)
    tables = {
        "labels.parquet": _labels(world, fmt),
        "victim_reports.parquet": _reports(world, fmt),
        "complaints.parquet": _complaints(world, fmt),
        "truth.parquet": _truth(world, fmt),
        "accounts.parquet": _accounts(world, fmt),
        "merchants.parquet": _merchants(world, fmt),
        "credits.parquet": _credits(world, fmt),
    }
    for name, frame in tables.items():
        frame.write_parquet(out / name, **_WRITE)
    summary = _summary(world, parts, {name: frame.height for name, frame in tables.items()})
    (out / "world.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def _event_ids(world: World, fmt: _Formatter, positions: np.ndarray) -> pl.Series:
    p = pl.Series(positions.astype(np.int64))
    text = pl.select(pl.lit(world.world_id + "-") + p.cast(pl.String).str.zfill(fmt.width)).to_series()
    return text.set(p < 0, None)


def _gang_ids(world: World, gangs: np.ndarray) -> pl.Series:
    return _lookup([g.id for g in world.gangs], gangs)


def _labels(world: World, fmt: _Formatter) -> pl.DataFrame:
    e = world.events
    fraud = np.flatnonzero(e["typology"] >= 0)
    typology = e["typology"][fraud]
    events = pl.DataFrame(
        {
            "label_kind": pl.Series(["event"] * len(fraud), dtype=pl.String),
            "event_id": _event_ids(world, fmt, fraud),
            "entity_kind": pl.Series([None] * len(fraud), dtype=pl.String),
            "entity_value": pl.Series([None] * len(fraud), dtype=pl.String),
            "label": pl.Series(["fraud"] * len(fraud), dtype=pl.String),
            "typology": _lookup(list(TYPOLOGIES), typology),
            "gang_id": _gang_ids(world, e["gang"][fraud]),
            "role": _lookup(list(ROLES), e["role"][fraud]),
            "loss": pl.Series(e["loss"][fraud] == 1),
            "amount": decimal_strings(e["amount"][fraud]),
            "labelled_at": _utc(np.maximum(e["known_at"][fraud], e["ts"][fraud])),
        }
    )
    # a gang's members are known from the moment the first of its events comes out
    exposed: dict[int, int] = {}
    gangs, known = e["gang"][fraud], e["known_at"][fraud]
    for gang in np.unique(gangs):
        exposed[int(gang)] = int(known[gangs == gang].min())
    members = [m for m in world.members if m.role not in NOT_PERPETRATORS]
    values = _member_values(world, fmt, members)
    entities = pl.DataFrame(
        {
            "label_kind": pl.Series(["entity"] * len(members), dtype=pl.String),
            "event_id": pl.Series([None] * len(members), dtype=pl.String),
            "entity_kind": pl.Series([m.kind for m in members], dtype=pl.String),
            "entity_value": values,
            "label": pl.Series(["fraud"] * len(members), dtype=pl.String),
            "typology": pl.Series([world.gangs[m.gang].typology for m in members], dtype=pl.String),
            "gang_id": pl.Series([world.gangs[m.gang].id for m in members], dtype=pl.String),
            "role": pl.Series([m.role for m in members], dtype=pl.String),
            "loss": pl.Series([False] * len(members)),
            "amount": pl.Series([None] * len(members), dtype=pl.String),
            "labelled_at": _utc(
                np.array(
                    [max(m.since_ms, exposed.get(m.gang, m.since_ms + 30 * 86_400_000)) for m in members],
                    dtype=np.int64,
                )
            ),
        }
    )
    return pl.concat([events, entities])


def _member_values(world: World, fmt: _Formatter, members: list[Any]) -> pl.Series:
    out = pl.Series([None] * len(members), dtype=pl.String)
    kinds = np.array([m.kind for m in members])
    values = np.array([m.value for m in members], dtype=np.int64)
    formatters = {
        "account": fmt.accounts,
        "device": lambda v: ids.id_strings(v, "device", fmt.salt),
        "card": lambda v: ids.id_strings(v, "card", fmt.salt),
        "merchant": lambda v: ids.id_strings(v, "merchant", fmt.salt),
        "ip": ids.ip_strings,
        "phone": ids.phone_strings,
    }
    for kind, format_ in formatters.items():
        where = np.flatnonzero(kinds == kind)
        if len(where):
            out = out.scatter(where, format_(values[where]))
    return out


def _reports(world: World, fmt: _Formatter) -> pl.DataFrame:
    e = world.events
    rows = []
    for number, report in enumerate(sorted(world.reports, key=lambda r: (r.reported_ms, r.account))):
        positions = report.events
        rows.append(
            {
                "report_id": f"{world.world_id}-r{number:06d}",
                "reported_ms": report.reported_ms,
                "account": report.account,
                "typology": report.typology,
                "script": report.script,
                "gang": report.gang,
                "positions": positions,
                "amount_fen": int(e["amount"][positions].sum()),
            }
        )
    rows_positions = [r["positions"] for r in rows]
    return pl.DataFrame(
        {
            "report_id": pl.Series([r["report_id"] for r in rows], dtype=pl.String),
            "reported_at": _utc(np.array([r["reported_ms"] for r in rows], dtype=np.int64)),
            "account_id": fmt.accounts(np.array([r["account"] for r in rows], dtype=np.int64)),
            "typology": pl.Series([r["typology"] for r in rows], dtype=pl.String),
            "script": pl.Series([r["script"] for r in rows], dtype=pl.String),
            "gang_id": pl.Series([world.gangs[r["gang"]].id for r in rows], dtype=pl.String),
            "event_ids": pl.Series(
                [_event_ids(world, fmt, p).to_list() for p in rows_positions], dtype=pl.List(pl.String)
            ),
            "payees": pl.Series(
                [[v for v in fmt.accounts(e["counterparty"][p]).to_list() if v is not None] for p in rows_positions],
                dtype=pl.List(pl.String),
            ),
            "payments": pl.Series([len(p) for p in rows_positions], dtype=pl.Int64),
            "amount": decimal_strings(np.array([r["amount_fen"] for r in rows], dtype=np.int64)),
        }
    )


def _complaints(world: World, fmt: _Formatter) -> pl.DataFrame:
    e = world.events
    rows = np.flatnonzero(e["type"] == T["complaint"])
    sub = EventTable({k: v[rows] for k, v in e.cols.items()})
    return pl.DataFrame(
        {
            "event_id": _event_ids(world, fmt, rows),
            "occurred_at": _utc(sub["ts"]),
            "account_id": fmt.accounts(sub["account"]),
            "phone": ids.phone_strings(sub["phone"]),
            "contact_phone": ids.phone_strings(sub["contact_phone"]),
            "channel": _lookup(list(CHANNELS), sub["channel"]),
            "device_id": ids.id_strings(sub["device"], "device", fmt.salt),
            "ip": ids.ip_strings(sub["ip"]),
            "text": _lookup(world.texts.values, sub["text"]),
            "demand": _lookup(list(DEMANDS), sub["demand"]),
            "amount": decimal_strings(sub["amount"]),
            "refund_account": fmt.accounts(sub["refund_account"]),
            "by_agent": pl.Series(sub["typology"] >= 0),
            "gang_id": _gang_ids(world, sub["gang"]),
        }
    )


def _truth(world: World, fmt: _Formatter) -> pl.DataFrame:
    members = world.members
    return pl.DataFrame(
        {
            "gang_id": pl.Series([world.gangs[m.gang].id for m in members], dtype=pl.String),
            "typology": pl.Series([world.gangs[m.gang].typology for m in members], dtype=pl.String),
            "gang_details": pl.Series(
                [json.dumps(world.gangs[m.gang].details, sort_keys=True) for m in members], dtype=pl.String
            ),
            "role": pl.Series([m.role for m in members], dtype=pl.String),
            "entity_kind": pl.Series([m.kind for m in members], dtype=pl.String),
            "entity_value": _member_values(world, fmt, members),
            "since": _utc(np.array([m.since_ms for m in members], dtype=np.int64)),
        }
    )


def _accounts(world: World, fmt: _Formatter) -> pl.DataFrame:
    a = world.accounts
    n = len(a["opened_ms"])
    pop = world.population
    income = np.zeros(n, dtype=np.int64)
    income[: pop.n] = pop.income_fen
    employer = np.full(n, -1, dtype=np.int64)
    employer[: pop.n] = pop.employer
    flags = np.zeros(n, dtype=bool)
    dormant, seller = flags.copy(), flags.copy()
    dormant[: pop.n], seller[: pop.n] = pop.dormant, pop.seller
    return pl.DataFrame(
        {
            "account_id": fmt.accounts(np.arange(n, dtype=np.int64)),
            "opened_at": _utc(a["opened_ms"]),
            "region": _lookup([r[0] for r in REGIONS], a["region"]),
            "phone": ids.phone_strings(a["phone"]),
            "home_ip": ids.ip_strings(a["home_ip"]),
            "device_id": ids.id_strings(a["device"], "device", fmt.salt),
            "second_device_id": ids.id_strings(a["device2"], "device", fmt.salt),
            "card_id": ids.id_strings(a["card"], "card", fmt.salt),
            "second_card_id": ids.id_strings(a["card2"], "card", fmt.salt),
            "monthly_income": decimal_strings(income),
            "employer": _lookup(pop.employer_names, employer),
            "dormant": pl.Series(dormant),
            "seller": pl.Series(seller),
            "opening_balance": decimal_strings(a["opening_fen"]),
            "closing_balance": decimal_strings(a["closing_fen"]),
        }
    )


def _merchants(world: World, fmt: _Formatter) -> pl.DataFrame:
    count = len(world.merchant_category)
    region = np.full(count, -1, dtype=np.int64)
    region[: len(world.population.merchants.region)] = world.population.merchants.region
    return pl.DataFrame(
        {
            "merchant_id": ids.id_strings(np.arange(count, dtype=np.int64), "merchant", fmt.salt),
            "category": _lookup(list(CATEGORY_NAMES), world.merchant_category),
            "region": _lookup([r[0] for r in REGIONS], region),
        }
    )


def _credits(world: World, fmt: _Formatter) -> pl.DataFrame:
    c = world.credits
    return pl.DataFrame(
        {
            "credited_at": _utc(c["ts"]),
            "account_id": fmt.accounts(c["account"]),
            "amount": decimal_strings(c["amount"]),
            "kind": _lookup(list(CREDIT_KINDS), c["kind"]),
            "event_id": _event_ids(world, fmt, c["ref"]),
            "typology": _lookup(list(TYPOLOGIES), c["typology"]),
            "gang_id": _gang_ids(world, c["gang"]),
        }
    )


def _summary(world: World, parts: int, rows: dict[str, int]) -> dict[str, Any]:
    e = world.events
    types, type_counts = np.unique(e["type"], return_counts=True)
    typologies, typology_counts = np.unique(e["typology"][e["typology"] >= 0], return_counts=True)
    return {
        "format_version": FORMAT_VERSION,
        "generator": "riskguard.sim",
        "world_id": world.world_id,
        "config": world.config.canonical(),
        "timezone": "Asia/Shanghai (+08:00)",
        "events": len(e),
        "fraud_events": int((e["typology"] >= 0).sum()),
        "events_by_type": {EVENT_TYPES[int(t)]: int(c) for t, c in zip(types, type_counts, strict=True)},
        "fraud_events_by_typology": {
            TYPOLOGIES[int(t)]: int(c) for t, c in zip(typologies, typology_counts, strict=True)
        },
        "accounts": len(world.accounts["opened_ms"]),
        "gangs": [{"gang_id": g.id, "typology": g.typology, **g.details} for g in world.gangs],
        "victim_reports": len(world.reports),
        "declined_for_funds": world.dropped_debits,
        "event_parts": parts,
        "rows": rows,
    }


def read_events(world_dir: Path) -> pl.DataFrame:
    """All events of a world, in time order."""
    parts = sorted((world_dir / "events").glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"{world_dir} holds no events/part-*.parquet: is it a world directory?")
    return pl.concat([pl.read_parquet(p) for p in parts])


def iter_events(world_dir: Path) -> Iterator[dict[str, Any]]:
    """Every event of a world as an API request body (a dict), in time order."""
    for part in sorted((world_dir / "events").glob("part-*.parquet")):
        for row in pl.read_parquet(part).iter_rows(named=True):
            yield envelope(row)


def envelope(row: dict[str, Any]) -> dict[str, Any]:
    """An events row as the API's JSON body: absent fields left out, attributes as an object."""
    body = {k: v for k, v in row.items() if v is not None and k != "attributes"}
    body["attributes"] = json.loads(row["attributes"])
    return body
