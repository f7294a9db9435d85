"""Event histories for the offline feature path: read, checked, and turned into columns.

A history is what ``riskguard simulate`` writes as its events (the API envelope, one row per event:
``occurred_at`` an ISO-8601 string with an offset, ``amount`` a decimal string, ``attributes`` a JSON
object in a string; see sim/writer.py), the same columns in CSV, a polars DataFrame of them, or a list of
riskguard ``Event`` objects. Rows keep the order given: it is the arrival order features are computed in.

Times become integer microseconds and amounts integer 1/10,000 units exactly as features/values.py does
for one event: the usual forms in bulk with polars, anything else (other ISO forms, more decimals)
through the same Python conversions the API applies, one distinct value at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl

from riskguard.errors import ValidationFailed
from riskguard.events.schema import Event
from riskguard.features.values import EPOCH, amount_units, field_token, micros

ENVELOPE: tuple[str, ...] = Event.__struct_fields__
REQUIRED = ("event_id", "type", "occurred_at", "account_id")
TEXT_FIELDS = tuple(f for f in ENVELOPE if f not in ("occurred_at", "amount", "attributes"))
_ISO = r"^\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?([+-]([01]\d|2[0-3]):[0-5]\d|Z)$"
_PLAIN_AMOUNT = r"^\d{1,14}(\.\d{0,4})?$"  # below 10**14: units fit in int64 with room to add
_INT64_MAX = np.iinfo(np.int64).max
_time_decoder = msgspec.json.Decoder(datetime)
_attributes_decoder = msgspec.json.Decoder(dict[str, Any])

History = str | Path | pl.DataFrame | Iterable[Event]


def _fail(row: int, column: str, message: str) -> ValidationFailed:
    return ValidationFailed([{"loc": ["events", row, column], "msg": message, "type": "value_error"}])


@dataclass
class Events:
    """A history as columns, in arrival order."""

    frame: pl.DataFrame  # the envelope columns, as strings (occurred_at, amount, attributes as given)
    t_us: np.ndarray  # int64 microseconds since the epoch
    units: np.ndarray  # amount in 1/10,000 units: int64, or Python ints (object) if one does not fit
    has_amount: np.ndarray
    _parsed: dict[str, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return self.frame.height

    def column(self, name: str) -> pl.Series:
        return self.frame.get_column(name)

    def token_column(self, field_name: str) -> pl.Series:
        """The value ``distinct`` counts of each event, as values.field_token gives it (null when absent)."""
        if field_name in TEXT_FIELDS:
            return self.column(field_name)
        source = "attributes" if field_name.startswith("attributes.") else field_name
        raw = self.column(source)
        distinct = raw.drop_nulls().unique()
        tokens = [field_token(self.event_of(source, value), field_name) for value in distinct.to_list()]
        table = pl.DataFrame({"raw": distinct, "token": pl.Series(tokens, dtype=pl.String)})
        joined = pl.DataFrame({"raw": raw}).join(table, on="raw", how="left", maintain_order="left")
        return joined.get_column("token")

    def event_of(self, column: str, raw: str) -> Event:
        """A stand-in event carrying one parsed field (for values.field_token)."""
        value = self.parse(column, raw)
        stand_in = Event(event_id="-", type="login", occurred_at=EPOCH, account_id="-")
        if column == "attributes":
            stand_in.attributes = value
        else:
            setattr(stand_in, column, value)
        return stand_in

    def parse(self, column: str, raw: str | None) -> Any:
        """A raw envelope value as the API's Event holds it."""
        if column == "attributes":
            return {} if raw is None else _attributes_decoder.decode(raw)
        if raw is None:
            return None
        if column == "amount":
            return Decimal(raw)
        if column == "occurred_at":
            return _time_decoder.decode(msgspec.json.encode(raw))
        return raw


def load_events(source: History) -> Events:
    """Reads and checks a history (path, DataFrame or Events)."""
    if isinstance(source, pl.DataFrame):
        frame = source
    elif isinstance(source, (str, Path)):
        frame = _read(Path(source))
    else:
        frame = _from_events(source)
    frame = _envelope(frame)
    t_us = _times(frame.get_column("occurred_at"))
    units, has_amount = _amounts(frame.get_column("amount"))
    return Events(frame, t_us, units, has_amount)


def _read(path: Path) -> pl.DataFrame:
    if path.is_dir():
        parts = sorted((path / "events").glob("part-*.parquet")) or sorted(path.glob("*.parquet"))
        if not parts:
            raise ValidationFailed(
                [{"loc": ["events"], "msg": f"{path} holds no Parquet events", "type": "value_error"}]
            )
        return pl.concat([pl.read_parquet(p) for p in parts], how="diagonal_relaxed")
    if not path.is_file():
        raise ValidationFailed([{"loc": ["events"], "msg": f"{path}: no such file", "type": "value_error"}])
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ValidationFailed(
            [{"loc": ["events"], "msg": f"cannot read {path}: {exc}", "type": "value_error"}]
        ) from None
    raise ValidationFailed(
        [
            {
                "loc": ["events"],
                "msg": f"{path}: give a .parquet or .csv file (or a world directory)",
                "type": "value_error",
            }
        ]
    )


def _from_events(events: Iterable[Event]) -> pl.DataFrame:
    columns: dict[str, list[Any]] = {name: [] for name in ENVELOPE}
    encode = msgspec.json.encode
    for event in events:
        if not isinstance(event, Event):
            raise ValidationFailed(
                [
                    {
                        "loc": ["events"],
                        "msg": "give a path, a polars DataFrame or riskguard Event objects",
                        "type": "type_error",
                    }
                ]
            )
        for name in TEXT_FIELDS:
            columns[name].append(getattr(event, name))
        columns["occurred_at"].append(event.occurred_at.isoformat())
        columns["amount"].append(None if event.amount is None else str(event.amount))
        columns["attributes"].append(encode(event.attributes).decode())
    return pl.DataFrame(columns, schema=dict.fromkeys(ENVELOPE, pl.String))


def _envelope(frame: pl.DataFrame) -> pl.DataFrame:
    """The envelope columns as strings: absent optional columns null, typed columns written as text."""
    missing = [name for name in REQUIRED if name not in frame.columns]
    if missing:
        raise ValidationFailed(
            [
                {
                    "loc": ["events", name],
                    "msg": "missing column (events need event_id, type, occurred_at, account_id)",
                    "type": "value_error",
                }
                for name in missing
            ]
        )
    columns = []
    for name in ENVELOPE:
        if name not in frame.columns:
            columns.append(pl.lit(None, dtype=pl.String).alias(name))
            continue
        dtype = frame.schema[name]
        column = pl.col(name)
        if dtype == pl.String:
            columns.append(column)
        elif isinstance(dtype, (pl.Categorical, pl.Enum)) and name != "amount":
            columns.append(column.cast(pl.String))
        elif name == "occurred_at" and isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            columns.append(column.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00"))
        elif (name == "amount" and (isinstance(dtype, pl.Decimal) or dtype.is_integer())) or dtype == pl.Null:
            columns.append(column.cast(pl.String))
        else:
            hint = {
                "occurred_at": "ISO-8601 strings with an offset, or a time-zone-aware Datetime",
                "amount": "decimal strings or a Decimal column (never floats: money is exact)",
                "attributes": "JSON objects as strings",
            }.get(name, "strings")
            raise ValidationFailed([{"loc": ["events", name], "msg": f"is {dtype}; give {hint}", "type": "type_error"}])
    out = frame.select(columns)
    for name in REQUIRED:
        nulls = out.get_column(name).is_null()
        if nulls.any():
            raise _fail(int(nulls.arg_true()[0]), name, "required")
    return out


def _times(text: pl.Series) -> np.ndarray:
    """occurred_at → integer µs; ISO forms polars parses exactly in bulk, the rest as msgspec does."""
    fast = text.str.contains(_ISO).fill_null(False)
    offsets = text.str.replace(r"Z$", "+00:00") if text.str.ends_with("Z").any() else text
    parsed = offsets.str.to_datetime(
        format="%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us", time_zone="UTC", strict=False, cache=False
    ).dt.epoch("us")
    slow = ~fast | parsed.is_null()
    out = parsed.fill_null(0).to_numpy().astype(np.int64, copy=True)
    if slow.any():
        rows = slow.arg_true().to_list()
        for row, value in zip(rows, text.gather(rows).to_list(), strict=True):
            try:
                moment = _time_decoder.decode(msgspec.json.encode(value))
            except msgspec.ValidationError:
                moment = None
            if moment is None or moment.tzinfo is None:
                raise _fail(row, "occurred_at", f"{value!r} is not an ISO-8601 time with a UTC offset")
            out[row] = micros(moment)
    return out


def _amounts(text: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """amount → integer 1/10,000 units (values.amount_units); plain decimals in bulk, the rest exactly."""
    has = text.is_not_null()
    fast = text.str.contains(_PLAIN_AMOUNT).fill_null(False)
    parts = text.str.split_exact(".", 1).struct.unnest()
    whole = parts.get_column("field_0").cast(pl.Int64, strict=False)
    fraction = parts.get_column("field_1").fill_null("").str.pad_end(4, "0").cast(pl.Int64, strict=False)
    units = (whole * 10_000 + fraction).set(~fast, 0).fill_null(0).to_numpy().astype(np.int64, copy=True)
    slow = has & ~fast
    if not slow.any():
        return units, has.to_numpy()
    exact: dict[int, int] = {}
    rows = slow.arg_true().to_list()
    for row, value in zip(rows, text.gather(rows).to_list(), strict=True):
        try:
            exact[row] = amount_units(Decimal(value))
        except (InvalidOperation, ValueError):
            raise _fail(row, "amount", f"{value!r} is not a finite decimal amount") from None
    if all(abs(v) <= _INT64_MAX // 2 for v in exact.values()):
        for row, value in exact.items():
            units[row] = value
        return units, has.to_numpy()
    wide = units.astype(object)
    for row, value in exact.items():
        wide[row] = value
    return wide, has.to_numpy()
