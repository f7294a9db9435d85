"""What a replay reads: the events (in arrival order), the labels with the time each became known, and
victim reports; and the stream features are computed over, with label events placed where they became
known.

Labels come as a world's ``labels.parquet`` or any Parquet/CSV with the columns ``event_id`` (or
``entity_kind`` and ``entity_value``), ``label`` (``fraud`` or ``legit``), ``labelled_at`` (a time-zone-aware
time or ISO-8601 text) and optionally ``typology`` and ``loss`` (the event took money from a victim or the
platform; without the column every fraud-labelled payment, transfer or withdrawal counts as a loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from riskguard.errors import ValidationFailed
from riskguard.features.label_events import ENTITY_FIELDS, LABEL_TYPE
from riskguard.features.offline_input import ENVELOPE, Events, load_events

MONEY_MOVING = ("payment", "transfer", "withdrawal")
_ISO_UTC = "%Y-%m-%dT%H:%M:%S%.6f+00:00"


def _fail(where: str, message: str) -> ValidationFailed:
    return ValidationFailed([{"loc": [where], "msg": message, "type": "value_error"}])


@dataclass
class History:
    """A replay's input: events in arrival order and what is known about them."""

    events: Events
    labels: pl.DataFrame  # event_id?, entity_kind?, entity_value?, label, typology?, loss, labelled_at (UTC)
    reports: pl.DataFrame | None = None  # victim reports, when the history is a world directory

    def take(self, rows: np.ndarray) -> History:
        """The same history restricted to some events (``rows``: a boolean mask); labels kept."""
        return History(load_events(self.events.frame.filter(pl.Series(rows))), self.labels, self.reports)

    @property
    def frame(self) -> pl.DataFrame:
        return self.events.frame

    def truth(self) -> pl.DataFrame:
        """Per event (row order): fraud, loss, typology and amount in fen-free exact units (1/10,000)."""
        event_labels = (
            self.labels.filter(pl.col("event_id").is_not_null())
            .group_by("event_id")
            .agg(
                fraud=(pl.col("label") == "fraud").any(),
                loss=pl.col("loss").any(),
                loss_given=pl.col("loss").is_not_null().any(),
                typology=pl.col("typology").drop_nulls().first(),
            )
        )
        frame = self.frame.select("event_id", "type").with_row_index("_row")
        joined = frame.join(event_labels, on="event_id", how="left").sort("_row")
        fraud = joined.get_column("fraud").fill_null(False)
        moves = joined.get_column("type").is_in(list(MONEY_MOVING))
        given = joined.get_column("loss_given").fill_null(False)
        loss = pl.select(pl.when(given).then(joined.get_column("loss")).otherwise(moves)).to_series() & fraud
        return pl.DataFrame(
            {
                "event_id": joined.get_column("event_id"),
                "type": joined.get_column("type"),
                "fraud": fraud,
                "loss": loss,
                "typology": joined.get_column("typology"),
                "units": self.events.units.astype(np.int64) if self.events.units.dtype != object else self.events.units,
                "moves": moves,
            }
        )


def load_history(events: str | Path | pl.DataFrame, labels: str | Path | pl.DataFrame | None = None) -> History:
    """Reads events (a file, a world directory or a DataFrame) and labels (default: the world's)."""
    loaded = load_events(events)
    world = Path(events) if isinstance(events, (str, Path)) and Path(events).is_dir() else None
    if labels is None and world is not None and (world / "labels.parquet").exists():
        labels = world / "labels.parquet"
    reports = None
    if world is not None and (world / "victim_reports.parquet").exists():
        reports = pl.read_parquet(world / "victim_reports.parquet")
    return History(loaded, read_labels(labels), reports)


def read_labels(source: str | Path | pl.DataFrame | None) -> pl.DataFrame:
    """Labels in one shape: event_id, entity_kind, entity_value, label, typology, loss, labelled_at (UTC)."""
    schema = {
        "event_id": pl.String,
        "entity_kind": pl.String,
        "entity_value": pl.String,
        "label": pl.String,
        "typology": pl.String,
        "loss": pl.Boolean,
        "labelled_at": pl.Datetime("us", "UTC"),
    }
    if source is None:
        return pl.DataFrame(schema=schema)
    if isinstance(source, pl.DataFrame):
        frame = source
    else:
        path = Path(source)
        if not path.is_file():
            raise _fail("labels", f"{path}: no such file")
        try:
            frame = pl.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pl.read_csv(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise _fail("labels", f"cannot read {path}: {exc}") from None
    for required in ("label", "labelled_at"):
        if required not in frame.columns:
            raise _fail("labels", f"missing column {required!r} (labels need label and labelled_at)")
    if "event_id" not in frame.columns and "entity_value" not in frame.columns:
        raise _fail("labels", "give event_id or entity_kind and entity_value")
    at = frame.get_column("labelled_at")
    if at.dtype == pl.String:
        at = at.str.replace(r"Z$", "+00:00").str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
    elif isinstance(at.dtype, pl.Datetime):
        if at.dtype.time_zone is None:
            raise _fail("labels.labelled_at", "times need a time zone (UTC or an offset)")
        at = at.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    else:
        raise _fail("labels.labelled_at", f"is {at.dtype}; give ISO-8601 text or a time-zone-aware time")
    if at.is_null().any():
        raise _fail("labels.labelled_at", f"row {int(at.is_null().arg_true()[0])}: not an ISO-8601 time with an offset")
    bad = ~frame.get_column("label").is_in(["fraud", "legit"])
    if bad.any():
        raise _fail("labels.label", f"row {int(bad.arg_true()[0])}: must be fraud or legit")
    columns = []
    for name, dtype in schema.items():
        if name == "labelled_at":
            columns.append(at.alias(name))
        elif name in frame.columns:
            columns.append(frame.get_column(name).cast(dtype).alias(name))
        elif name == "loss":
            columns.append(pl.Series(name, [None] * frame.height, dtype=pl.Boolean))
        else:
            columns.append(pl.Series(name, [None] * frame.height, dtype=dtype))
    return pl.DataFrame(columns)


def with_label_events(history: History, *, until_us: int | None = None) -> tuple[pl.DataFrame, np.ndarray]:
    """The stream features are computed over: the events in arrival order with each label's internal
    ``label`` event inserted before the first event at which the watermark (the latest ``occurred_at``
    so far) reaches its ``labelled_at`` — when it became known. Returns the envelope frame and, per row,
    the event's position in the history (-1 for a label event)."""
    events = history.events
    frame = events.frame
    n = len(events)
    labels = history.labels
    if until_us is not None:
        labels = labels.filter(pl.col("labelled_at").dt.epoch("us") <= until_us)
    by_event = labels.filter(pl.col("event_id").is_not_null()).with_row_index("_label")
    originals = frame.with_row_index("_origin")
    joined = by_event.join(originals, on="event_id", how="inner", suffix="_event")
    event_rows = joined.select(
        pl.col("_label"),
        pl.col("labelled_at"),
        (pl.col("event_id") + "#label").alias("event_id"),
        pl.lit(LABEL_TYPE).alias("type"),
        *[pl.col(c) for c in ENVELOPE if c not in ("event_id", "type", "occurred_at", "attributes")],
        _attributes(pl.col("type")),
    )
    entity = labels.filter(pl.col("event_id").is_null() & pl.col("entity_kind").is_in(list(ENTITY_FIELDS)))
    entity = entity.with_row_index("_label", offset=by_event.height)
    entity_rows = []
    for kind, field in ENTITY_FIELDS.items():
        part = entity.filter(pl.col("entity_kind") == kind)
        if part.is_empty():
            continue
        values = {
            "account_id": pl.col("entity_value") if field == "account_id" else pl.lit(f"label:{kind}"),
            field: pl.col("entity_value"),
        }
        entity_rows.append(
            part.select(
                pl.col("_label"),
                pl.col("labelled_at"),
                (pl.lit("label-") + pl.col("_label").cast(pl.String)).alias("event_id"),
                pl.lit(LABEL_TYPE).alias("type"),
                *[
                    (values[c] if c in values else pl.lit(None, dtype=pl.String)).alias(c)
                    for c in ENVELOPE
                    if c not in ("event_id", "type", "occurred_at", "attributes")
                ],
                _attributes(pl.lit(None, dtype=pl.String)),
            )
        )
    rows = pl.concat([event_rows, *entity_rows], how="diagonal_relaxed") if entity_rows else event_rows
    if rows.is_empty():
        return frame, np.arange(n, dtype=np.int64)
    label_us = rows.get_column("labelled_at").dt.epoch("us").to_numpy()
    watermark = np.maximum.accumulate(events.t_us) if n else np.zeros(0, dtype=np.int64)
    position = np.searchsorted(watermark, label_us, side="left")
    rows = rows.with_columns(
        occurred_at=pl.col("labelled_at").dt.strftime(_ISO_UTC),
        _pos=pl.Series(position.astype(np.int64)),
        _sub=pl.lit(0, dtype=pl.Int64),
    ).sort("_pos", "labelled_at", "_label")
    origin = np.concatenate([np.full(rows.height, -1, dtype=np.int64), np.arange(n, dtype=np.int64)])
    merged = pl.concat(
        [
            rows.select(*ENVELOPE, "_pos", "_sub"),
            frame.with_columns(_pos=pl.Series(np.arange(n, dtype=np.int64)), _sub=pl.lit(1, dtype=pl.Int64)),
        ],
        how="vertical_relaxed",
    ).with_columns(_origin=pl.Series(origin))
    merged = merged.with_row_index("_seq").sort("_pos", "_sub", "_seq")
    return merged.select(*ENVELOPE), merged.get_column("_origin").to_numpy()


def _attributes(event_type: pl.Expr) -> pl.Expr:
    """The label event's attributes (features/label_events.label_attributes) as JSON text."""
    label = pl.lit('{"label":"') + pl.col("label") + pl.lit('"')
    typology = pl.when(pl.col("typology").is_not_null()).then(pl.lit(',"typology":"') + pl.col("typology") + '"')
    kind = pl.when(event_type.is_not_null()).then(pl.lit(',"event_type":"') + event_type + '"')
    return pl.concat_str([label, typology, kind, pl.lit("}")], ignore_nulls=True).alias("attributes")
