"""The entity graph: who uses which device, address, phone, card and shop, and who pays whom.

Built from events in the API envelope (a polars DataFrame: a simulated world, a Parquet export, or the
service's event log) and kept as two tables:

- ``links``: one row per (account, identifier kind, identifier value, relation) with the first and last
  time it was seen and how many events carried it. Kinds: ``device``, ``ip``, ``ip24`` (the /24 range of
  an IPv4 address), ``phone``, ``card``, ``merchant``. Relations: ``uses`` (the identifier was on an
  event of the account), ``contact`` (a loan application's or complaint's ``attributes.contact_phone``:
  whoever is to be called back; complaint and loan agents show up here) and ``failed_login`` (a login with
  ``attributes.success = false``: it proves nothing about who owns the device, but is how credential
  stuffing shows).
- ``flows``: one row per account→account movement: transfers (``relation = transfer``, with the exact
  amount and time) and complaints' refund accounts (``relation = refund_to``: a customer asks for the
  refund to go to someone else's account).

Both are windowed (``GraphConfig.window_days`` back from the newest event) and are updated in place from new
events (:meth:`EntityGraph.update`); they persist as Parquet (:meth:`EntityGraph.save`, :func:`load`).
Everything is vectorised with polars; a Python loop never runs per event.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from riskguard.errors import ValidationFailed

DAY_MS = 86_400_000
KINDS: tuple[str, ...] = ("device", "ip", "ip24", "phone", "card", "merchant")
RELATIONS: tuple[str, ...] = ("uses", "contact", "failed_login")
#: money: exact decimals (the API accepts up to 8 decimal places)
AMOUNT = pl.Decimal(38, 8)

LINK_SCHEMA: dict[str, Any] = {
    "account": pl.String,
    "kind": pl.String,
    "value": pl.String,
    "relation": pl.String,
    "first_ms": pl.Int64,
    "last_ms": pl.Int64,
    "events": pl.Int64,
}
FLOW_SCHEMA: dict[str, Any] = {
    "src": pl.String,
    "dst": pl.String,
    "relation": pl.String,
    "amount": AMOUNT,
    "ts_ms": pl.Int64,
    "event_id": pl.String,
}
#: the envelope columns the builder reads (any other column is ignored; missing ones count as null)
EVENT_COLUMNS = (
    "event_id",
    "type",
    "occurred_at",
    "account_id",
    "amount",
    "counterparty_id",
    "merchant_id",
    "device_id",
    "ip",
    "phone",
    "card_id",
    "attributes",
)
_SOURCE: dict[str, str] = {
    "device": "device_id",
    "ip": "ip",
    "phone": "phone",
    "card": "card_id",
    "merchant": "merchant_id",
}


@dataclass(frozen=True)
class GraphConfig:
    """How the graph is built and cut. Every field is documented in docs/graph.md.

    ``max_degree`` caps, per identifier kind, how many accounts an identifier may link before it counts as
    a hub (public Wi-Fi, a carrier NAT address, a popular shop): hubs are left out of rings, dense blocks
    and association (they stay in the tables and in the investigator's view). ``attack_min_accounts`` and
    ``attack_max_success`` say when a device or address is a credential-stuffing tool: failed logins on at
    least that many accounts with at most that share of successful logins.
    """

    window_days: int = 90
    max_degree: dict[str, int] = field(
        default_factory=lambda: {"device": 100, "ip": 20, "ip24": 60, "phone": 100, "card": 20, "merchant": 40}
    )
    attack_min_accounts: int = 10
    attack_max_success: float = 0.3

    def __post_init__(self) -> None:
        errors = []
        if self.window_days < 1:
            errors.append({"loc": ["window_days"], "type": "value_error", "msg": "must be at least 1"})
        for kind, cap in self.max_degree.items():
            if kind not in KINDS:
                errors.append({"loc": ["max_degree", kind], "type": "value_error", "msg": f"kinds are {KINDS}"})
            elif cap < 2:
                errors.append({"loc": ["max_degree", kind], "type": "value_error", "msg": "must be at least 2"})
        if self.attack_min_accounts < 2:
            errors.append({"loc": ["attack_min_accounts"], "type": "value_error", "msg": "must be at least 2"})
        if not 0 <= self.attack_max_success <= 1:
            errors.append({"loc": ["attack_max_success"], "type": "value_error", "msg": "must be within 0..1"})
        if errors:
            raise ValidationFailed(errors)

    def cap(self, kind: str) -> int:
        return self.max_degree.get(kind, 10**9)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GraphConfig:
        return cls(**json.loads(text))


def _normalise(events: pl.DataFrame) -> pl.DataFrame:
    """The columns the builder needs, typed: ``ts_ms`` (UTC milliseconds), exact ``amount``, and the three
    attributes it reads (``success``, ``contact_phone``, ``refund_account``)."""
    missing = [c for c in ("event_id", "type", "occurred_at", "account_id") if c not in events.columns]
    if missing:
        raise ValidationFailed(
            [{"loc": ["events", c], "type": "missing", "msg": "every event needs this column"} for c in missing]
        )
    frame = events.select([c for c in EVENT_COLUMNS if c in events.columns])
    for name in EVENT_COLUMNS:
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(name))
    occurred = frame.schema["occurred_at"]
    if occurred == pl.String:
        ts = pl.col("occurred_at").str.to_datetime(time_zone="UTC", time_unit="ms")
    elif isinstance(occurred, pl.Datetime):
        ts = pl.col("occurred_at").dt.convert_time_zone("UTC") if occurred.time_zone else pl.col("occurred_at")
    else:
        raise ValidationFailed(
            [{"loc": ["events", "occurred_at"], "type": "type_error", "msg": "ISO-8601 text or a datetime"}]
        )
    frame = frame.with_columns(
        ts.dt.epoch("ms").alias("ts_ms"),
        pl.col("amount").cast(pl.String).cast(AMOUNT, strict=False).alias("amount"),
        pl.col("attributes").cast(pl.String),
    )
    return frame.with_columns(
        _attribute(frame["attributes"], "success").alias("success"),
        _attribute(frame["attributes"], "contact_phone").alias("contact_phone"),
        _attribute(frame["attributes"], "refund_account").alias("refund_account"),
    ).with_columns(ip24=pl.col("ip").str.extract(r"^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$", 1) + ".0/24")


def _attribute(attributes: pl.Series, key: str) -> pl.Series:
    """``attributes.<key>`` of every event as text (null where absent). The JSON is parsed only on the
    events whose text names the key (a login's ``success``, a complaint's ``contact_phone``): parsing every
    event's attributes three times was most of the cost of building the graph."""
    named = attributes.str.contains(f'"{key}"', literal=True).fill_null(False)
    out = pl.Series(key, [None] * len(attributes), dtype=pl.String)
    if named.any():
        rows = named.arg_true()
        out = out.scatter(rows, attributes.gather(rows).str.json_path_match(f"$.{key}"))
    return out


def extract(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(links, flows)`` of a batch of events (links aggregated within the batch)."""
    frame = _normalise(events)
    failed = (pl.col("type") == "login") & (pl.col("success") == "false")
    parts = []
    for kind in KINDS:
        column = "ip24" if kind == "ip24" else _SOURCE[kind]
        parts.append(
            frame.filter(pl.col(column).is_not_null()).select(
                pl.col("account_id").alias("account"),
                pl.lit(kind).alias("kind"),
                pl.col(column).alias("value"),
                pl.when(failed).then(pl.lit("failed_login")).otherwise(pl.lit("uses")).alias("relation"),
                "ts_ms",
            )
        )
    parts.append(
        frame.filter(pl.col("contact_phone").is_not_null()).select(
            pl.col("account_id").alias("account"),
            pl.lit("phone").alias("kind"),
            pl.col("contact_phone").alias("value"),
            pl.lit("contact").alias("relation"),
            "ts_ms",
        )
    )
    # each part has one kind (and the contact part one relation): grouping part by part keeps the
    # constant text out of the keys, which halves the cost of the grouping
    links = pl.concat(
        [
            part.group_by("account", "value", "relation")
            .agg(
                pl.col("ts_ms").min().alias("first_ms"),
                pl.col("ts_ms").max().alias("last_ms"),
                pl.len().cast(pl.Int64).alias("events"),
                pl.col("kind").first(),
            )
            .select(list(LINK_SCHEMA))
            for part in parts
        ]
    )
    transfers = frame.filter((pl.col("type") == "transfer") & pl.col("counterparty_id").is_not_null()).select(
        pl.col("account_id").alias("src"),
        pl.col("counterparty_id").alias("dst"),
        pl.lit("transfer").alias("relation"),
        "amount",
        "ts_ms",
        "event_id",
    )
    refunds = frame.filter(pl.col("refund_account").is_not_null()).select(
        pl.col("account_id").alias("src"),
        pl.col("refund_account").alias("dst"),
        pl.lit("refund_to").alias("relation"),
        pl.lit(None, dtype=AMOUNT).alias("amount"),
        "ts_ms",
        "event_id",
    )
    flows = pl.concat([transfers, refunds]).filter(pl.col("src") != pl.col("dst"))
    return links.select(list(LINK_SCHEMA)).cast(LINK_SCHEMA), flows.select(list(FLOW_SCHEMA)).cast(FLOW_SCHEMA)


class EntityGraph:
    """The windowed link and flow tables, updated from events as they come.

    ``update(events)`` folds a batch in (links merge: first and last times and counts; flows append,
    duplicates by ``event_id`` dropped) and drops what fell out of the window.
    """

    def __init__(self, config: GraphConfig | None = None) -> None:
        self.config = config or GraphConfig()
        self.links = pl.DataFrame(schema=LINK_SCHEMA)
        self.flows = pl.DataFrame(schema=FLOW_SCHEMA)
        self.latest_ms: int | None = None

    @classmethod
    def from_events(cls, events: pl.DataFrame, config: GraphConfig | None = None) -> EntityGraph:
        return cls(config).update(events)

    def update(self, events: pl.DataFrame) -> EntityGraph:
        if events.height == 0:
            return self
        links, flows = extract(events)
        newest = flows["ts_ms"].max() if flows.height else None
        newest_link = links["last_ms"].max() if links.height else None
        candidates = [v for v in (self.latest_ms, newest, newest_link) if v is not None]
        self.latest_ms = int(max(candidates)) if candidates else self.latest_ms  # type: ignore[call-overload]
        if self.links.height:
            links = (
                pl.concat([self.links, links])
                .group_by("account", "kind", "value", "relation")
                .agg(pl.col("first_ms").min(), pl.col("last_ms").max(), pl.col("events").sum())
                .select(list(LINK_SCHEMA))
            )
        if self.flows.height:
            flows = pl.concat([self.flows, flows]).unique("event_id", keep="first", maintain_order=True)
        self.links, self.flows = links, flows.sort("ts_ms")
        return self._prune()

    def _prune(self) -> EntityGraph:
        if self.latest_ms is None:
            return self
        since = self.latest_ms - self.config.window_days * DAY_MS
        self.links = self.links.filter(pl.col("last_ms") >= since)
        self.flows = self.flows.filter(pl.col("ts_ms") >= since)
        return self

    @property
    def edges(self) -> int:
        """Links plus flows: the size figure the benchmarks use."""
        return self.links.height + self.flows.height

    def save(self, directory: Path) -> None:
        """``links.parquet``, ``flows.parquet`` and ``graph.json`` (configuration and newest time)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.links.write_parquet(directory / "links.parquet")
        self.flows.write_parquet(directory / "flows.parquet")
        meta = {"config": json.loads(self.config.to_json()), "latest_ms": self.latest_ms}
        (directory / "graph.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load(directory: Path) -> EntityGraph:
    """A graph saved by :meth:`EntityGraph.save`."""
    meta_path = directory / "graph.json"
    if not meta_path.exists():
        raise ValidationFailed(
            [{"loc": ["graph"], "type": "missing", "msg": f"{directory} holds no saved graph (graph.json)"}]
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    graph = EntityGraph(GraphConfig(**meta["config"]))
    graph.links = pl.read_parquet(directory / "links.parquet").cast(LINK_SCHEMA)
    graph.flows = pl.read_parquet(directory / "flows.parquet").cast(FLOW_SCHEMA)
    graph.latest_ms = meta["latest_ms"]
    return graph
