"""``riskguard replay``, ``riskguard train``, ``riskguard models`` and ``riskguard retro`` (adapters only)."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from riskguard.cli.errors import cli_errors

ACTOR = f"cli:{getpass.getuser()}"
models_app = typer.Typer(help="The model registry: list versions, show a model card.", no_args_is_help=True)


_errors = cli_errors


def _settings() -> Any:
    from riskguard.config import Settings

    return Settings.from_env()


def _registry() -> Any:
    from riskguard.models.registry import ModelRegistry
    from riskguard.store.db import migrate, open_engine

    settings = _settings()
    engine = open_engine(settings.database_url)
    migrate(engine)
    return ModelRegistry(engine)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        typer.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None


def _day_us(day: date | None) -> int | None:
    if day is None:
        return None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1_000_000)


def _lateness(text: str) -> float:
    from riskguard.features.spec import UNIT_SECONDS, WINDOW

    match = WINDOW.match(text.strip())
    if not match:
        typer.echo(f"error: --lateness {text!r}: write e.g. 0s, 30m, 1h", err=True)
        raise typer.Exit(2)
    return float(int(match.group(1)) * UNIT_SECONDS[match.group(2)])


def _lists(path: Path | None) -> dict[str, set[str]]:
    if path is None:
        return {}
    data = json.loads(_read(path))
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        typer.echo("error: --lists: a JSON object {list name: [values]}", err=True)
        raise typer.Exit(2)
    return {k: set(map(str, v)) for k, v in data.items()}


EventsOption = Annotated[Path, typer.Option("--events", help="Events: Parquet/CSV in the API envelope, or a world dir")]
LabelsOption = Annotated[
    Path | None, typer.Option("--labels", help="Labels with labelled_at (default: the world's labels.parquet)")
]


@_errors
def replay(
    events: EventsOption,
    strategy: Annotated[Path, typer.Option("--strategy", help="The strategy YAML to replay")],
    out: Annotated[Path, typer.Option("--out", help="Directory for report.html, report.json, decisions.parquet")],
    model: Annotated[str | None, typer.Option("--model", help="A model: version directory, NAME or NAME@N")] = None,
    vs: Annotated[Path | None, typer.Option("--vs", help="A second strategy to compare side by side")] = None,
    vs_model: Annotated[str | None, typer.Option("--vs-model", help="The model of the --vs strategy")] = None,
    labels: LabelsOption = None,
    lists: Annotated[Path | None, typer.Option("--lists", help="JSON {list: [values]} (default: empty lists)")] = None,
    lateness: Annotated[str, typer.Option(help="Feature lateness, as RISKGUARD_FEATURE_LATENESS_S")] = "1h",
    since: Annotated[
        datetime | None,
        typer.Option(help="Report on events from this day (UTC); earlier ones warm up features", formats=["%Y-%m-%d"]),
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="local (in-process) or spark (default RISKGUARD_BATCH_ENGINE; docs/spark.md)")
    ] = None,
) -> None:
    """Replay a history through a strategy (and model) in isolated state; write the report."""
    from riskguard.decision.warnings import WarningCatalogue
    from riskguard.replay.engine import decide
    from riskguard.replay.history import load_history
    from riskguard.replay.service import compile_for_replay, model_for, run

    settings = _settings()
    if engine not in (None, "local", "spark"):
        typer.echo(f"error: --engine {engine}: give local or spark", err=True)
        raise typer.Exit(2)
    keys = WarningCatalogue.from_file(settings.warnings_file).keys()
    decider = decide
    if (engine or settings.batch_engine) == "spark":
        from riskguard.spark.replay import SparkDecider
        from riskguard.spark.session import spark_session

        decider = SparkDecider(spark_session(settings, "riskguard-replay"), list(keys))
    registry = None
    needs_registry = any(m is not None and not Path(m).is_dir() for m in (model, vs_model))
    history = load_history(events, labels)
    pairs = []
    for path, ref in [(strategy, model)] + ([(vs, vs_model)] if vs is not None else []):
        compiled = compile_for_replay(_read(path), keys, with_model=ref is not None)
        if registry is None and (needs_registry or compiled.document.model is not None):
            registry = _registry()
        pairs.append((compiled, model_for(compiled, ref, registry)))
    document, decided = run(
        history,
        pairs,
        out=out,
        lists=_lists(lists),
        lateness_seconds=_lateness(lateness),
        report_since_us=_day_us(since.date() if since else None),
        decider=decider,
    )
    seconds = sum(
        d.timings.get("features_s", 0) + d.timings.get("rules_s", 0) + d.timings.get("stages_s", 0) for d in decided
    )
    typer.echo(f"{document['history']['events']:,} events replayed ({seconds:.1f} s of decisions)")
    for column in document["columns"]:
        typer.echo(
            f"  {column['label']}: loss rate {column['loss_rate']:.3e}, friction {column['friction']:.3%}, "
            f"recall {column['recall']:.1%}, decisions {column['decisions']}"
        )
    if "equal_friction" in document:
        eq = document["equal_friction"]
        typer.echo(
            f"  at equal friction ({eq['friction']:.3%}): loss rate {eq['baseline']['loss_rate']:.3e} -> "
            f"{eq['candidate']['loss_rate']:.3e}; {document['changed']['count']:,} decisions changed"
        )
    typer.echo(f"report: {out / 'report.html'} and {out / 'report.json'}")


@_errors
def train(
    events: EventsOption,
    features: Annotated[Path, typer.Option("--features", help="A strategy or features YAML (docs/models.md)")],
    out: Annotated[Path, typer.Option("--out", help="models/NAME: versions are written under it as vN/")],
    labels: LabelsOption = None,
    since: Annotated[
        datetime | None, typer.Option(help="Train on events from this day (UTC)", formats=["%Y-%m-%d"])
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="... up to this day (UTC), excluded", formats=["%Y-%m-%d"])
    ] = None,
    validation: Annotated[float, typer.Option(help="Share of the window (the latest) used for validation")] = 0.2,
    rounds: Annotated[int, typer.Option(help="Boosting rounds at most (early stopping on validation)")] = 300,
    register: Annotated[bool, typer.Option(help="Register the version in the database")] = True,
    lateness: Annotated[str, typer.Option(help="Feature lateness")] = "1h",
) -> None:
    """Train a LightGBM model on point-in-time features and register it as a new version."""
    from riskguard.models.inputs import load_feature_set
    from riskguard.models.registry import check_name
    from riskguard.models.train import train as fit
    from riskguard.models.train import write
    from riskguard.replay.history import load_history

    name = check_name(out.name)
    registry = _registry() if register else None
    if registry is not None:
        version = registry.next_version(name)
    else:
        existing = [int(p.name[1:]) for p in out.glob("v*") if p.name[1:].isdigit()] if out.is_dir() else []
        version = max(existing, default=0) + 1
    feature_set = load_feature_set(_read(features))
    history = load_history(events, labels)
    trained = fit(
        history,
        feature_set,
        name=name,
        version=version,
        validation_share=validation,
        rounds=rounds,
        lateness_seconds=_lateness(lateness),
        since_us=_day_us(since.date() if since else None),
        until_us=_day_us(until.date() if until else None),
    )
    directory = write(trained, out / f"v{version}")
    if registry is not None:
        registry.register(name, version, directory, trained.card, ACTOR)
    metrics = trained.card["metrics"]
    typer.echo(f"model {name} version {version}: {trained.card['trees']} trees -> {directory}")
    typer.echo(f"  validation: {json.dumps(metrics)}")


@models_app.command("list")
@_errors
def list_models(name: Annotated[str | None, typer.Argument(help="Only this model")] = None) -> None:
    """Registered model versions with their validation metrics."""
    for row in _registry().versions(name):
        typer.echo(
            f"{row['name']}@{row['version']}  {row['created_at']:%Y-%m-%d %H:%M}  {row['path']}  "
            f"{json.dumps(row['metrics'])}"
        )


@models_app.command("show")
@_errors
def show_model(ref: Annotated[str, typer.Argument(help="NAME, NAME@N or a version directory")]) -> None:
    """A model's card."""
    from riskguard.models.registry import load_model

    model = load_model(ref, None if Path(ref).is_dir() else _registry())
    typer.echo((model.path / "card.md").read_text(encoding="utf-8"))


@_errors
def retro(
    event_id: Annotated[str, typer.Argument(help="The event to review")],
    events: Annotated[
        Path | None, typer.Option("--events", help="Review a history file or world (default: the database)")
    ] = None,
    labels: LabelsOption = None,
    strategy: Annotated[
        Path | None, typer.Option("--strategy", help="A candidate strategy (default: the live one)")
    ] = None,
    days: Annotated[float, typer.Option(help="Timeline days before and after the event")] = 7.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the JSON document here")] = None,
    unmask: Annotated[bool, typer.Option(help="Show identifiers unmasked (audited)")] = False,
) -> None:
    """Reconstruct what happened around an event and which rules would have stopped it, and when."""
    from riskguard.replay.retro import from_database, from_history, readable

    source = _read(strategy) if strategy is not None else None
    if events is not None:
        from riskguard.replay.history import load_history

        document = from_history(
            load_history(events, labels), event_id, strategy_source=source, days=days, unmask=unmask
        )
    else:
        from riskguard.app import RiskGuard

        with RiskGuard(_settings(), background=False, warm_features=False) as guard:
            document = from_database(guard, event_id, strategy_source=source, days=days, unmask=unmask, actor=ACTOR)
    typer.echo(readable(document))
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        typer.echo(f"JSON: {json_out}")
