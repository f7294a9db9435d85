"""The definition of every feature value, written as plainly as possible: the oracle that the memory,
Redis and offline back ends are tested against (and the offline path's fallback for keys whose events
arrived out of bucket order). It keeps every folded event and scans them all, so it is slow by design.

The semantics (docs/features.md, "Exact semantics"):

* Events are processed in arrival order. The watermark ``wm`` is the latest ``occurred_at`` folded so far.
  An event older than ``wm - lateness`` is *late*: it is decided, never folded into state.
* An event id folded before (and not older than ``wm - lateness``) is a *duplicate*: not folded again, and
  ``include_current`` does not add it a second time.
* A feature with window ``w`` and bucket size ``g`` (``W = w / g`` buckets) reads, for an event at time
  ``t``, the folded events of the same key that pass its ``when`` filter and carry its field, whose
  bucket ``floor(time / g)`` lies in ``(floor(t / g) - W, floor(t / g)]`` and not below
  ``floor((wm - lateness) / g) - W + 1`` (what every back end still holds); plus, with
  ``include_current``, the event itself when it passes the filter and carries the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from riskguard.events.schema import Event
from riskguard.features.label_events import LABEL_TYPE, admits_labels
from riskguard.features.spec import FeatureSpec
from riskguard.features.values import (
    MICROS,
    amount_units,
    average,
    entity_key,
    field_token,
    micros,
    seconds_between,
    units_amount,
)
from riskguard.rules.activation import EVENT_DECLARATIONS, event_variables
from riskguard.rules.cel import Environment


def contribution(spec: FeatureSpec, event: Event) -> Any:
    """What the event adds to the feature (None: nothing): 1, amount units, or the distinct token."""
    if spec.aggregate in ("sum", "min", "max", "avg"):
        return None if event.amount is None else amount_units(event.amount)
    if spec.aggregate == "distinct":
        return field_token(event, spec.field or "")
    return 1


def value_of(spec: FeatureSpec, t_us: int, pool: list[tuple[int, Any]], current: Any) -> Any:
    """The aggregate over ``pool`` ((time µs, contribution) of the events in range) and ``current``."""
    times = [ts for ts, _ in pool]
    items = [c for _, c in pool]
    if current is not None:
        times.append(t_us)
        items.append(current)
    match spec.aggregate:
        case "count":
            return len(items)
        case "sum":
            return units_amount(sum(items))
        case "min":
            return units_amount(min(items)) if items else None
        case "max":
            return units_amount(max(items)) if items else None
        case "avg":
            return average(sum(items), len(items)) if items else None
        case "distinct":
            return len(set(items))
        case "first_seen":
            return seconds_between(t_us, min(times)) if times else None
        case "last_seen":
            if current is not None:
                return 0.0
            return seconds_between(t_us, max(times)) if times else None
    raise AssertionError(spec.aggregate)


def ratios(specs: Sequence[FeatureSpec], values: dict[str, Any]) -> None:
    for spec in specs:
        if spec.derived and spec.of:
            top, bottom = values.get(spec.of[0]), values.get(spec.of[1])
            if top is not None and bottom:
                values[spec.name] = Decimal(top) / Decimal(bottom)


def reference_values(
    events: Iterable[Event], specs: Sequence[FeatureSpec], *, lateness_seconds: float = 3600.0
) -> list[dict[str, Any]]:
    """The feature values of each event, in arrival order, by the definition."""
    stateful = [s for s in specs if s.stateful]
    environment = Environment(EVENT_DECLARATIONS)
    filters = {s.when: environment.compile(s.when, where=s.name) for s in stateful if s.when}
    lateness_us = int(lateness_seconds * MICROS)
    # folded events per (feature, key): the definition scans them all; grouping by key only saves time
    folded: dict[tuple[str, str], list[tuple[int, Any]]] = {}
    seen: dict[str, int] = {}
    watermark: int | None = None
    out: list[dict[str, Any]] = []
    for event in events:
        t_us = micros(event.occurred_at)
        variables = event_variables(event)
        passes = {None: True, **{w: f.evaluate(variables) is True for w, f in filters.items()}}
        if event.type == LABEL_TYPE:  # label events count only where a feature asks for them
            passes = {w: ok and admits_labels(w) for w, ok in passes.items()}
        late = watermark is not None and t_us < watermark - lateness_us
        duplicate = watermark is not None and event.event_id in seen and seen[event.event_id] >= watermark - lateness_us
        values: dict[str, Any] = {}
        for spec in stateful:
            key = entity_key(event, spec.entity_fields)
            if key is None:
                continue
            g_us = spec.granularity_seconds * MICROS
            high = t_us // g_us
            low = high - spec.buckets  # exclusive
            if watermark is not None:
                low = max(low, (watermark - lateness_us) // g_us - spec.buckets)
            pool = [(ts, item) for ts, item in folded.get((spec.name, key), []) if low < ts // g_us <= high]
            current = None
            if spec.include_current and passes[spec.when] and not duplicate:
                current = contribution(spec, event)
            value = value_of(spec, t_us, pool, current)
            if value is not None:
                values[spec.name] = value
        ratios(specs, values)
        out.append(values)
        if not late and not duplicate:
            for spec in stateful:
                key = entity_key(event, spec.entity_fields)
                item = contribution(spec, event) if key is not None and passes[spec.when] else None
                if item is not None:
                    folded.setdefault((spec.name, key), []).append((t_us, item))
            seen[event.event_id] = t_us
            watermark = t_us if watermark is None else max(watermark, t_us)
    return out
