"""The printable evidence report: one self-contained HTML page (no scripts, no external assets) laid out for
A4 print ("Print → Save as PDF" in any browser), with the ring graph drawn as an inline SVG on a circle.

Written by hand with ``html.escape`` on every value: the report is a fixed set of tables, which a template
engine would not make shorter.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

CSS = """
body { font: 11pt/1.4 "Noto Sans CJK SC", "Noto Sans", Arial, sans-serif; margin: 18mm; color: #111; }
h1 { font-size: 18pt; margin: 0 0 4pt; } h2 { font-size: 13pt; margin: 16pt 0 6pt; border-bottom: 1px solid #999; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; margin-bottom: 8pt; }
th, td { border: 1px solid #bbb; padding: 3pt 5pt; text-align: left; vertical-align: top; }
th { background: #eee; } .meta td:first-child { width: 28%; font-weight: bold; }
.mono { font-family: "DejaVu Sans Mono", monospace; } .small { font-size: 8pt; color: #444; }
@page { size: A4; margin: 15mm; } @media print { h2 { break-after: avoid; } tr { break-inside: avoid; } }
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list[Any]], empty: str = "none") -> str:
    if not rows:
        return f"<p class='small'>{_e(empty)}</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _reasons(reasons: list[dict[str, Any]]) -> str:
    return "; ".join(f"{r.get('code') or r.get('rule')}: {r.get('message') or ''}" for r in reasons)


def graph_svg(graph: dict[str, Any], size: int = 520) -> str:
    """Nodes on a circle (case entities on an inner one), edges as lines; labels are the node labels."""
    nodes = [n["data"] for n in graph.get("elements", {}).get("nodes", [])][:120]
    if not nodes:
        return "<p class='small'>no graph</p>"
    inner = [n for n in nodes if n.get("in_case")]
    outer = [n for n in nodes if not n.get("in_case")]
    centre = size / 2
    places: dict[str, tuple[float, float]] = {}
    for ring, radius in ((inner, size * 0.22 if outer else size * 0.38), (outer, size * 0.42)):
        for index, node in enumerate(ring):
            angle = 2 * math.pi * index / max(1, len(ring))
            places[node["id"]] = (centre + radius * math.cos(angle), centre + radius * math.sin(angle))
    lines = []
    for edge in graph["elements"].get("edges", []):
        data = edge["data"]
        if data["source"] in places and data["target"] in places:
            (x1, y1), (x2, y2) = places[data["source"]], places[data["target"]]
            lines.append(
                f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' stroke='#999' stroke-width='0.8'/>"
            )
    colours = {"account": "#c0392b", "device": "#2471a3", "phone": "#7d3c98", "card": "#b9770e"}
    dots = []
    for node in nodes:
        x, y = places[node["id"]]
        colour = colours.get(node.get("kind"), "#555")
        dots.append(
            f"<circle cx='{x:.1f}' cy='{y:.1f}' r='{6 if node.get('in_case') else 4}' fill='{colour}'/>"
            f"<text x='{x + 7:.1f}' y='{y + 3:.1f}' font-size='7'>{_e(node.get('label'))}</text>"
        )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{size}' height='{size}' viewBox='0 0 {size} {size}'>"
        + "".join(lines)
        + "".join(dots)
        + "</svg>"
    )


def render_html(document: dict[str, Any]) -> str:
    case = document["case"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Evidence package: case {_e(case['id'])}</title><style>{CSS}</style></head><body>",
        f"<h1>Evidence package — case {_e(case['id'])}: {_e(case['title'])}</h1>",
        f"<p class='small'>Exported {_e(document['exported_at'])} by {_e(document['exported_by'])}; "
        f"{'identifiers masked' if document['masked'] else 'identifiers unmasked (audited export)'}; "
        "the SHA-256 of every file is in manifest.json.</p>",
        "<h2>Case</h2>",
        "<table class='meta'><tbody>"
        + "".join(
            f"<tr><td>{_e(k)}</td><td>{_e(case.get(k))}</td></tr>"
            for k in (
                "status",
                "resolution",
                "priority",
                "assignee",
                "created_at",
                "created_by",
                "due_at",
                "closed_at",
                "trace_id",
            )
        )
        + "</tbody></table>",
        "<h2>Entities</h2>",
        _table(
            ["kind", "identifier", "lists"],
            [[e["kind"], e["value"], ", ".join(e.get("lists") or [])] for e in document["entities"]],
        ),
        "<h2>Alerts</h2>",
        _table(
            ["id", "source", "title", "score", "amount at risk", "priority", "first seen"],
            [
                [a["id"], a["source"], a["title"], a["score"], a["amount_at_risk"], a["priority"], a["first_seen_at"]]
                for a in document["alerts"]
            ],
        ),
        "<h2>Decisions and reasons</h2>",
        _table(
            ["event", "time", "type", "account", "counterparty", "amount", "decision", "score", "reasons"],
            [
                [
                    d["event_id"],
                    d["occurred_at"],
                    d["type"],
                    d["account_id"],
                    d["counterparty_id"],
                    f"{d['amount'] or ''} {d['currency'] or ''}".strip(),
                    d["decision"],
                    d["score"],
                    _reasons(d["reasons"]),
                ]
                for d in document["decisions"]
            ],
        ),
        "<h2>Fund flows</h2>",
    ]
    flows = document["fund_flows"]
    if not flows:
        parts.append("<p class='small'>no trace</p>")

    def chain(path: dict[str, Any]) -> str:
        links = path.get("links", [])
        return " → ".join(f"{x.get('from')}→{x.get('to')} {x.get('amount')} ({x.get('at')})" for x in links)

    for flow in flows:
        summary = flow.get("summary", {})
        parts.append(
            f"<p>Trace <span class='mono'>{_e(flow.get('trace_id'))}</span> as of {_e(flow.get('as_of'))} "
            f"(rule {_e(flow.get('rule'))}): reported loss {_e(summary.get('reported_loss'))}, traced "
            f"{_e(summary.get('traced'))}, held {_e(summary.get('held'))}, freezable {_e(summary.get('freezable'))}, "
            f"escaped {_e(summary.get('escaped'))}.</p>"
        )
        rows = [
            [path.get("report_id"), path.get("account"), path.get("freezable"), chain(path)]
            for path in flow.get("paths", [])
        ]
        parts.append(_table(["report", "holding account", "freezable", "path"], rows, "no money paths"))
    graph = document["ring_graph"]
    nodes = graph.get("elements", {}).get("nodes", [])
    edges = graph.get("elements", {}).get("edges", [])
    labels = {n["data"]["id"]: n["data"]["label"] for n in nodes}
    parts += [
        "<h2>Ring graph</h2>",
        f"<p class='small'>{len(nodes)} nodes, {len(edges)} links (source: {_e(graph.get('source'))}).</p>",
        graph_svg(graph),
        _table(
            ["from", "to", "relation", "events"],
            [
                [
                    labels.get(e["data"]["source"]),
                    labels.get(e["data"]["target"]),
                    e["data"]["relation"],
                    e["data"]["events"],
                ]
                for e in edges[:300]
            ],
        ),
        "<h2>Timeline</h2>",
        _table(
            ["time", "kind", "what"],
            [[t["at"], t["kind"], _timeline_text(t)] for t in document["timeline"]],
        ),
        "<h2>Analyst notes</h2>",
        _table(["time", "author", "note"], [[n["at"], n["author"], n["text"]] for n in document["notes"]]),
        "<h2>Actions</h2>",
        _table(
            ["time", "actor", "action", "details"],
            [[a["at"], a["actor"], a["action"], a["details"]] for a in document["actions"]],
        ),
        "</body></html>",
    ]
    return "\n".join(parts)


def _timeline_text(item: dict[str, Any]) -> str:
    if item["kind"] == "event":
        amount = f" {item.get('amount')} {item.get('currency') or ''}" if item.get("amount") else ""
        decided = f" → {item['decision']} ({item['score']})" if item.get("decision") else ""
        reasons = _reasons(item.get("reasons") or [])
        return f"{item['type']} {item['event_id']} by {item['account_id']}{amount}{decided} {reasons}"
    if item["kind"] == "alert":
        return f"alert {item['alert_id']} ({item['source']}): {item['title']}, priority {item['priority']}"
    if item["kind"] == "note":
        return f"{item['actor']}: {item['details'].get('text', '')}"
    return f"{item['actor']}: {item['action']} {item['details']}"
