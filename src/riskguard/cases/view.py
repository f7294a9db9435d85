"""What a case shows: its entities, a timeline, the ring graph around its accounts, fund-flow paths and the
decisions — assembled from the inbox, the decision log, the saved entity graph and stored traces.

The ring graph comes as Cytoscape.js elements (``{"nodes": [{"data": {...}}], "edges": [...]}``): the
neighbourhood of each case account in the graph ``riskguard graph refresh`` saved (``graph/neighbourhood.py``,
one hop from each account, at most ``GRAPH_ACCOUNTS`` accounts), joined with the links the case's own
events show (account → counterparty transfers, account — device / phone / card). Node ids are entity
references (``EntityRefs``), never values; labels are masked unless the view is revealed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from riskguard.cases.entities import EVENT_FIELDS, EntityRefs, masked_evidence
from riskguard.cases.records import Decided
from riskguard.errors import NotFound, RiskguardError
from riskguard.masking import mask

log = logging.getLogger("riskguard.cases")
GRAPH_ACCOUNTS = 25
GRAPH_NODES = 400
TIMELINE_EVENTS = 500


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def decision_item(item: Decided, show: Callable[[str | None], str | None]) -> dict[str, Any]:
    payload = item.payload
    return {
        "event_id": item.event_id,
        "type": item.type,
        "occurred_at": _iso(item.occurred_at),
        "account_id": show(item.account_id),
        "counterparty_id": show(payload.get("counterparty_id")),
        "amount": payload.get("amount"),
        "currency": payload.get("currency"),
        "decision": item.decision,
        "score": item.score,
        "reasons": item.reasons(),
        "strategy": (item.body or {}).get("strategy"),
        "decided_at": _iso(item.decided_at),
    }


def timeline(
    decided: list[Decided],
    alerts: list[dict[str, Any]],
    activity: list[dict[str, Any]],
    show: Callable[[str | None], str | None],
) -> list[dict[str, Any]]:
    """Events with their decisions and reasons, alerts, and the case's activity (notes, actions), in time order."""
    items: list[dict[str, Any]] = []
    for item in decided[:TIMELINE_EVENTS]:
        items.append({"at": _iso(item.occurred_at), "kind": "event", **decision_item(item, show)})
    for alert in alerts:
        items.append(
            {
                "at": alert["first_seen_at"],
                "kind": "alert",
                "alert_id": alert["id"],
                "source": alert["source"],
                "title": alert["title"],
                "priority": alert["priority"],
            }
        )
    for entry in activity:
        items.append(
            {
                "at": _iso(entry["at"]),
                "kind": "note" if entry["kind"] == "note" else "action",
                "action": entry["kind"],
                "actor": entry["actor"],
                "details": entry["details"] if show is _same else masked_evidence(entry["details"]),
            }
        )
    items.sort(key=lambda i: (i["at"] or "", i["kind"]))
    return items


def _same(value: str | None) -> str | None:
    return value


def shower(revealed: bool) -> Callable[[str | None], str | None]:
    return _same if revealed else mask


def ring_graph(
    refs: EntityRefs,
    case_entities: list[tuple[str, str]],
    decided: list[Decided],
    graph_loader: Callable[[], Any] | None,
    *,
    revealed: bool,
) -> dict[str, Any]:
    """Cytoscape.js elements: the case's accounts, their neighbourhood in the saved graph, and the links of
    the case's own events."""
    from riskguard.graph.neighbourhood import neighbourhood

    show = shower(revealed)
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}
    in_case = set(case_entities)

    def node(kind: str, value: str, distance: int = 0) -> str:
        ref = refs.ref(kind, value)
        if ref not in nodes:
            if len(nodes) >= GRAPH_NODES:
                return ""
            nodes[ref] = {
                "data": {
                    "id": ref,
                    "kind": kind,
                    "label": show(value),
                    "in_case": (kind, value) in in_case,
                    "distance": distance,
                }
            }
        return ref

    def edge(a: str, b: str, relation: str, events: int = 1) -> None:
        if not a or not b or a == b:
            return
        key = (a, b, relation)
        if key in edges:
            edges[key]["data"]["events"] += events
        else:
            edges[key] = {
                "data": {"id": f"e{len(edges)}", "source": a, "target": b, "relation": relation, "events": events}
            }

    accounts = [v for k, v in case_entities if k == "account"]
    for kind, value in case_entities:
        node(kind, value)
    source = "case"
    graph = None
    if graph_loader is not None:
        try:
            graph = graph_loader()
        except NotFound:
            graph = None
        except Exception:  # an unreadable saved graph must not take the case view down with it
            log.warning("the saved entity graph could not be read; the ring graph shows the case's own links")
            graph = None
    if graph is not None:
        source = "graph+case"
        for account in accounts[:GRAPH_ACCOUNTS]:
            try:
                hood = neighbourhood(graph, "account", account, hops=1, limit=200, unmask=True)
            except (NotFound, RiskguardError):
                continue
            for item in hood["edges"]:
                a = node(item["from"]["kind"], item["from"]["id"], 1)
                b = node(item["to"]["kind"], item["to"]["id"], 1)
                edge(a, b, item["relation"], int(item["events"]))
    for item in decided[:TIMELINE_EVENTS]:
        payload = item.payload
        owner = node("account", item.account_id)
        for field, kind in EVENT_FIELDS.items():
            value = payload.get(field)
            if field == "account_id" or not isinstance(value, str) or not value:
                continue
            if field == "counterparty_id":
                edge(owner, node("account", value, 1), item.type)
            elif kind != "ip" and kind != "merchant":
                edge(owner, node(kind, value, 1), "uses")
    return {
        "source": source,
        "masked": not revealed,
        "truncated": len(nodes) >= GRAPH_NODES,
        "elements": {"nodes": list(nodes.values()), "edges": list(edges.values())},
    }


def fund_flows(documents: list[dict[str, Any]], *, revealed: bool) -> list[dict[str, Any]]:
    """Each trace's money paths, from the victims' payments to the accounts holding their money (the
    freeze orders' evidence chains), with the trace's summary."""
    out = []
    for document in documents:
        paths = []
        for order in document.get("freeze_orders", []):
            for chain in order.get("paths", []):
                paths.append(
                    {
                        "report_id": chain.get("report_id"),
                        "account": order.get("account"),
                        "freezable": order.get("freezable"),
                        "urgency": order.get("urgency"),
                        "links": chain.get("links", []),
                    }
                )
        flow = {
            "trace_id": document.get("trace_id"),
            "as_of": document.get("as_of"),
            "rule": document.get("rule"),
            "summary": document.get("summary", {}),
            "victims": [
                {k: v.get(k) for k in ("report_id", "victim_account", "loss", "held", "freezable", "escaped")}
                for v in document.get("victims", [])
            ],
            "paths": paths,
        }
        out.append(flow if revealed else masked_evidence(flow))
    return out
