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
of ``occurred_at`` in ``timezone``, ``type`` (one 0/1 input per scored type). Published features have no
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
    if not isinstance(inputs, list) or any(i not in EVENT_INPUTS for i in inputs):
        raise StrategyError(f"inputs: a list among {', '.join(EVENT_INPUTS)}")
    timezone = str(raw.get("timezone", "UTC"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise StrategyError(f"timezone: {timezone!r} is not an IANA time zone (e.g. Asia/Shanghai)") from None
    types = raw.get("types", [])
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise StrategyError("types: a list of event types")
    return FeatureSet(str(raw.get("name", "features")), specs, list(inputs), timezone, list(types), source)


def _number(value: Any) -> float:
    if value is None:
        return np.nan
    return float(value)


def vector(feature_set: FeatureSet, features: dict[str, Any], event: Event) -> np.ndarray:
    """One event's inputs, online (``features``: the pipeline's feature values)."""
    out = [_number(features.get(s.name)) for s in feature_set.model_features]
    local: datetime | None = None
    for item in feature_set.inputs:
        if item == "amount":
            out.append(np.nan if event.amount is None else float(event.amount))
        elif item in ("hour", "weekday"):
            local = local or event.occurred_at.astimezone(ZoneInfo(feature_set.timezone))
            out.append(float(local.hour if item == "hour" else local.weekday()))
        else:
            out.extend(1.0 if event.type == t else 0.0 for t in feature_set.types)
    return np.asarray(out, dtype=np.float64).reshape(1, -1)


def matrix(feature_set: FeatureSet, features: pl.DataFrame, events: Events) -> np.ndarray:
    """Every event's inputs, in bulk (``features``: offline_features' frame, row-aligned with events)."""
    columns: list[np.ndarray] = []
    for spec in feature_set.model_features:
        if spec.name not in features.columns:
            columns.append(np.full(len(events), np.nan))
            continue
        series = features.get_column(spec.name)
        if series.dtype == pl.Object:
            columns.append(np.array([_number(v) for v in series.to_list()], dtype=np.float64))
        else:
            columns.append(series.cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64))
    local = None
    for item in feature_set.inputs:
        if item == "amount":
            amounts = events.column("amount")
            distinct = amounts.unique()
            table = pl.DataFrame(
                {"amount": distinct, "_v": [np.nan if a is None else float(Decimal(a)) for a in distinct.to_list()]}
            )
            joined = pl.DataFrame({"amount": amounts}).join(
                table, on="amount", how="left", maintain_order="left", nulls_equal=True
            )
            columns.append(joined.get_column("_v").to_numpy().astype(np.float64))
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
