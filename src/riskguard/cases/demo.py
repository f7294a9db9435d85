"""``riskguard demo --investigate``: after the demo streamed its world, leave work for investigators where
the served console sees it — the configured database (``RISKGUARD_DATABASE_URL``, by default the
``./var/riskguard.db`` that ``make run`` serves).

Steps, each of which a real installation runs on its own schedule: rebuild the entity graph from the event
log and save it where the service reads it (``RISKGUARD_GRAPH_DIR``, default ``var/graph``), which records
ring and dense-block alerts; trace the money of the world's telecom-fraud victim reports (one trace per
report, the way an investigator starts them); pull every source into the alert inbox.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

MAX_TRACES = 20


def investigate(guard: Any, world_dir: Path, console: Any) -> dict[str, Any]:
    """Graph refresh, victims' traces and an inbox sync on ``guard``'s database; returns what it made."""
    from riskguard.cases.service import CaseService
    from riskguard.errors import RiskguardError
    from riskguard.graph.api import graph_dir
    from riskguard.graph.refresh import refresh_service
    from riskguard.tracing.service import TraceRequest, TraceService
    from riskguard.tracing.sources import reports_from_world

    started = time.perf_counter()
    console.print(f"Rebuilding the entity graph into {graph_dir()} (rings, dense blocks, graph features)")
    graph = refresh_service(guard, save_dir=graph_dir(), actor="demo")
    traces = 0
    report_file = world_dir / "victim_reports.parquet"
    if report_file.exists():
        reports, _ = reports_from_world(world_dir)
        service = TraceService(guard)
        for report in reports[:MAX_TRACES]:
            try:
                service.create(TraceRequest(reports=[report]), actor="demo")
                traces += 1
            except RiskguardError:
                continue  # a report whose transfers were not decided (a partial world): nothing to trace
    cases = CaseService(guard)
    synced = cases.sync("demo")
    inbox = cases.alerts(limit=1)
    by_source = {source: counts["new"] for source, counts in synced["sources"].items()}
    console.print(
        f"Investigations: {graph['rings']} rings and {graph['blocks']} dense blocks found, {traces} victims' "
        f"traces run; the alert inbox holds {inbox['total']} alert groups "
        f"(new alerts by source: {', '.join(f'{k} {v}' for k, v in by_source.items())})"
    )
    return {
        "rings": graph["rings"],
        "blocks": graph["blocks"],
        "traces": traces,
        "new_alerts": by_source,
        "alert_groups": inbox["total"],
        "seconds": round(time.perf_counter() - started, 1),
    }
