"""An entity's neighbourhood for investigators: who shares what with whom, up to a few hops.

Breadth-first over the links (account ↔ identifier, every relation, hubs included: an investigator wants
to see them, marked) and the money flows (account ↔ account). Each node keeps at most ``fanout``
neighbours per hop (a hub is marked ``truncated``), the walk stops at ``max_nodes``, and the result is
paged (``offset``/``limit``, ordered by distance, then kind and value). Identifiers are masked unless the
caller may see them (``unmask``); the HTTP adapter audits unmasked views.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from riskguard.errors import NotFound, ValidationFailed
from riskguard.graph.build import KINDS, EntityGraph
from riskguard.masking import mask

NODE_KINDS = ("account", *KINDS)
MAX_HOPS = 3


def neighbourhood(
    graph: EntityGraph,
    kind: str,
    value: str,
    *,
    hops: int = 2,
    fanout: int = 50,
    max_nodes: int = 2000,
    offset: int = 0,
    limit: int = 100,
    unmask: bool = False,
) -> dict[str, Any]:
    errors = []
    if kind not in NODE_KINDS:
        errors.append({"loc": ["path", "kind"], "type": "value_error", "msg": f"one of {', '.join(NODE_KINDS)}"})
    if not 1 <= hops <= MAX_HOPS:
        errors.append({"loc": ["query", "hops"], "type": "value_error", "msg": f"1 to {MAX_HOPS}"})
    if not 1 <= limit <= 500:
        errors.append({"loc": ["query", "limit"], "type": "value_error", "msg": "1 to 500"})
    if offset < 0:
        errors.append({"loc": ["query", "offset"], "type": "value_error", "msg": "0 or more"})
    if errors:
        raise ValidationFailed(errors)
    links = graph.links.select("account", "kind", "value", "relation", "events")
    flows = graph.flows.group_by("src", "dst", "relation").agg(pl.len().cast(pl.Int64).alias("events"))
    known = (
        links.filter(pl.col("account") == value).height
        or flows.filter((pl.col("src") == value) | (pl.col("dst") == value)).height
        if kind == "account"
        else links.filter((pl.col("kind") == kind) & (pl.col("value") == value)).height
    )
    if not known:
        raise NotFound(f"no {kind} with that identifier in the graph")
    seen: dict[tuple[str, str], int] = {(kind, value): 0}
    truncated: set[tuple[str, str]] = set()
    edges: list[dict[str, Any]] = []
    frontier = [(kind, value)]
    for depth in range(1, hops + 1):
        accounts = [v for k, v in frontier if k == "account"]
        idents = pl.DataFrame(
            [(k, v) for k, v in frontier if k != "account"],
            schema={"kind": pl.String, "value": pl.String},
            orient="row",
        )
        found = pl.concat(
            [
                links.filter(pl.col("account").is_in(accounts)).select(
                    pl.lit("account").alias("from_kind"),
                    pl.col("account").alias("from_value"),
                    pl.col("kind").alias("to_kind"),
                    pl.col("value").alias("to_value"),
                    "relation",
                    "events",
                ),
                links.join(idents, on=["kind", "value"], how="semi").select(
                    pl.col("kind").alias("from_kind"),
                    pl.col("value").alias("from_value"),
                    pl.lit("account").alias("to_kind"),
                    pl.col("account").alias("to_value"),
                    "relation",
                    "events",
                ),
                flows.filter(pl.col("src").is_in(accounts)).select(
                    pl.lit("account").alias("from_kind"),
                    pl.col("src").alias("from_value"),
                    pl.lit("account").alias("to_kind"),
                    pl.col("dst").alias("to_value"),
                    "relation",
                    "events",
                ),
                flows.filter(pl.col("dst").is_in(accounts)).select(
                    pl.lit("account").alias("from_kind"),
                    pl.col("dst").alias("from_value"),
                    pl.lit("account").alias("to_kind"),
                    pl.col("src").alias("to_value"),
                    (pl.col("relation") + "_from").alias("relation"),
                    "events",
                ),
            ]
        ).with_columns(pl.col("events").cast(pl.Int64))
        counts = found.group_by("from_kind", "from_value").agg(pl.len().alias("n"))
        for row in counts.filter(pl.col("n") > fanout).iter_rows():
            truncated.add((row[0], row[1]))
        found = found.sort("from_kind", "from_value", "events", descending=[False, False, True])
        found = found.filter(pl.int_range(pl.len()).over("from_kind", "from_value") < fanout)
        next_frontier = []
        for edge in found.iter_rows(named=True):
            target = (edge["to_kind"], edge["to_value"])
            edges.append(edge)
            if target not in seen and len(seen) < max_nodes:
                seen[target] = depth
                next_frontier.append(target)
        frontier = next_frontier
        if not frontier:
            break
    show = (lambda v: v) if unmask else mask
    nodes = sorted(seen.items(), key=lambda item: (item[1], item[0]))
    page = nodes[offset : offset + limit]
    on_page = {node for node, _ in page}
    return {
        "center": {"kind": kind, "id": show(value)},
        "hops": hops,
        "masked": not unmask,
        "total_nodes": len(nodes),
        "offset": offset,
        "limit": limit,
        "next_offset": offset + limit if offset + limit < len(nodes) else None,
        "nodes": [{"kind": k, "id": show(v), "distance": d, "truncated": (k, v) in truncated} for (k, v), d in page],
        "edges": [
            {
                "from": {"kind": e["from_kind"], "id": show(e["from_value"])},
                "to": {"kind": e["to_kind"], "id": show(e["to_value"])},
                "relation": e["relation"],
                "events": e["events"],
            }
            for e in edges
            if (e["from_kind"], e["from_value"]) in on_page or (e["to_kind"], e["to_value"]) in on_page
        ][:2000],
    }
