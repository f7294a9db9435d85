"""``riskguard demo``: generate (or load) a world, stream it through riskguard, and show how it did.

Without ``url`` the service runs in this process on a temporary SQLite database with the starter strategy
(or the one given as ``strategy``): the same pipeline and durable recording as ``riskguard serve``. With
``url`` the events go to a running service's ``POST /v1/decisions``. The world's labels are then recorded
(``add_labels`` or ``POST /v1/labels``), and the decisions are scored against the ground truth
(``summary.py``).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from riskguard.errors import ConfigError
from riskguard.sim.config import DEFAULT_START, WorldConfig
from riskguard.sim.stream import Decided, HttpTarget, InProcessTarget
from riskguard.sim.summary import OUTCOMES, summarise
from riskguard.sim.world import simulate
from riskguard.sim.writer import envelope, read_events, write_world

#: the default demo world: generated, streamed and summarised in well under two minutes on two cores
DEMO_ACCOUNTS = 3_000
DEMO_DAYS = 5
DEMO_SEED = 1


@dataclass
class DemoOptions:
    accounts: int = DEMO_ACCOUNTS
    days: int = DEMO_DAYS
    seed: int = DEMO_SEED
    start: date = DEFAULT_START
    world: Path | None = None  # stream this world instead of generating one
    keep_world: Path | None = None  # write the generated world here (default: a temporary directory)
    url: str | None = None
    key: str | None = None
    rate: float | None = None
    connections: int = 8
    database: Path | None = None  # in process: keep the SQLite database here
    strategy: Path | None = None  # in process: publish this strategy instead of deciding with the starter
    labels: bool = True
    devices: bool = True  # in process: customers' phones register and sign with the reference client
    investigate: bool = False  # decide into the configured database, then graph, traces, alert inbox (cases/demo.py)


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def generate(config: WorldConfig, out: Path, console: Console) -> dict[str, Any]:
    """Simulates and writes a world, with a progress bar per stage."""
    with progress_bar(console) as bar:
        tasks: dict[str, Any] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, rate="")
            bar.update(tasks[stage], completed=done, total=total)

        world = simulate(config, tick)
        return write_world(world, out, tick)


def run_demo(options: DemoOptions, console: Console | None = None) -> dict[str, Any]:
    """Runs the whole demo and returns its summary (also printed on ``console``)."""
    console = console or Console()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="riskguard-demo-") as scratch:
        world_dir = options.world or options.keep_world or Path(scratch) / "world"
        if options.world is None:
            config = WorldConfig(accounts=options.accounts, days=options.days, seed=options.seed, start=options.start)
            config.check_in_past()
            console.print(
                f"Simulating {config.accounts:,} accounts over {config.days} days from {config.start} "
                f"(seed {config.seed}) into {world_dir}"
            )
            generate(config, world_dir, console)
        info = json.loads((world_dir / "world.json").read_text(encoding="utf-8"))
        events = read_events(world_dir)
        labels = pl.read_parquet(world_dir / "labels.parquet")
        console.print(
            f"World {info['world_id']}: {info['events']:,} events ({info['fraud_events']:,} fraudulent) from "
            f"{info['accounts']:,} accounts, {len(info['gangs'])} gangs, {info['victim_reports']} victim reports"
        )
        if options.url and options.strategy:
            raise ConfigError("--strategy applies in process; publish it on the service instead of using --url")
        if options.url:
            target: Any = HttpTarget(options.url, key=options.key, connections=options.connections)
            health = target.check()
            strategy = health.get("strategy") or {}
            console.print(
                f"Streaming to {options.url} (strategy {strategy.get('name')} v{strategy.get('version')}), "
                f"{options.connections} connections"
            )
            summary = _stream(target, events, labels, options, console)
            if options.investigate:  # the service decided into its database: investigate there too
                from riskguard.app import RiskGuard
                from riskguard.cases.demo import investigate
                from riskguard.config import Settings

                with RiskGuard(Settings.from_env(), background=False, warm_features=False) as guard:
                    summary["investigations"] = investigate(guard, world_dir, console)
        else:
            summary = _in_process(events, labels, options, console, Path(scratch), world_dir)
    summary["world"] = {
        "world_id": info["world_id"],
        "accounts": info["accounts"],
        "days": info["config"]["days"],
        "seed": info["config"]["seed"],
        "start": info["config"]["start"],
        "gangs": len(info["gangs"]),
    }
    summary["wall_s"] = round(time.perf_counter() - began, 1)
    render(summary, console)
    return summary


def _in_process(
    events: pl.DataFrame, labels: pl.DataFrame, options: DemoOptions, console: Console, scratch: Path, world_dir: Path
) -> dict[str, Any]:
    from riskguard.app import RiskGuard
    from riskguard.config import Settings
    from riskguard.logs import configure

    database: Any = options.database or scratch / "demo.db"
    configure("WARNING", json_lines=False)
    settings = Settings.from_env(environ={}, database_url=f"sqlite:///{database}")
    if options.investigate and options.database is None:  # the configured database, which `make run` serves
        settings = Settings.from_env()
        database = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", settings.database_url)
    with RiskGuard(settings, background=False) as guard:
        if options.strategy is not None:
            guard.publish(options.strategy.read_text(encoding="utf-8"), actor="demo", note="riskguard demo --strategy")
        assert guard.live is not None
        console.print(f"Deciding in process on {database} (strategy {guard.live.name} v{guard.live.version})")
        sign = None
        if options.devices:
            from riskguard.device.simworld import signer_for

            sign = signer_for(world_dir, guard)
            console.print("Customers' phones register attested keys and sign payments (riskguard.device.client)")
        summary = _stream(InProcessTarget(guard), events, labels, options, console, sign)
        if sign is not None:
            sign.settle()  # every registration stored (they share the decisions' group commits)
            summary["devices"] = {"registered": sign.registered, "signed_events": sign.signed}
        if options.investigate:
            from riskguard.cases.demo import investigate

            summary["investigations"] = investigate(guard, world_dir, console)
        return summary


def _stream(
    target: Any,
    events: pl.DataFrame,
    labels: pl.DataFrame,
    options: DemoOptions,
    console: Console,
    sign: Any = None,
) -> dict[str, Any]:
    decided: dict[str, Decided] = {}
    counts = dict.fromkeys(OUTCOMES, 0)
    with progress_bar(console) as bar:
        task = bar.add_task("decisions", total=events.height, rate="")
        started = time.perf_counter()
        shown = [started]

        def on_decided(d: Decided) -> None:
            decided[d.event_id] = d
            if d.decision in counts:
                counts[d.decision] += 1
            now = time.perf_counter()
            if now - shown[0] > 0.2 or len(decided) == events.height:
                shown[0] = now
                rate = len(decided) / (now - started)
                flagged = counts["challenge"] + counts["review"] + counts["block"]
                bar.update(task, completed=len(decided), rate=f"{rate:,.0f}/s, {flagged:,} flagged")

        bodies = _bodies(events) if sign is None else map(sign, _bodies(events))
        target.stream(bodies, on_decided, options.rate)
        wall = time.perf_counter() - started
        bar.update(task, completed=len(decided))
    summary = summarise(events, labels, decided, wall_s=wall)
    if options.labels:
        items = label_items(labels)
        recorded = target.post_labels(items) if items else 0
        summary["labels_recorded"] = recorded
    return summary


def _bodies(events: pl.DataFrame) -> Any:
    for row in events.iter_rows(named=True):
        yield envelope(row)


def label_items(labels: pl.DataFrame) -> list[dict[str, Any]]:
    """The world's labels as ``POST /v1/labels`` items (source ``simulator``; the note names gang and role)."""
    items = []
    for row in labels.iter_rows(named=True):
        item: dict[str, Any] = {
            "label": row["label"],
            "source": "simulator",
            "typology": row["typology"],
            "labelled_at": row["labelled_at"].isoformat(),
            "note": f"gang {row['gang_id']}, {row['role']}",
        }
        if row["label_kind"] == "event":
            item["event_id"] = row["event_id"]
        else:
            item["entity"] = {"kind": row["entity_kind"], "value": row["entity_value"]}
        items.append(item)
    return items


def _money(value: str) -> str:
    whole, _, cents = value.partition(".")
    return f"{int(whole):,}.{cents or '00'}"


def _yuan(value: str) -> str:
    """A decimal string as whole yuan with thousands separators (keeps the table narrow)."""
    return f"{Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP):,}"


def render(summary: dict[str, Any], console: Console) -> None:
    """Prints the summary as tables."""
    world = summary.get("world", {})
    console.print()
    console.rule("[bold]riskguard demo: summary")
    if world:
        console.print(
            f"world {world['world_id']}: {world['accounts']:,} accounts, {world['days']} days from "
            f"{world['start']}, seed {world['seed']}, {world['gangs']} gangs"
        )
    rate = summary.get("events_per_s")
    console.print(
        f"events: {summary['events']:,} streamed, {summary['decided']:,} decided, {summary['errors']:,} errors"
        + (f"; {rate:,.0f} decisions/s over {summary['stream_s']} s" if rate else "")
    )
    for example in summary.get("error_examples", []):
        console.print(f"  error: {example}", style="red")
    decisions = summary["decisions"]
    total = max(1, sum(decisions.values()))
    console.print("decisions: " + ", ".join(f"{o} {n:,} ({n / total:.1%})" for o, n in decisions.items()))

    table = Table(
        title="fraud caught (challenge, review or block) and missed (allow), per typology; values in yuan",
        title_justify="left",
    )
    table.add_column("typology", no_wrap=True, min_width=18)
    for column in ("events", "caught", "fraud value", "caught value", "missed value", "laundered", "laundered caught"):
        table.add_column(column, justify="right", no_wrap=True)
    for typology, row in summary["typologies"].items():
        events = row["events"]
        table.add_row(
            typology,
            f"{events:,}",
            f"{row['caught_events']:,} ({row['caught_events'] / max(1, events):.0%})",
            _yuan(row["fraud_value"]),
            _yuan(row["caught_value"]),
            _yuan(row["missed_value"]),
            _yuan(row["laundered_value"]),
            _yuan(row["laundered_caught_value"]),
        )
    console.print(table)
    console.print(
        f"loss rate: {summary['loss_rate']:.3e} (fraud losses allowed {_money(summary['loss_value_allowed'])} / "
        f"value moved {_money(summary['total_value'])} CNY)"
    )
    by_outcome = ", ".join(f"{o} {n:,}" for o, n in summary["friction_by_outcome"].items())
    console.print(
        f"friction: {summary['friction']:.2%} of legitimate events challenged, reviewed or blocked "
        f"({summary['legit_challenged']:,} of {summary['legit_events']:,}: {by_outcome})"
    )
    if summary["friction_rules"]:
        console.print(
            "  most frequent rules on legitimate events: "
            + ", ".join(f"{rule} {n:,}" for rule, n in summary["friction_rules"])
        )
    latency, trip = summary["latency_ms"], summary["round_trip_ms"]
    console.print(
        f"latency: pipeline p50 {latency['p50']:.2f} ms, p99 {latency['p99']:.2f} ms; "
        f"durable answer p50 {trip['p50']:.2f} ms, p99 {trip['p99']:.2f} ms"
    )
    if "devices" in summary:
        registered = ", ".join(f"{kind} {n:,}" for kind, n in summary["devices"]["registered"].items())
        console.print(f"devices registered: {registered}; {summary['devices']['signed_events']:,} events signed")
    if "labels_recorded" in summary:
        console.print(f"labels recorded: {summary['labels_recorded']:,} (source 'simulator')")
    if "wall_s" in summary:
        console.print(f"wall time: {summary['wall_s']} s")


def write_json(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
