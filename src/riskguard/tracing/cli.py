"""``riskguard trace``: trace victims' money, freeze, plan returns, score mules (an adapter only).

Identifiers are masked in everything printed; ``--json FILE`` writes the result document, masked unless
``--reveal`` is given (the unmasked document is what a stop-payment request needs).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from riskguard.cli.errors import cli_errors

app = typer.Typer(
    help="Trace victims' money through mule accounts, freeze what remains, plan returns, score mules.",
    no_args_is_help=True,
)

RuleOption = Annotated[str, typer.Option(help="Allocation rule: libr, proportional, fifo or lifo")]
HopsOption = Annotated[int, typer.Option(help="Follow money at most this many accounts from the victim")]
MinOption = Annotated[str, typer.Option(help="Do not follow transfers carrying less traced money than this")]
TideOption = Annotated[bool, typer.Option(help="Return pooled money by rising tide instead of pro rata")]
JsonOption = Annotated[Path | None, typer.Option("--json", help="Write the full result document here")]
RevealOption = Annotated[bool, typer.Option(help="Write identifiers unmasked in --json (for a stop-payment request)")]


_errors = cli_errors


def _tracer(rule: str, max_hops: int, min_amount: str, rising_tide: bool, alerts: bool = True) -> Any:
    from riskguard.tracing import Tracer

    tracer = Tracer(rule, max_hops=max_hops, min_amount=min_amount, rising_tide=rising_tide, alerts=alerts)
    tracer.params(None)  # a bad rule or amount fails here, before any reading
    return tracer


def _write_json(document: dict[str, Any], path: Path, reveal: bool) -> None:
    from riskguard.tracing.document import masked

    path.write_text(
        json.dumps(document if reveal else masked(document), indent=1, ensure_ascii=False, default=str) + "\n",
        encoding="utf-8",
    )
    typer.echo(f"result written to {path}" + ("" if reveal else " (identifiers masked; --reveal to keep them)"))


def _console() -> Any:
    from riskguard.cli.main import _console as console

    return console()


def _print_document(document: dict[str, Any], *, top: int = 10) -> None:
    """The summary, the first freeze orders and the return plan, identifiers masked."""
    from rich.table import Table

    from riskguard.masking import mask

    console = _console()
    summary = document["summary"]
    console.print(
        f"[bold]{summary['reports']} reports[/bold], loss {summary['reported_loss']} {document['currency']}; "
        f"rule {document['rule']}, ≤ {document['max_hops']} hops, as of {document['as_of']}"
    )
    console.print(
        f"traced {summary['traced']}: held {summary['held']}, escaped {summary['escaped']}, stopped "
        f"{summary['stopped']}; freezable {summary['freezable']} on {summary['freeze_orders']} accounts; "
        f"return plan {summary['returned']}"
    )
    console.print(f"balances: {document['balance_basis']['assumption']}")
    orders = Table(title=f"freeze orders (first {min(top, len(document['freeze_orders']))})")
    for column in ("#", "account", "freezable", "balance", "urgency", "victims", "hops in path"):
        orders.add_column(column, justify="right" if column not in ("account", "urgency") else "left")
    for order in document["freeze_orders"][:top]:
        longest = max((len(p["links"]) for p in order["paths"]), default=0)
        orders.add_row(
            str(order["priority"]),
            mask(order["account"]),
            order["freezable"],
            order["balance"],
            order["urgency"],
            str(len(order["victims"])),
            str(longest),
        )
    console.print(orders)
    plan = document["return_plan"]
    victims = Table(
        title=f"return plan ({plan['method']}): frozen {plan['totals']['frozen']}, allocated "
        f"{plan['totals']['allocated']}, unallocated {plan['totals']['unallocated']}"
    )
    for column in ("report", "victim", "loss", "direct", "pooled", "recovery"):
        victims.add_column(column, justify="left" if column in ("report", "victim") else "right")
    for row in plan["victims"][:top]:
        victims.add_row(
            row["report_id"],
            mask(row["victim_account"]),
            row["loss"],
            row["direct"],
            row["pooled"],
            f"{row['recovery_rate']:.1%}",
        )
    console.print(victims)
    if document.get("alerts"):
        alerts = document["alerts"]
        console.print(
            f"poison alerts (review only, never amounts): {len(alerts['accounts'])} more accounts reachable"
            + (" (truncated)" if alerts["truncated"] else "")
        )


@app.command("run")
@_errors
def run(
    reports: Annotated[Path, typer.Argument(help="Victim reports: .json, .jsonl, .csv or .parquet")],
    world: Annotated[Path | None, typer.Option(help="Trace over this simulated world's ledger")] = None,
    events: Annotated[Path | None, typer.Option(help="Trace over this events file (.parquet, .csv, .jsonl)")] = None,
    rule: RuleOption = "libr",
    max_hops: HopsOption = 6,
    min_amount: MinOption = "10.00",
    as_of: Annotated[str | None, typer.Option(help="Trace as of this time (ISO 8601; default: latest report)")] = None,
    history_days: Annotated[int, typer.Option(help="Event store: read this many days before the first fraud")] = 30,
    rising_tide: TideOption = False,
    alerts: Annotated[bool, typer.Option(help="Also list poison-rule alert accounts")] = True,
    json_out: JsonOption = None,
    reveal: RevealOption = False,
) -> None:
    """Trace reports over the service's event store (stored, with an id), a world, or an events file."""
    from riskguard.tracing import ledger_from_events, ledger_from_world, reports_from_file

    parsed = reports_from_file(reports)
    when = None
    if as_of:
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError:
            raise typer.BadParameter(f"{as_of!r} is not an ISO 8601 time", param_hint="--as-of") from None
        if when.tzinfo is None:
            raise typer.BadParameter("give a time zone, e.g. 2026-01-05T12:00:00+08:00", param_hint="--as-of")
    tracer = _tracer(rule, max_hops, min_amount, rising_tide, alerts)
    if world is not None or events is not None:
        ledger = ledger_from_world(world) if world is not None else ledger_from_events(events)  # type: ignore[arg-type]
        document = tracer.run(ledger, parsed, as_of=when).document
    else:
        from riskguard.cli.main import ACTOR, _guard
        from riskguard.tracing.service import TraceRequest, TraceService

        request = TraceRequest(
            reports=parsed,
            rule=rule,
            max_hops=max_hops,
            min_amount=min_amount,
            as_of=when,  # type: ignore[arg-type]
            history_days=history_days,
            rising_tide=rising_tide,
            alerts=alerts,
        )
        guard = _guard()
        try:
            service = TraceService(guard)
            created = service.create(request, actor=ACTOR)
            document = service.get(created["trace_id"])
        finally:
            guard.close()
        typer.echo(f"trace {document['trace_id']} stored")
    _print_document(document)
    if json_out:
        _write_json(document, json_out, reveal)


@app.command("show")
@_errors
def show(trace_id: str, json_out: JsonOption = None, reveal: RevealOption = False) -> None:
    """Print a stored trace (and write its document with --json)."""
    from riskguard.cli.main import _guard
    from riskguard.tracing.service import TraceService

    guard = _guard()
    try:
        document = TraceService(guard).get(trace_id)
    finally:
        guard.close()
    _print_document(document)
    if json_out:
        _write_json(document, json_out, reveal)


@app.command("list")
@_errors
def list_traces(limit: Annotated[int, typer.Option(help="How many, newest first")] = 20) -> None:
    """Stored traces, newest first."""
    from riskguard.cli.main import _guard
    from riskguard.tracing.service import TraceService

    guard = _guard()
    try:
        for row in TraceService(guard).recent(limit):
            s = row["summary"]
            typer.echo(
                f"{row['trace_id']}  {row['created_at']:%Y-%m-%d %H:%M}  {row['rule']:<12} "
                f"{row['reports']:>5} reports  traced {s['traced']}  freezable {s['freezable']}"
            )
    finally:
        guard.close()


@app.command("freeze")
@_errors
def freeze(
    trace_id: str,
    list_name: Annotated[str, typer.Option("--list", help="The list to put the accounts on")] = "blocked_accounts",
    ttl_hours: Annotated[int, typer.Option(help="Hours until the entries expire (a stop-payment lasts 48)")] = 48,
    min_amount: Annotated[str, typer.Option(help="Only accounts with at least this much freezable")] = "0",
) -> None:
    """Put the accounts of a stored trace's freeze orders on a list the decision engine blocks."""
    from decimal import Decimal, InvalidOperation

    from riskguard.cli.main import ACTOR, _guard
    from riskguard.tracing.service import FreezeRequest, TraceService

    try:
        minimum = Decimal(min_amount)
    except InvalidOperation:
        raise typer.BadParameter(f"{min_amount!r} is not an amount", param_hint="--min-amount") from None
    guard = _guard()
    try:
        result = TraceService(guard).freeze(
            trace_id, FreezeRequest(list=list_name, ttl_hours=ttl_hours, min_amount=minimum), actor=ACTOR
        )
    finally:
        guard.close()
    typer.echo(f"{result['list']}: {result['added']} accounts added, expiring {result['expires_at']}")


@app.command("world")
@_errors
def world(
    directory: Annotated[Path, typer.Argument(help="A world written by `riskguard simulate`")],
    rule: Annotated[str, typer.Option(help="libr, proportional, fifo, lifo, or all (compare them)")] = "libr",
    typology: Annotated[str, typer.Option(help="Whose reports: a typology, or all")] = "telecom_fraud",
    max_hops: HopsOption = 6,
    min_amount: MinOption = "10.00",
    rising_tide: TideOption = False,
    json_out: JsonOption = None,
    reveal: RevealOption = False,
) -> None:
    """Trace a simulated world's victim reports at their report times and score against the truth:
    money traced to the right mule accounts, frozen before it escaped, recovered per victim."""
    from rich.table import Table

    from riskguard.tracing import RULES, ledger_from_world
    from riskguard.tracing.evaluate import evaluate_world

    rules = list(RULES) if rule == "all" else [rule]
    tracers = [_tracer(r, max_hops, min_amount, rising_tide, alerts=False) for r in rules]
    ledger = ledger_from_world(directory)
    results = [
        evaluate_world(directory, t, typology=None if typology == "all" else typology, ledger=ledger) for t in tracers
    ]
    first = results[0]
    console = _console()
    console.print(
        f"world {directory}: {first['reports']} {first['typology']} victim reports, loss {first['reported_loss']}; "
        f"≤ {max_hops} hops; reports traced at their report times"
    )
    console.print(f"balances: {first['balance_basis']['assumption']}")
    console.print(
        "to mules: share of the loss the trace ends on the gang's mule accounts (truth); trail: share of traced "
        "money received by them; frozen: stop-payments at the report times; still there: the truth, victims' "
        "money still on the gang's accounts then; recovered: the return plan, overall and per victim"
    )
    table = Table(title="trace, freeze, return against the simulated truth")
    for column in (
        "rule",
        "to mules",
        "trail",
        "frozen",
        "still there",
        "recovered",
        "median",
        "min",
        "max",
        "victims",
    ):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for result in results:
        per = result["recovery_per_victim"]
        table.add_row(
            result["rule"],
            f"{result['traced_to_mules_share']:.1%}",
            f"{result['trail_at_mules_share']:.1%}",
            f"{result['frozen_share']:.1%}",
            f"{result['still_there_share']:.1%}",
            f"{result['recovery_rate']:.1%}",
            f"{per['median']:.1%}",
            f"{per['min']:.1%}",
            f"{per['max']:.1%}",
            f"{per['victims_with_any']}/{result['reports']}",
        )
    console.print(table)
    if json_out:
        _write_json({"results": results}, json_out, reveal)


@app.command("mules")
@_errors
def mule_scores(
    world: Annotated[Path | None, typer.Option(help="Score a simulated world (and compare with its truth)")] = None,
    days: Annotated[int, typer.Option(help="Score the last DAYS of stored events")] = 30,
    publish: Annotated[bool, typer.Option(help="Publish the scores as mule.* features")] = True,
) -> None:
    """Compute mule scores (pass-through, dwell, fan-in/out, victim share, age) and publish them."""
    if world is not None:
        _world_mules(world)
        return
    from riskguard.cli.main import ACTOR, _guard
    from riskguard.tracing.service import TraceService

    guard = _guard()
    try:
        result = TraceService(guard).score_mules(days=days, publish=publish, actor=ACTOR)
    finally:
        guard.close()
    typer.echo(
        f"{result['accounts']} accounts scored ({result.get('reports', 0)} victim reports known); "
        + ", ".join(f"{k}: {v}" for k, v in result["published"].items())
        + ("" if publish else " (not published)")
    )


def _world_mules(world: Path) -> None:
    import polars as pl
    from rich.table import Table

    from riskguard.tracing import Tracer, ledger_from_world, reports_from_world
    from riskguard.tracing import mules as scoring
    from riskguard.tracing.evaluate import mule_accounts

    ledger = ledger_from_world(world)
    reports, _ = reports_from_world(world, None)
    trace = Tracer(alerts=False).run(ledger, reports).trace if reports else None
    scores = scoring.score(ledger, trace=trace)
    truth = set().union(*mule_accounts(world).values())
    frame = scores.frame.with_columns(mule=pl.col("account").is_in(list(truth)))
    table = Table(title=f"mule scores over {frame.height:,} accounts that received and sent money (medians)")
    columns = [c for c in frame.columns if c not in ("account", "mule")]
    table.add_column("accounts")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for label, part in (("mules (truth)", frame.filter(pl.col("mule"))), ("others", frame.filter(~pl.col("mule")))):
        medians = [part[c].drop_nulls().median() for c in columns]
        table.add_row(f"{label}: {part.height:,}", *["-" if m is None else f"{m:.3g}" for m in medians])
    _console().print(table)
