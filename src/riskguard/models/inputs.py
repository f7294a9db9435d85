"""What a model reads: a strategy's features (the same declarations the live engine computes) and a few
event inputs, as one float64 vector per event — built in bulk from offline features for training and
replay, and from the decision context online, with the same conversions.

A feature set is a strategy document (its ``features:``) or a plain YAML document::

    name: fraud-features
    features: [...]                 # feature declarations, as in a strategy
    inputs: [amount, hour, weekday, type]   # event inputs (default: these four)
    timezone: Asia/Shanghai         # for hour and weekday (default UTC)
    types: [payment, transfer, withdrawal]  # events the model scores (default: money-moving types present)

Inputs: ``amount`` (the event amount as a double; missing = NaN), ``hour`` and ``weekday`` (0 = Monday)
of ``occurred_at`` in ``timezone``, ``type`` (one 0/1 input per scored type), and ``amount/FEATURE``: the
event amount divided by one of the set's features (e.g. ``amount/card_avg_30d``, the amount relative to
the customer's usual; NaN where either is missing or the feature is 0). Published features have no
offline values and are left out.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import numpy as np
import polars as pl
import yaml

from riskguard.errors import StrategyError
from riskguard.events.schema import Event
from riskguard.features.offline_input import Events
from riskguard.features.spec import FeatureSpec, check_spec

EVENT_INPUTS = ("amount", "hour", "weekday", "type")
DEFAULT_TYPES = ("payment", "transfer", "withdrawal")


class FeatureSet(msgspec.Struct, frozen=True):
    name: str
    features: list[FeatureSpec]
    inputs: list[str] = msgspec.field(default_factory=lambda: list(EVENT_INPUTS))
    timezone: str = "UTC"
    types: list[str] = []
    source: str = ""

    @property
    def model_features(self) -> list[FeatureSpec]:
        return [s for s in self.features if s.aggregate != "published"]

    def input_names(self) -> list[str]:
        names = [s.name for s in self.model_features]
        for item in self.inputs:
            if item == "type":
                names.extend(f"type={t}" for t in self.types)
            else:
                names.append(item)
        return names

    def with_types(self, types: list[str]) -> FeatureSet:
        return msgspec.structs.replace(self, types=types)


def load_feature_set(source: str) -> FeatureSet:
    """A strategy document or a features document (see the module docstring)."""
    try:
        raw = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise StrategyError(f"features file is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("features"), list):
        raise StrategyError("features file: give a mapping with a `features:` list (a strategy document works)")
    try:
        specs = msgspec.convert(raw["features"], list[FeatureSpec])
    except msgspec.ValidationError as exc:
        raise StrategyError(f"features: {exc}") from None
    names: set[str] = set()
    for index, spec in enumerate(specs):
        check_spec(spec, index)
        if spec.name in names:
            raise StrategyError(f"features[{index}]: a feature named {spec.name!r} is declared twice")
        names.add(spec.name)
    inputs = raw.get("inputs", list(EVENT_INPUTS))
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise StrategyError(f"inputs: a list among {', '.join(EVENT_INPUTS)} and amount/FEATURE")
    for item in inputs:
        if item in EVENT_INPUTS:
            continue
        base = _relative_to(item)
        if base is None:
            raise StrategyError(f"inputs: {item!r} is not one of {', '.join(EVENT_INPUTS)} or amount/FEATURE")
        if base not in {s.name for s in specs if s.aggregate != "published"}:
            raise StrategyError(f"inputs: {item!r} divides by {base!r}, which is not a declared feature")
    timezone = str(raw.get("timezone", "UTC"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise StrategyError(f"timezone: {timezone!r} is not an IANA time zone (e.g. Asia/Shanghai)") from None
    types = raw.get("types", [])
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise StrategyError("types: a list of event types")
    return FeatureSet(str(raw.get("name", "features")), specs, list(inputs), timezone, list(types), source)


def _relative_to(item: str) -> str | None:
    """The feature an ``amount/FEATURE`` input divides by (None for any other input)."""
    head, _, base = item.partition("/")
    return base if head == "amount" and base else None


def _divide(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom != 0, top / np.where(bottom != 0, bottom, 1.0), np.nan)


def _number(value: Any) -> float:
    if value is None:
        return np.nan
    return float(value)


def vector(feature_set: FeatureSet, features: dict[str, Any], event: Event) -> np.ndarray:
    """One event's inputs, online (``features``: the pipeline's feature values)."""
    out = [_number(features.get(s.name)) for s in feature_set.model_features]
    local: datetime | None = None
    amount = np.nan if event.amount is None else float(event.amount)
    for item in feature_set.inputs:
        if item == "amount":
            out.append(amount)
        elif (base := _relative_to(item)) is not None:
            out.append(float(_divide(np.array([amount]), np.array([_number(features.get(base))]))[0]))
        elif item in ("hour", "weekday"):
            local = local or event.occurred_at.astimezone(ZoneInfo(feature_set.timezone))
            out.append(float(local.hour if item == "hour" else local.weekday()))
        else:
            out.extend(1.0 if event.type == t else 0.0 for t in feature_set.types)
    return np.asarray(out, dtype=np.float64).reshape(1, -1)


def matrix(feature_set: FeatureSet, features: pl.DataFrame, events: Events) -> np.ndarray:
    """Every event's inputs, in bulk (``features``: offline_features' frame, row-aligned with events)."""
    columns: list[np.ndarray] = []
    by_name: dict[str, np.ndarray] = {}
    for spec in feature_set.model_features:
        if spec.name not in features.columns:
            column = np.full(len(events), np.nan)
        else:
            series = features.get_column(spec.name)
            if series.dtype == pl.Object:
                # Decimal or None per row: numpy converts both (None -> NaN) in one C loop
                column = np.array(series.to_list(), dtype=np.float64)
            else:
                column = series.cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64)
        by_name[spec.name] = column
        columns.append(column)
    local = None
    amount: np.ndarray | None = None
    for item in feature_set.inputs:
        if item == "amount" or _relative_to(item) is not None:
            if amount is None:
                amount = _amounts(events)
            base = _relative_to(item)
            columns.append(amount if base is None else _divide(amount, by_name[base]))
        elif item in ("hour", "weekday"):
            if local is None:
                local = pl.Series(events.t_us).cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(feature_set.timezone)
            part = local.dt.hour() if item == "hour" else local.dt.weekday() - 1
            columns.append(part.cast(pl.Float64).to_numpy())
        else:
            types = events.column("type")
            columns.extend((types == t).cast(pl.Float64).to_numpy() for t in feature_set.types)
    if not columns:
        return np.zeros((len(events), 0))
    return np.ascontiguousarray(np.column_stack(columns), dtype=np.float64)


def _amounts(events: Events) -> np.ndarray:
    """The events' amounts as doubles (NaN where missing), converting each distinct text once."""
    amounts = events.column("amount")
    distinct = amounts.unique()
    table = pl.DataFrame(
        {"amount": distinct, "_v": [np.nan if a is None else float(Decimal(a)) for a in distinct.to_list()]}
    )
    joined = pl.DataFrame({"amount": amounts}).join(
        table, on="amount", how="left", maintain_order="left", nulls_equal=True
    )
    return joined.get_column("_v").to_numpy().astype(np.float64)
