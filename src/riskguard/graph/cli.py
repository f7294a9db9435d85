"""``riskguard graph refresh`` and ``riskguard graph evaluate`` (an adapter: parse, call, print)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

graph_app = typer.Typer(
    help="Entity graph: rings, association risk, dense blocks, motifs, evaluation.", no_args_is_help=True
)


@graph_app.command("refresh")
def refresh(
    events: Annotated[
        Path | None, typer.Option(help="Parquet events (a world or an export) instead of the service's event log")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to save the graph (default RISKGUARD_GRAPH_DIR or var/graph)")
    ] = None,
    window_days: Annotated[int, typer.Option(help="Days of events the graph keeps")] = 90,
    engine: Annotated[
        str | None, typer.Option(help="local (in-process) or spark (default RISKGUARD_BATCH_ENGINE; docs/spark.md)")
    ] = None,
) -> None:
    """Rebuild the graph, publish graph features to live decisions and record ring and block alerts."""
    import polars as pl

    from riskguard.cli.main import _errors, _fail, _guard
    from riskguard.graph.api import graph_dir
    from riskguard.graph.build import GraphConfig
    from riskguard.graph.refresh import RefreshConfig, refresh_service

    @_errors
    def run() -> None:
        if engine not in (None, "local", "spark"):
            _fail(f"--engine {engine}: give local or spark")
        frame = None
        if events is not None:
            files = sorted(events.glob("**/*.parquet")) if events.is_dir() else [events]
            files = [f for f in files if f.parent.name == "events" or not events.is_dir()] or files
            if not files:
                _fail(f"--events {events}: no Parquet files there")
            try:
                frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
            except Exception as exc:  # polars raises several types on unreadable files
                _fail(f"--events {events}: {exc}")
        guard = _guard()
        try:
            summary = refresh_service(
                guard,
                events=frame,
                save_dir=out or graph_dir(),
                config=RefreshConfig(graph=GraphConfig(window_days=window_days)),
                actor="cli:graph",
                engine=engine,
            )
        finally:
            guard.close()
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))

    run()


@graph_app.command("evaluate")
def evaluate(
    nodes: Annotated[Path, typer.Option(help="Parquet: node_id, f_* features, label (0/1)")],
    edges: Annotated[Path, typer.Option(help="Parquet: src, dst")],
    splits: Annotated[Path, typer.Option(help="Parquet: node_id, split (train/val/test), optional fold")],
    directed: Annotated[bool, typer.Option(help="Edges are directed (aggregate in- and out-neighbours apart)")] = False,
) -> None:
    """ROC-AUC and AP on test nodes: the supervised model and each unsupervised score (mean ± std over folds)."""
    from riskguard.cli.main import _errors
    from riskguard.graph.evaluate import evaluate as run_evaluation
    from riskguard.graph.evaluate import load_graph, render

    @_errors
    def run() -> None:
        graph = load_graph(nodes, edges, splits)
        for line in render(run_evaluation(graph, directed=directed)):
            typer.echo(line)

    run()
