"""Small SVG charts drawn on the server (stacked columns, horizontal bars).

Written by hand instead of a chart library: the dashboard needs two chart shapes, an SVG string needs no
script, no asset to install and no Content-Security-Policy exception, and it prints.
"""

from __future__ import annotations

import html

OUTCOME_COLOURS = {"allow": "#4caf50", "challenge": "#ffb300", "review": "#1e88e5", "block": "#e53935"}


def _e(value: object) -> str:
    return html.escape(str(value))


def stacked_columns(
    buckets: list[str], series: dict[str, list[int]], *, title: str, width: int = 640, height: int = 200
) -> str:
    """One column per bucket, stacked by series (decision outcomes), with a y-axis maximum and labels."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(buckets))]
    top = max([*totals, 1])
    left, bottom = 48, 34
    slot = (width - left - 8) / max(len(buckets), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height + bottom}" width="100%" role="img" '
        f'aria-label="{_e(title)}"><title>{_e(title)}</title>',
        f'<line x1="{left}" y1="{height}" x2="{width - 4}" y2="{height}" stroke="#999"/>',
        f'<text x="{left - 6}" y="12" text-anchor="end" font-size="11">{top:,}</text>',
        f'<text x="{left - 6}" y="{height}" text-anchor="end" font-size="11">0</text>',
    ]
    every = max(1, len(buckets) // 8)
    for i, bucket in enumerate(buckets):
        x = left + i * slot
        y = float(height)
        for name, values in series.items():
            h = values[i] / top * (height - 8)
            if h > 0:
                y -= h
                parts.append(
                    f'<rect x="{x + slot * 0.1:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{h:.1f}" '
                    f'fill="{OUTCOME_COLOURS.get(name, "#888")}"><title>{_e(bucket)} {_e(name)}: '
                    f"{values[i]:,}</title></rect>"
                )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height + 14}" text-anchor="middle" font-size="10">'
                f"{_e(bucket[5:] if len(bucket) >= 10 else bucket)}</text>"
            )
    for j, name in enumerate(series):
        x = left + j * 110
        parts.append(
            f'<rect x="{x}" y="{height + 20}" width="10" height="10" fill="{OUTCOME_COLOURS.get(name, "#888")}"/>'
            f'<text x="{x + 14}" y="{height + 29}" font-size="11">{_e(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def hbars(rows: list[tuple[str, int]], *, title: str, width: int = 420, bar_height: int = 18) -> str:
    """Horizontal bars, one per (label, count), longest first as given."""
    top = max([count for _, count in rows] + [1])
    label_w = 190
    height = bar_height * len(rows) + 4
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{_e(title)}">'
        f"<title>{_e(title)}</title>"
    ]
    for i, (label, count) in enumerate(rows):
        y = i * bar_height + 2
        w = count / top * (width - label_w - 60)
        short = label if len(label) <= 28 else label[:27] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" font-size="11">'
            f"<title>{_e(label)}</title>{_e(short)}</text>"
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_height - 4}" fill="#5c6bc0"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + bar_height * 0.7:.1f}" font-size="11">{count:,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
