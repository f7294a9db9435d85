"""The replay report as one self-contained HTML page: tables and inline SVG charts (no scripts, no CDN)."""

from __future__ import annotations

import html
from typing import Any

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def bars(title: str, groups: list[str], series: dict[str, list[float]], width: int = 560, height: int = 220) -> str:
    """Grouped bars: one group per category, one bar per series."""
    top = max([v for values in series.values() for v in values] + [1])
    slot = (width - 60) / max(len(groups), 1)
    bar = slot / (len(series) + 1)
    parts = [f'<svg width="{width}" height="{height + 40}" role="img"><title>{_e(title)}</title>']
    for g, group in enumerate(groups):
        x0 = 50 + g * slot
        for s, (_name, values) in enumerate(series.items()):
            h = (values[g] / top) * height
            parts.append(
                f'<rect x="{x0 + s * bar:.1f}" y="{height - h + 10:.1f}" width="{bar * 0.9:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS[s % len(COLOURS)]}"><title>{_e(group)}: {values[g]:,.0f}</title></rect>'
            )
        parts.append(
            f'<text x="{x0 + slot / 2:.1f}" y="{height + 28}" font-size="11" text-anchor="middle">{_e(group)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def lines(title: str, xs: list[str], series: dict[str, list[float | None]], width: int = 560, height: int = 220) -> str:
    values = [v for vs in series.values() for v in vs if v is not None]
    top = max([*values, 1e-9])
    step = (width - 60) / max(len(xs) - 1, 1)
    parts = [f'<svg width="{width}" height="{height + 40}" role="img"><title>{_e(title)}</title>']
    parts.append(f'<line x1="50" y1="{height + 10}" x2="{width - 10}" y2="{height + 10}" stroke="#999"/>')
    parts.append(f'<text x="4" y="16" font-size="11">{top:.3g}</text>')
    for s, (name, vs) in enumerate(series.items()):
        points = [
            f"{50 + i * step:.1f},{height + 10 - (v / top) * height:.1f}" for i, v in enumerate(vs) if v is not None
        ]
        colour = COLOURS[s % len(COLOURS)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>')
        parts.append(f'<text x="{width - 150}" y="{20 + 14 * s}" font-size="11" fill="{colour}">{_e(name)}</text>')
    for i, x in enumerate(xs):
        if len(xs) <= 12 or i % max(1, len(xs) // 8) == 0:
            parts.append(
                f'<text x="{50 + i * step:.1f}" y="{height + 28}" font-size="10" text-anchor="middle">{_e(x)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(report: dict[str, Any]) -> str:
    columns = report["columns"]
    labels = [c["label"] for c in columns]
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>riskguard replay</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}th{background:#f4f4f4}"
        "td:first-child,th:first-child{text-align:left}h2{margin-top:1.6em}",
        "</style></head><body>",
        "<h1>Replay report</h1>",
    ]
    h = report["history"]
    out.append(
        f"<p>{h['events']:,} events from {_e(h['from'])} to {_e(h['to'])}; {h['fraud_events']:,} fraud-labelled; "
        f"{h['labels']:,} labels.</p>"
    )
    out.append("<h2>Summary</h2>")

    def decisions_of(outcome: str) -> Any:
        return lambda c: f"{c['decisions'][outcome]:,}"

    def budget_recall(i: int) -> Any:
        return lambda c: _pct(c["budgets"][i]["recall"], 1)

    def budget_loss(i: int) -> Any:
        return lambda c: f"{c['budgets'][i]['loss_rate']:.3e}"

    metrics = [
        ("loss rate", lambda c: f"{c['loss_rate']:.3e}"),
        ("loss allowed", lambda c: c["loss_value_allowed"]),
        ("total value", lambda c: c["total_value"]),
        ("friction", lambda c: _pct(c["friction"])),
        ("recall (fraud events flagged)", lambda c: _pct(c["recall"], 1)),
        *[(f"decisions: {o}", decisions_of(o)) for o in ("allow", "challenge", "review", "block")],
    ]
    for i, budget in enumerate(columns[0]["budgets"]):
        name = _pct(budget["friction_budget"], 1)
        metrics.append((f"recall at {name} friction", budget_recall(i)))
        metrics.append((f"loss rate at {name} friction", budget_loss(i)))
    out.append(table(["", *labels], [[name, *(f(c) for c in columns)] for name, f in metrics]))
    if "equal_friction" in report:
        eq = report["equal_friction"]
        out.append(
            f"<p><b>At equal friction</b> ({_pct(eq['friction'])} of legitimate events): loss rate "
            f"{eq['baseline']['loss_rate']:.3e} ({_e(labels[0])}) vs "
            f"{eq['candidate']['loss_rate']:.3e} ({_e(labels[1])}); "
            f"recall {_pct(eq['baseline']['recall'], 1)} vs {_pct(eq['candidate']['recall'], 1)}.</p>"
        )
    out.append(
        bars(
            "decisions by outcome",
            ["challenge", "review", "block"],
            {c["label"]: [c["decisions"][o] for o in ("challenge", "review", "block")] for c in columns},
        )
    )
    out.append(
        lines(
            "loss rate at friction budgets",
            [_pct(b["friction_budget"], 1) for b in columns[0]["budgets"]],
            {c["label"]: [b["loss_rate"] for b in c["budgets"]] for c in columns},
        )
    )
    out.append("<h2>Typologies</h2>")
    names = sorted({t for c in columns for t in c["typologies"]})
    rows = []
    for name in names:
        row: list[Any] = [name]
        for c in columns:
            t = c["typologies"].get(name, {})
            row += [
                t.get("events", 0),
                _pct(t.get("recall"), 1),
                t.get("caught_value", "0.00"),
                t.get("loss_allowed", "0.00"),
            ]
        rows.append(row)
    heads = ["typology"] + [
        f"{h} ({lab})" for lab in labels for h in ("events", "recall", "value caught", "loss allowed")
    ]
    out.append(table(heads, rows))
    for c in columns:
        out.append(f"<h2>Rules: {_e(c['label'])}</h2>")
        ranked = sorted(c["rules"], key=lambda r: -r["hits"])
        out.append(
            table(
                ["rule", "mode", "hits", "fraud hits", "precision", "unique catches", "fraud value caught", "errors"],
                [
                    [
                        r["rule"],
                        r["mode"],
                        r["hits"],
                        r["fraud_hits"],
                        _pct(r["precision"], 1),
                        r["unique_catches"],
                        r["fraud_value_caught"],
                        r["errors"],
                    ]
                    for r in ranked
                ],
            )
        )
    if "changed" in report:
        ch = report["changed"]
        out.append(f"<h2>Changed decisions: {ch['count']:,} ({ch['fraud']:,} fraud)</h2>")
        out.append(table(["transition", "events"], [[k, v] for k, v in ch["transitions"].items()]))
        out.append(
            table(
                ["event", "type", "fraud", "before", "after", "rules before", "rules after"],
                [
                    [
                        e["event_id"],
                        e["type"],
                        e["fraud"],
                        e["before"],
                        e["after"],
                        ", ".join(e["rules_before"]),
                        ", ".join(e["rules_after"]),
                    ]
                    for e in ch["events"][:200]
                ],
            )
        )
    dr = report.get("drift", {})
    if dr.get("psi"):
        out.append(f"<h2>Drift (PSI per day against {_e(dr.get('reference'))})</h2>")
        out.append(lines("population stability", dr["days"], dr["psi"]))
        out.append(
            table(
                ["day", *dr["psi"]],
                [
                    [d, *(("–" if v[i] is None else f"{v[i]:.3f}") for v in dr["psi"].values())]
                    for i, d in enumerate(dr["days"])
                ],
            )
        )
    out.append("</body></html>")
    return "\n".join(out)
