"""One refresh: graph → rings, association risk, dense blocks, motifs → published features and alerts.

``analyse(graph, labels)`` computes everything in memory and returns a :class:`GraphResult`;
``refresh_service(rg, ...)`` runs it on a RiskGuard instance's event log (or on given events), publishes the
graph features with ``rg.publish_features`` (each source replaced whole) and records alerts.

Published sources, keyed by the entity's identifier (accounts; ring features also on the ring's binding
identifiers, so a strategy can look them up by ``device_id``, ``phone`` or ``counterparty_id``):
``graph.ring_size``, ``graph.ring_fraud_share``, ``graph.risk``, ``graph.in_dense_block`` and the motif
counts ``graph.fan_in``, ``graph.fan_out``, ``graph.pass_through_ratio``, ``graph.scatter_gather``,
``graph.gather_scatter``, ``graph.cycles``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from riskguard.graph.association import association_risk
from riskguard.graph.build import EntityGraph, GraphConfig
from riskguard.graph.dense import fraudar
from riskguard.graph.encode import encode
from riskguard.graph.motifs import MOTIF_COLUMNS, MotifConfig, motifs
from riskguard.graph.rings import RingConfig, Rings, find_rings
from riskguard.graph.view import Bipartite, binding_of

BLOCK_KINDS = ("device", "ip", "ip24", "phone", "card", "merchant")


@dataclass(frozen=True)
class RefreshConfig:
    graph: GraphConfig = field(default_factory=GraphConfig)
    rings: RingConfig = field(default_factory=RingConfig)
    motifs: MotifConfig = field(default_factory=MotifConfig)
    blocks: int = 5
    block_eps: float = 0.1
    block_lift: float = 2.0  # a block counts when its density is this many times the whole graph's
    block_min_accounts: int = 5
    risk_half_life_days: float = 30.0
    risk_restart: float = 0.15


@dataclass
class GraphResult:
    rings: Rings
    risk: pl.DataFrame  # account, risk
    blocks: list[dict[str, Any]]
    motifs: pl.DataFrame
    features: dict[str, dict[str, float]]
    timings: dict[str, float]

    def alerts(self) -> list[dict[str, Any]]:
        """Reported rings and dense blocks, with their evidence (what ``GraphAlertRepository`` stores)."""
        out = []
        reported = self.rings.reported()
        members = self.rings.members.join(reported.select("ring"), on="ring", how="semi")
        for ring in reported.iter_rows(named=True):
            own = members.filter(pl.col("ring") == ring["ring"])
            accounts = own.filter(pl.col("kind") == "account")["value"].to_list()
            binding_ids = own.filter(pl.col("role") != "account").select("kind", "value", "role", "binds")
            out.append(
                {
                    "kind": "ring",
                    "score": float(ring["accounts"] + ring["strong"] + ring["stars"] / 10),
                    "accounts": accounts,
                    "evidence": {
                        "members": accounts,
                        "binding": binding_ids.head(500).to_dicts(),
                        "first_activity_ms": ring["first_ms"],
                        "last_activity_ms": ring["last_ms"],
                        "known_fraud": ring["known_fraud"],
                        "fraud_share": ring["fraud_share"],
                    },
                }
            )
        for block in self.blocks:
            out.append(
                {
                    "kind": "block",
                    "score": block["lift"],
                    "accounts": block["accounts"],
                    "evidence": {
                        "members": block["accounts"],
                        "identifiers": block["identifiers"][:500],
                        "density": block["density"],
                        "lift": block["lift"],
                    },
                }
            )
        return out


def _fraud_seeds(labels: pl.DataFrame | None) -> list[tuple[str, int]]:
    if labels is None or labels.height == 0:
        return []
    confirmed = labels.filter(
        (pl.col("label") == "fraud") & (pl.col("entity_kind") == "account") & pl.col("entity_value").is_not_null()
    )
    at = confirmed["labelled_at"]
    millis = at.dt.epoch("ms") if at.dtype != pl.Int64 else at
    return list(zip(confirmed["entity_value"].to_list(), millis.to_list(), strict=True))


def _blocks(view: Bipartite, config: RefreshConfig) -> list[dict[str, Any]]:
    view = view.restrict(BLOCK_KINDS)
    view = view.subset(~view.rotating)  # a carrier's address pool names a network, not a group of people
    if not len(view.row):
        return []
    peeling = fraudar(view.row, view.col, view.n_accounts, view.n_idents, blocks=config.blocks, eps=config.block_eps)
    out = []
    for block in peeling.blocks:
        lift = block.density / peeling.density if peeling.density else 0.0
        if lift < config.block_lift or len(block.rows) < config.block_min_accounts:
            continue
        idents = view.encoded.idents[block.cols]
        out.append(
            {
                "accounts": view.accounts.gather(block.rows).to_list(),
                "identifiers": idents.select("kind", "value").to_dicts(),
                "density": block.density,
                "lift": lift,
            }
        )
    return out


#: computes the ring components and the association risk elsewhere (Spark: ``riskguard.spark.graph``):
#: ``offload(view, seeds) -> (component label per node, risk frame)``
Offload = Callable[[Bipartite, list[tuple[str, int]]], tuple[np.ndarray, pl.DataFrame]]


def analyse(
    graph: EntityGraph,
    labels: pl.DataFrame | None = None,
    config: RefreshConfig | None = None,
    *,
    offload: Offload | None = None,
) -> GraphResult:
    """Everything a refresh computes, in memory. The graph is encoded (``encode.py``) and cleaned
    (``view.py``) once; every step reuses both. ``offload``: the ring components and the association
    risk computed elsewhere (on Spark) instead of in-process."""
    config = config or RefreshConfig()
    timings: dict[str, float] = {}

    def timed(name: str, started: float) -> None:
        timings[name] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    encoded = encode(graph)
    view = binding_of(encoded, graph.config)
    timed("encode", started)
    components = None
    if offload is not None:
        started = time.perf_counter()
        components, offloaded_risk = offload(view, _fraud_seeds(labels))
        timed("offload", started)
    started = time.perf_counter()
    rings = find_rings(graph, config.rings, labels, view=view, components=components)
    timed("rings", started)
    started = time.perf_counter()
    if offload is None:
        risk = association_risk(
            graph,
            _fraud_seeds(labels),
            restart=config.risk_restart,
            half_life_days=config.risk_half_life_days,
            view=view,
        )
    else:
        risk = offloaded_risk
    timed("association", started)
    started = time.perf_counter()
    blocks = _blocks(view, config)
    timed("dense_blocks", started)
    started = time.perf_counter()
    flows = motifs(graph, config.motifs, encoded=encoded)
    timed("motifs", started)

    features: dict[str, dict[str, float]] = {}
    reported = rings.reported()
    members = rings.members.join(reported.select("ring", "accounts", "fraud_share"), on="ring", how="inner")
    # an entity in several reported rings takes the features of the largest (then the lowest ring id): the
    # members come in no particular order, and "first" of them made two refreshes of one graph differ
    members = members.sort(["accounts", "ring"], descending=[True, False]).unique(
        ["kind", "value"], keep="first", maintain_order=True
    )
    features["graph.ring_size"] = dict(zip(members["value"], members["accounts"].cast(pl.Float64), strict=True))
    features["graph.ring_fraud_share"] = dict(zip(members["value"], members["fraud_share"], strict=True))
    features["graph.risk"] = {a: float(r) for a, r in zip(risk["account"], risk["risk"], strict=True) if r > 0}
    in_block: dict[str, float] = {}
    for block in blocks:
        in_block.update(dict.fromkeys(block["accounts"], 1.0))
    features["graph.in_dense_block"] = in_block
    for column in MOTIF_COLUMNS:
        if column == "dwell_minutes":
            continue
        values = flows.filter(pl.col(column) > 0)
        features[f"graph.{column}"] = dict(zip(values["account"], values[column].cast(pl.Float64), strict=True))
    return GraphResult(rings, risk, blocks, flows, features, timings)


def events_from_store(rg: Any, window_days: int) -> pl.DataFrame:
    """The service's logged events of the last ``window_days`` (before the newest), as an envelope frame."""
    from sqlalchemy import func, select

    from riskguard.store.tables import events as events_table

    with rg.engine.connect() as connection:
        latest = connection.execute(select(func.max(events_table.c.occurred_at))).scalar()
    if latest is None:
        return pl.DataFrame()
    if latest.tzinfo is None:
        latest = latest.replace(tzinfo=UTC)
    rows = []
    for _type, payload in rg.events.stream_since(latest - timedelta(days=window_days)):
        body = json.loads(payload)
        body["attributes"] = json.dumps(body.get("attributes") or {}, ensure_ascii=False)
        rows.append(body)
    return pl.DataFrame(rows, infer_schema_length=None)


def labels_from_store(rg: Any) -> pl.DataFrame:
    from sqlalchemy import select

    from riskguard.privacy.service import open_rows
    from riskguard.store.tables import labels

    query = select(labels.c.entity_kind, labels.c.entity_value, labels.c.label, labels.c.labelled_at).where(
        labels.c.entity_kind.is_not(None)
    )
    with rg.engine.connect() as connection:
        rows = open_rows(connection, [row._asdict() for row in connection.execute(query)], "entity_value")
    schema = {
        "entity_kind": pl.String,
        "entity_value": pl.String,
        "label": pl.String,
        "labelled_at": pl.Datetime("us", "UTC"),
    }
    return pl.DataFrame(rows, schema=schema)


def refresh_service(
    rg: Any,
    *,
    events: pl.DataFrame | None = None,
    save_dir: Path | None = None,
    config: RefreshConfig | None = None,
    actor: str = "graph",
    engine: str | None = None,
) -> dict[str, Any]:
    """Builds the graph (from ``events`` or the service's log), analyses it, publishes the features (each
    source replaced), records alerts and, with ``save_dir``, saves the graph as Parquet. ``engine``:
    ``local`` (in-process) or ``spark`` (components and association on Spark, docs/spark.md); default
    ``RISKGUARD_BATCH_ENGINE``."""
    from riskguard.graph.alerts import GraphAlertRepository

    config = config or RefreshConfig()
    started = time.perf_counter()
    frame = events if events is not None else events_from_store(rg, config.graph.window_days)
    graph = EntityGraph(config.graph)
    if frame.height:
        graph.update(frame)
    built = time.perf_counter() - started
    offload, spark_stats = None, {}
    if (engine or rg.settings.batch_engine) == "spark":
        from riskguard.spark.graph import spark_offload
        from riskguard.spark.session import spark_session

        offload = spark_offload(spark_session(rg.settings, "riskguard-graph-refresh"), graph, config, spark_stats)
    result = analyse(graph, labels_from_store(rg), config, offload=offload)
    step = time.perf_counter()
    published = {
        source: rg.publish_features(source, values, replace=True, actor=actor)
        for source, values in result.features.items()
    }
    publishing = time.perf_counter() - step
    step = time.perf_counter()
    new_alerts = GraphAlertRepository(rg.engine).upsert(result.alerts(), datetime.now(UTC))
    if save_dir is not None:
        graph.save(save_dir)
    stored = time.perf_counter() - step
    return {
        "links": graph.links.height,
        "flows": graph.flows.height,
        "rings": result.rings.reported().height,
        "blocks": len(result.blocks),
        "new_alerts": new_alerts,
        "published": published,
        "seconds": {
            "build": round(built, 3),
            **result.timings,
            "publish": round(publishing, 3),
            "alerts_and_save": round(stored, 3),
            "total": round(time.perf_counter() - started, 3),
        },
        "engine": "spark" if offload is not None else "local",
        **({"spark": spark_stats} if spark_stats else {}),
        "compromised_accounts": result.rings.compromised.height,
        "risk_accounts": int(np.count_nonzero(result.risk["risk"].to_numpy())),
    }
