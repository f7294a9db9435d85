"""``riskguard cases``: sync the alert inbox, list alerts and cases, show a case, open and close cases,
export an evidence package and verify one (an adapter only). Identifiers are masked in everything printed;
an export is unmasked unless ``--masked`` (an audited reveal with purpose "evidence", role admin: whoever
runs the command holds the database and its keyring).
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from riskguard.cli.errors import cli_errors

app = typer.Typer(help="Investigations: alert inbox, cases, evidence packages.", no_args_is_help=True)
ACTOR = f"cli:{getpass.getuser()}"
CLI_ROLE = "admin"


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _service() -> Any:
    from riskguard.cases.service import CaseService
    from riskguard.cli.main import _guard

    guard = _guard()
    return CaseService(guard)


@app.command("sync")
@cli_errors
def sync() -> None:
    """Pull new alerts from review decisions, graph rings and blocks, complaint rings and traces (idempotent)."""
    service = _service()
    try:
        _print(service.sync(ACTOR))
    finally:
        service.guard.close()


@app.command("list")
@cli_errors
def list_alerts(
    status: Annotated[
        str, typer.Option(help="open, in_case, closed or all (cases: open, investigating, closed)")
    ] = "open",
    source: Annotated[str | None, typer.Option(help="review, graph, complaint, trace, leak, access or manual")] = None,
    sort: Annotated[str, typer.Option(help="priority, newest or oldest")] = "priority",
    limit: Annotated[int, typer.Option(help="How many alert groups")] = 20,
    cases: Annotated[bool, typer.Option("--cases", help="List cases instead of alerts")] = False,
) -> None:
    """The alert inbox (one line per group of merged alerts), or cases with --cases."""
    service = _service()
    try:
        if cases:
            page = service.cases(status=None if status == "all" else status, limit=limit)
            for case in page["cases"]:
                flag = " SLA BREACHED" if case["breached"] else ""
                typer.echo(
                    f"case {case['id']:>5}  {case['status']:<13} priority {case['priority']:>12}  "
                    f"due {case['due_at'][:16]}{flag}  {case['title']}"
                )
            typer.echo(f"{page['total']} cases")
            return
        page = service.alerts(status=None if status == "all" else status, source=source, sort=sort, limit=limit)
        for item in page["alerts"]:
            typer.echo(
                f"alert {item['id']:>6}  {item['status']:<8} priority {item['priority']:>12}  "
                f"{'+'.join(item['sources']):<16} x{item['alerts']:<3} {item['title']}"
            )
        typer.echo(f"{page['total']} alert groups")
    finally:
        service.guard.close()


@app.command("open")
@cli_errors
def open_case(
    alert_ids: Annotated[list[int], typer.Argument(help="Alert ids (each brings its group)")],
    title: Annotated[str | None, typer.Option(help="Case title (default: the first alert's)")] = None,
    assignee: Annotated[str | None, typer.Option(help="Who works the case")] = None,
) -> None:
    """Open a case from alerts."""
    service = _service()
    try:
        _print(service.open_case(alert_ids, actor=ACTOR, title=title, assignee=assignee))
    finally:
        service.guard.close()


@app.command("show")
@cli_errors
def show(
    case_id: Annotated[int, typer.Argument(help="Case id")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the whole (masked) case view here")] = None,
) -> None:
    """A case: header, entities, decisions, notes and actions (masked)."""
    service = _service()
    try:
        view = service.case(case_id)
    finally:
        service.guard.close()
    if json_out is not None:
        json_out.write_text(json.dumps(view, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    head = {k: view[k] for k in ("id", "title", "status", "resolution", "assignee", "priority", "due_at", "breached")}
    _print(head)
    typer.echo("entities: " + ", ".join(f"{e['kind']} {e['value']}" for e in view["entities"][:30]))
    for item in view["decisions"][:20]:
        reasons = ", ".join(r["code"] or r["rule"] or "" for r in item["reasons"])
        amount = item["amount"] or ""
        typer.echo(f"  {item['occurred_at'][:19]} {item['type']:<10} {amount:>12} {item['decision']:<9} {reasons}")
    for note in view["notes"]:
        typer.echo(f"  note {note['at'][:19]} {note['author']}: {note['text']}")
    for action in view["actions"]:
        typer.echo(f"  {action['at'][:19]} {action['actor']}: {action['action']}")
    graph = view["ring_graph"]["elements"]
    typer.echo(
        f"ring graph: {len(graph['nodes'])} nodes, {len(graph['edges'])} links; traces: {len(view['fund_flows'])}"
    )


@app.command("close")
@cli_errors
def close(
    case_id: Annotated[int, typer.Argument(help="Case id")],
    resolution: Annotated[str, typer.Option(help="confirmed_fraud, legitimate or inconclusive")],
    note: Annotated[str | None, typer.Option(help="Why")] = None,
) -> None:
    """Close a case; confirmed_fraud / legitimate label its accounts and review events."""
    service = _service()
    try:
        _print(service.close(case_id, resolution, actor=ACTOR, note=note))
    finally:
        service.guard.close()


@app.command("export")
@cli_errors
def export(
    case_id: Annotated[int, typer.Argument(help="Case id")],
    out: Annotated[Path, typer.Option("--out", help="The package: a .zip file, or a directory with --dir")],
    as_dir: Annotated[bool, typer.Option("--dir", help="Write a directory instead of a zip file")] = False,
    masked: Annotated[bool, typer.Option("--masked", help="Mask identifiers (default: unmasked, audited)")] = False,
) -> None:
    """Export a case's evidence package (evidence.json, report.html, manifest.json)."""
    if out.exists() and (not as_dir or any(out.iterdir())):
        typer.echo(f"error: {out} exists; choose a new path", err=True)
        raise typer.Exit(1)
    service = _service()
    try:
        manifest = service.export_evidence(
            case_id, out, actor=ACTOR, role=CLI_ROLE, revealed=not masked, as_zip=not as_dir
        )
    finally:
        service.guard.close()
    typer.echo(f"evidence package of case {case_id} written to {out}")
    typer.echo(f"package digest (SHA-256): {manifest['package_digest']}")
    for item in manifest["files"]:
        typer.echo(f"  {item['sha256']}  {item['size']:>9}  {item['path']}")


@app.command("verify")
def verify(
    package: Annotated[Path, typer.Argument(help="An evidence package: zip file or directory")],
    digest: Annotated[str | None, typer.Option(help="The package digest the platform recorded, to compare")] = None,
) -> None:
    """Check that an evidence package is complete and unaltered (exit status 1 if not)."""
    from riskguard.cases.evidence import verify as check

    if not package.exists():
        typer.echo(f"error: {package} does not exist", err=True)
        raise typer.Exit(2)
    result = check(package, expected_digest=digest)
    if result["ok"]:
        typer.echo(f"OK: case {result['case_id']}, {result['files']} files, package digest {result['package_digest']}")
        return
    typer.echo("FAILED: the package is incomplete or altered", err=True)
    for problem in result["problems"]:
        typer.echo(f"  - {problem}", err=True)
    raise typer.Exit(1)
