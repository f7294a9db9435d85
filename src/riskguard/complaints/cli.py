"""``riskguard complaints``: find the operator behind many customers' complaints and loan applications
(an adapter: parse, call, print). Everything printed is masked except ``show --unmask`` (audited)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from riskguard.cli.errors import cli_errors

app = typer.Typer(
    help="Organised complaints and loan intermediaries: templated texts, shared contacts, suspected agent rings.",
    no_args_is_help=True,
)


_errors = cli_errors


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@app.command("scan")
@_errors
def scan(
    source: Annotated[Path, typer.Argument(help="A world directory, a directory of Parquet event files, or one file")],
    out: Annotated[Path | None, typer.Option(help="Write assessments.parquet and rings.json (masked) here")] = None,
    min_customers: Annotated[int, typer.Option(help="Customers a ring spans at least")] = 3,
    attach_similarity: Annotated[float, typer.Option(help="Text similarity that ties a record to a ring")] = 0.5,
    link_window_days: Annotated[float, typer.Option(help="Days within which a shared identifier ties records")] = 90.0,
) -> None:
    """Analyse Parquet events offline in bulk (no database); on a simulated world, score against its truth."""
    import polars as pl

    from riskguard.complaints.analyzer import AnalyzerConfig, ComplaintAnalyzer
    from riskguard.complaints.evaluate import evaluate, world_truth
    from riskguard.complaints.evidence import mask_evidence, ring_alert
    from riskguard.complaints.records import from_frame, read_events

    config = AnalyzerConfig(
        min_customers=min_customers,
        single_kind_customers=max(5, min_customers),
        attach_similarity=attach_similarity,
        link_window_days=link_window_days,
    )
    started = time.perf_counter()
    records = list(from_frame(read_events(source)))
    analyzer = ComplaintAnalyzer(config)
    assessments = analyzer.build(records)
    rings = analyzer.rings()
    summary: dict[str, Any] = {
        "records": len(assessments),
        "transfers": len(analyzer.transfers),
        "rings": Counter(r.kind for r in rings),
        "routes": Counter(a.route for a in assessments),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if (source / "labels.parquet").exists():
        for score in evaluate(analyzer, assessments, world_truth(source)):
            name = "agent rings" if score.kind == "complaint" else "intermediary rings"
            typer.echo(f"{name}: precision {score.precision:.2f} recall {score.recall:.2f}")
            summary[score.kind] = score.to_dict()
    _print(summary)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        rows = [a.to_dict() for a in assessments]
        pl.DataFrame(
            {
                "event_id": [r["event_id"] for r in rows],
                "kind": [r["kind"] for r in rows],
                "account_id": [r["account_id"] for r in rows],
                "score": [r["score"] for r in rows],
                "route": [r["route"] for r in rows],
                "ring": [r["ring"]["key"] if r["ring"] else None for r in rows],
                "signals": [json.dumps(r["signals"], ensure_ascii=False) for r in rows],
            }
        ).write_parquet(out / "assessments.parquet")
        alerts = []
        for ring in rings:
            alert = ring_alert(analyzer, ring)
            alerts.append({**alert, "accounts": len(alert["accounts"]), "evidence": mask_evidence(alert["evidence"])})
        (out / "rings.json").write_text(json.dumps(alerts, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        typer.echo(f"written to {out}: assessments.parquet, rings.json (masked)")


@app.command("analyze")
@_errors
def analyze(
    file: Annotated[Path, typer.Argument(help='A JSON file: one event envelope, or {"events": [...]}')],
) -> None:
    """Score and route complaints or applications against everything stored (like POST /v1/complaints/analyze)."""
    from riskguard.cli.main import ACTOR, _fail, _guard, _read
    from riskguard.complaints.service import ComplaintService
    from riskguard.events.validate import parse_batch, parse_event

    body = _read(file).encode()
    try:
        batch = "events" in json.loads(body)
    except (json.JSONDecodeError, TypeError):
        _fail(f"{file}: not a JSON object")
        return
    guard = _guard()
    try:
        limits = guard.settings.event_limits
        events = parse_batch(body, max_events=100_000, **limits) if batch else [parse_event(body, **limits)]
        results = ComplaintService(guard).analyze(events, ACTOR)
    finally:
        guard.close()
    _print({"results": results} if batch else results[0])


@app.command("refresh")
@_errors
def refresh(
    events: Annotated[
        Path | None, typer.Option(help="Also take in these Parquet events (a world or an export)")
    ] = None,
) -> None:
    """Rebuild rings from every stored record in bulk, rewrite alerts, republish features."""
    from riskguard.cli.main import ACTOR, _guard
    from riskguard.complaints.records import read_events
    from riskguard.complaints.service import ComplaintService

    frame = read_events(events) if events is not None else None
    guard = _guard()
    try:
        summary = ComplaintService(guard).refresh(frame, actor=ACTOR)
    finally:
        guard.close()
    _print(summary)


@app.command("clusters")
@_errors
def clusters(
    status: Annotated[str, typer.Option(help="open, closed or all")] = "open",
    kind: Annotated[str | None, typer.Option(help="agent_ring or loan_ring")] = None,
    limit: Annotated[int, typer.Option(help="At most this many")] = 50,
) -> None:
    """Suspected rings (masked): id, kind, score, customers, when seen."""
    from riskguard.cli.main import _fail, _guard
    from riskguard.complaints.alerts import KINDS, STATUSES
    from riskguard.complaints.service import ComplaintService

    if status not in (*STATUSES, "all"):
        _fail("--status: open, closed or all")
    if kind is not None and kind not in KINDS:
        _fail(f"--kind: one of {', '.join(KINDS)}")
    guard = _guard()
    try:
        found = ComplaintService(guard).clusters(status=None if status == "all" else status, kind=kind, limit=limit)
    finally:
        guard.close()
    for alert in found:
        evidence = alert["evidence"]
        typer.echo(
            f"{alert['id']:>6}  {alert['kind']:<10} score {alert['score']:>5.1f}  "
            f"customers {evidence['customers']:>4}  records {evidence['records']:>5}  "
            f"tied by {','.join(evidence['tied_by'])}  {alert['status']}"
        )


@app.command("show")
@_errors
def show(
    alert_id: Annotated[int, typer.Argument(help="The ring's alert id")],
    unmask: Annotated[
        bool, typer.Option(help="Show personal data (the evidence view; written to the audit log)")
    ] = False,
) -> None:
    """One ring with its evidence: members, shared identifiers, text similarity, timeline."""
    from riskguard.cli.main import ACTOR, _guard
    from riskguard.complaints.service import ComplaintService

    guard = _guard()
    try:
        _print(ComplaintService(guard).cluster(alert_id, unmask=unmask, actor=ACTOR))
    finally:
        guard.close()
