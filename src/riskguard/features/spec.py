"""Feature declarations, as a strategy's ``features:`` section states them (declared, not computed here)."""

from __future__ import annotations

import functools
import re
from typing import Literal

import msgspec

from riskguard.errors import StrategyError
from riskguard.events.schema import Event
from riskguard.store.published import SOURCE

NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
WINDOW = re.compile(r"^(\d+)\s*(s|m|h|d)$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_WINDOW_S = 60
MAX_WINDOW_S = 180 * 86400
#: Bucket sizes (seconds) a window is cut into; the default is the largest one that divides the window
#: into at least ``TARGET_BUCKETS`` buckets. Window edges are accurate to one bucket.
NICE_GRANULARITIES = (1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
TARGET_BUCKETS = 60
MAX_BUCKETS = 10_000
#: Amounts enter feature state as integers of 1/10,000 (exact on every back end, Redis's Lua included).
AMOUNT_SCALE = 10_000

#: Aggregate → CEL type of its value.
AGGREGATES: dict[str, str] = {
    "count": "int",
    "sum": "double",
    "min": "double",
    "max": "double",
    "avg": "double",
    "distinct": "int",
    "first_seen": "double",
    "last_seen": "double",
    "ratio": "double",
    "published": "double",
}
AMOUNT_AGGREGATES = ("sum", "min", "max", "avg")
TIME_AGGREGATES = ("count", "first_seen", "last_seen")
EVENT_FIELDS = tuple(f for f in Event.__struct_fields__ if f != "attributes")
KEY_FIELDS = (
    "account_id",
    "counterparty_id",
    "merchant_id",
    "device_id",
    "ip",
    "phone",
    "card_id",
    "channel",
    "currency",
    "type",
)
NUMERIC_FIELDS = ("amount",)


class FeatureSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True, dict=True):
    """One declared feature. ``ratio`` takes ``of: [numerator, denominator]`` (two other features of the
    same strategy) instead of an entity and a window; ``published`` takes a ``source`` (values a batch job
    published per entity, see features/published.py) and one entity field."""

    name: str
    aggregate: Literal["count", "sum", "min", "max", "avg", "distinct", "first_seen", "last_seen", "ratio", "published"]
    entity: str | list[str] | None = None
    window: str | None = None
    field: str | None = None
    when: str | None = None
    include_current: bool = True
    of: list[str] | None = None
    source: str | None = None
    granularity: str | None = None
    description: str = ""

    @functools.cached_property
    def entity_fields(self) -> tuple[str, ...]:
        if self.entity is None:
            return ()
        return (self.entity,) if isinstance(self.entity, str) else tuple(self.entity)

    @functools.cached_property
    def window_seconds(self) -> int:
        if self.window is None:
            return 0
        return parse_window(self.window, where=f"features.{self.name}.window")

    @functools.cached_property
    def granularity_seconds(self) -> int:
        """Bucket size: window edges are accurate to this many seconds."""
        if self.window is None:
            return 0
        if self.granularity is not None:
            return parse_granularity(self.granularity, self.window_seconds, where=f"features.{self.name}.granularity")
        return default_granularity(self.window_seconds)

    @property
    def buckets(self) -> int:
        """How many buckets the window spans."""
        return self.window_seconds // self.granularity_seconds

    @property
    def derived(self) -> bool:
        """Computed from other features of the event, with no state of its own."""
        return self.aggregate == "ratio"

    @property
    def stateful(self) -> bool:
        """Maintained by the feature engine from the event stream (not a ratio, not published)."""
        return self.aggregate not in ("ratio", "published")

    @functools.cached_property
    def signature(self) -> tuple[object, ...]:
        """What makes two declarations compute the same state, whatever they are named."""
        return (
            self.entity_fields,
            self.aggregate,
            self.window_seconds,
            self.granularity_seconds,
            self.field,
            self.when,
            self.include_current,
        )

    @property
    def cel_type(self) -> str:
        return AGGREGATES[self.aggregate]


def parse_window(text: str, *, where: str) -> int:
    match = WINDOW.match(str(text).strip())
    if not match:
        raise StrategyError(f"{where}: {text!r} is not a window; write e.g. 10m, 1h, 7d")
    seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        raise StrategyError(f"{where}: windows run from 1m to 180d, got {text!r}")
    return seconds


def default_granularity(window_seconds: int) -> int:
    """The largest nice bucket size that cuts the window into at least TARGET_BUCKETS whole buckets."""
    best = 1
    for size in NICE_GRANULARITIES:
        if size * TARGET_BUCKETS <= window_seconds and window_seconds % size == 0:
            best = size
    return best


def parse_granularity(text: str, window_seconds: int, *, where: str) -> int:
    match = WINDOW.match(str(text).strip())
    if not match:
        raise StrategyError(f"{where}: {text!r} is not a duration; write e.g. 1s, 1m, 1h")
    size = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if size < 1 or window_seconds % size:
        raise StrategyError(f"{where}: {text!r} must divide the window ({window_seconds} s) into whole buckets")
    if window_seconds // size > MAX_BUCKETS:
        raise StrategyError(f"{where}: {text!r} cuts the window into more than {MAX_BUCKETS:,} buckets")
    return size


def check_spec(spec: FeatureSpec, index: int) -> None:
    where = f"features[{index}] ({spec.name})"
    if not NAME.match(spec.name):
        raise StrategyError(f"{where}: names are lower-case letters, digits and _, starting with a letter")
    if spec.aggregate == "ratio":
        if spec.of is None or len(spec.of) != 2:
            raise StrategyError(f"{where}.of: a ratio names two features: of: [numerator, denominator]")
        for other in ("entity", "window", "field", "when", "granularity"):
            if getattr(spec, other) is not None:
                raise StrategyError(f"{where}.{other}: a ratio takes only `of` (its features have their own)")
        return
    if spec.of is not None:
        raise StrategyError(f"{where}.of: only a ratio takes `of`")
    if spec.aggregate == "published":
        if spec.source is None or not SOURCE.match(spec.source):
            raise StrategyError(f"{where}.source: name what was published, as <namespace>.<name> (e.g. graph.risk)")
        if len(spec.entity_fields) != 1 or spec.entity_fields[0] not in KEY_FIELDS:
            raise StrategyError(f"{where}.entity: a published feature is looked up by one of {', '.join(KEY_FIELDS)}")
        for other in ("window", "field", "when", "granularity"):
            if getattr(spec, other) is not None:
                raise StrategyError(f"{where}.{other}: a published feature takes only source and entity")
        return
    if spec.source is not None:
        raise StrategyError(f"{where}.source: only a published feature takes a source")
    if spec.window is None:
        raise StrategyError(f"{where}.window: give a window, e.g. 1h or 7d")
    if not spec.entity_fields:
        raise StrategyError(f"{where}.entity: name at least one event field")
    for field in spec.entity_fields:
        if field not in KEY_FIELDS:
            raise StrategyError(f"{where}.entity: {field!r} is not a key field; use one of {', '.join(KEY_FIELDS)}")
    spec.window_seconds  # noqa: B018 - validates the window
    spec.granularity_seconds  # noqa: B018 - validates the granularity
    if spec.aggregate in TIME_AGGREGATES:
        if spec.field is not None:
            raise StrategyError(f"{where}.field: {spec.aggregate} takes no field (filter with `when`)")
    elif spec.field is None:
        raise StrategyError(f"{where}.field: {spec.aggregate} needs a field")
    elif spec.aggregate in AMOUNT_AGGREGATES and spec.field not in NUMERIC_FIELDS:
        raise StrategyError(f"{where}.field: {spec.aggregate} works on {', '.join(NUMERIC_FIELDS)}, not {spec.field!r}")
    elif spec.aggregate == "distinct" and spec.field not in EVENT_FIELDS and not spec.field.startswith("attributes."):
        raise StrategyError(f"{where}.field: {spec.field!r} is not an event field (or attributes.<key>)")
