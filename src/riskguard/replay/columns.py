"""The variables rules read, as columns over a whole history: what ``Context.activation`` binds for each
event, held once per column instead of once per event.

A ``Column`` answers three questions for the bulk rule evaluator (bulk.py): is the variable bound at a
row, which rows hold equal values (``codes``: exact equality classes, -1 where unbound), and the value at
one row exactly as the live pipeline binds it (a Python ``str``, ``int``, ``float``, ``dict``, ``datetime``
...). Numeric columns also give their values as float64, so that comparisons with literals can be
grouped (bulk.py explains why that is exact).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np
import polars as pl

from riskguard.features.offline_input import TEXT_FIELDS, Events

_decode = msgspec.json.Decoder(dict[str, Any]).decode
EXACT_FLOAT = float(2**53)


def dense_codes(values: pl.Series) -> np.ndarray:
    """Equal values → equal codes (non-negative), nulls → -1; exact (no hashing)."""
    bound = values.is_not_null().to_numpy()
    if values.dtype == pl.String:
        codes = values.cast(pl.Categorical).to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
        return codes.astype(np.int64, copy=False)
    if values.dtype.is_integer():
        data = values.fill_null(0).to_numpy().astype(np.int64)
        low = int(data[bound].min()) if bound.any() else 0
        return np.where(bound, data - low, -1)
    data = values.cast(pl.Float64).fill_null(0.0).to_numpy()
    _, inverse = np.unique(data, return_inverse=True)
    return np.where(bound, inverse.reshape(-1), -1).astype(np.int64)


def distinct_inverse(series: pl.Series) -> tuple[np.ndarray, list[Any]]:
    """Per row, the index of its value among the distinct values (None included), and those values."""
    distinct = series.unique(maintain_order=True)
    table = pl.DataFrame({"v": distinct, "_code": np.arange(len(distinct), dtype=np.int64)})
    joined = pl.DataFrame({"v": series}).join(table, on="v", how="left", maintain_order="left", nulls_equal=True)
    return joined.get_column("_code").to_numpy().astype(np.int64), distinct.to_list()


def inverse_codes(keys: list[Any]) -> tuple[np.ndarray, list[Any]]:
    """Codes of hashable Python keys (in order of first appearance) and the distinct keys."""
    seen: dict[Any, int] = {}
    codes = np.fromiter((seen.setdefault(k, len(seen)) for k in keys), dtype=np.int64, count=len(keys))
    return codes, list(seen)


@dataclass
class Column:
    bound: np.ndarray
    codes: np.ndarray
    value: Callable[[int], Any]
    numeric: np.ndarray | None = None  # float64 of int/double values (where bound)
    exact_numeric: bool = False  # every bound value is an int below 2**53 or a finite float
    int_rows: np.ndarray | None = None  # rows holding an int (not a bool) below 2**53

    @classmethod
    def from_distinct(cls, inverse: np.ndarray, values: list[Any], *, numeric: bool = False) -> Column:
        """A column whose row i holds ``values[inverse[i]]`` (None: unbound)."""
        distinct_codes, _ = inverse_codes([_key(v) for v in values])
        distinct_codes[np.array([v is None for v in values], dtype=bool)] = -1
        codes = distinct_codes[inverse]
        column = cls(codes >= 0, codes, lambda i: values[inverse[i]])
        if numeric:
            floats = np.fromiter(
                (float(v) if type(v) in (int, float) else np.nan for v in values), dtype=np.float64, count=len(values)
            )
            column.numeric = floats[inverse]
            column.exact_numeric = all(
                v is None or (type(v) is float and np.isfinite(v)) or (type(v) is int and abs(v) < EXACT_FLOAT)
                for v in values
            )
            column.int_rows = np.fromiter(
                (type(v) is int and abs(v) < EXACT_FLOAT for v in values), dtype=bool, count=len(values)
            )[inverse]
        return column


def _distinct_values(values: list[Any]) -> tuple[list[Any], np.ndarray]:
    """The distinct values (by type and value) and, per input, the index of its value among them."""
    codes, keys = inverse_codes([_key(v) for v in values])
    first: dict[int, Any] = {}
    for code, value in zip(codes.tolist(), values, strict=True):
        first.setdefault(code, value)
    return [first[k] for k in range(len(keys))], codes


def _key(value: Any) -> Any:
    """A hashable stand-in that tells values apart by type and value (True is not 1)."""
    kind = type(value)
    if kind is dict:
        return (kind, msgspec.json.encode(value, order="sorted"))
    if kind is list:
        return (kind, msgspec.json.encode(value))
    return (kind, value)


@dataclass
class Columns:
    """Lazily built columns for ``n`` decided events: event fields, features, lists and stage variables."""

    events: Events
    features: pl.DataFrame  # one row per event, a column per feature (offline_features' types)
    feature_types: dict[str, str]  # feature name → CEL type
    lists: dict[str, set[str]] = field(default_factory=dict)
    extra: dict[str, Column] = field(default_factory=dict)  # device.*, model.*
    _cache: dict[str, Column] = field(default_factory=dict)
    _attributes: tuple[np.ndarray, list[dict[str, Any]]] | None = None

    def __len__(self) -> int:
        return len(self.events)

    def get(self, name: str) -> Column:
        found = self._cache.get(name) or self.extra.get(name)
        if found is None:
            found = self._cache[name] = self._build(name)
        return found

    def _build(self, name: str) -> Column:
        n = len(self)
        if name.startswith("features."):
            return self._feature(name.removeprefix("features."))
        if name.startswith("lists."):
            listed = self.lists.get(name.removeprefix("lists."), set())
            if not listed:
                return Column(np.ones(n, bool), np.zeros(n, np.int64), lambda _i: {})
            return self._list_hits(listed)
        field_name = name.removeprefix("event.")
        if field_name in TEXT_FIELDS:
            series = self.events.column(field_name)
            values = series.to_list()
            return Column(series.is_not_null().to_numpy(), dense_codes(series), values.__getitem__)
        if field_name == "amount":
            inverse, raw = distinct_inverse(self.events.column("amount"))
            floats = [None if r is None else float(Decimal(r)) for r in raw]
            return Column.from_distinct(inverse, floats, numeric=True)
        if field_name == "occurred_at":
            raw = self.events.column("occurred_at").to_list()
            codes = self.events.t_us.astype(np.int64)
            return Column(
                np.ones(n, bool), codes - codes.min(initial=0), lambda i: self.events.parse("occurred_at", raw[i])
            )
        if field_name == "attributes":
            inverse, dicts = self.attributes()
            return Column(np.ones(n, bool), inverse, lambda i: dicts[inverse[i]])
        raise KeyError(name)

    def attributes(self) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Per event, the index of its decoded attribute object among the distinct ones."""
        if self._attributes is None:
            inverse, raw = distinct_inverse(self.events.column("attributes"))
            self._attributes = (inverse, [{} if not r else _decode(r) for r in raw])
        return self._attributes

    def attribute(self, key: str) -> Column:
        """``event.attributes.<key>``: bound where the key is present."""
        name = f"event.attributes.{key}"
        found = self._cache.get(name)
        if found is None:
            inverse, dicts = self.attributes()
            values, value_inverse = _distinct_values([d.get(key) for d in dicts])
            found = self._cache[name] = Column.from_distinct(value_inverse[inverse], values, numeric=True)
        return found

    def _feature(self, feature: str) -> Column:
        n = len(self)
        if feature not in self.features.columns:  # published features have no offline column: unbound
            return Column(np.zeros(n, bool), np.full(n, -1, np.int64), lambda _i: None)
        series = self.features.get_column(feature)
        if series.dtype == pl.Object:
            objects = series.to_list()
            floats = [None if v is None else float(v) for v in objects]
            series = pl.Series(feature, floats, dtype=pl.Float64)
        elif isinstance(series.dtype, pl.Decimal):
            series = series.cast(pl.Float64)
        bound = series.is_not_null().to_numpy()
        values = series.to_list()
        numeric = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
        if series.dtype.is_integer():
            exact = bool((np.abs(numeric[bound]) < EXACT_FLOAT).all())
        else:
            exact = bool(np.isfinite(numeric[bound]).all())
        return Column(bound, dense_codes(series), values.__getitem__, numeric, exact)

    def _list_hits(self, listed: set[str]) -> Column:
        """``lists.<name>``: the event's identifier values that are on the list (ListIndex.members)."""
        from riskguard.events.schema import IDENTIFIER_FIELDS

        frame = self.events.frame
        hits = [pl.when(pl.col(f).is_in(list(listed))).then(pl.col(f)) for f in IDENTIFIER_FIELDS if f in frame.columns]
        keyed = frame.select(pl.concat_list(hits).list.drop_nulls().list.unique().list.sort().alias("h"))
        rows = keyed.get_column("h").to_list()
        keys = [tuple(r) for r in rows]
        inverse, distinct = inverse_codes(keys)
        dicts = [dict.fromkeys(k, True) for k in distinct]
        return Column(np.ones(len(self), bool), inverse, lambda i: dicts[inverse[i]])

    def member(self, field_name: str, list_name: str) -> np.ndarray:
        """Whether each event's ``field`` value is on the list (False where absent)."""
        listed = self.lists.get(list_name, set())
        series = self.events.column(field_name)
        if not listed:
            return np.zeros(len(self), bool)
        return series.is_in(list(listed)).fill_null(False).to_numpy()
