"""The ``riskguard`` command: serve, decide, simulate, demo, API keys, strategies and lists (an adapter only)."""

from __future__ import annotations

import difflib
import getpass
import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from riskguard.accountsec.cli import breach_app, leak_app
from riskguard.bus import cli as bus_cli
from riskguard.cases.cli import app as cases_app
from riskguard.cli.errors import cli_errors
from riskguard.cli.features import features_app
from riskguard.complaints.cli import app as complaints_app
from riskguard.console.cli import app as users_app
from riskguard.consortium.cli import app as consortium_app
from riskguard.device.cli import app as devices_app
from riskguard.graph.cli import graph_app
from riskguard.privacy.cli import keys_app, privacy_app
from riskguard.replay import cli as replay_cli
from riskguard.replay.cli import models_app
from riskguard.tracing.cli import app as trace_app

_errors = cli_errors


app = typer.Typer(
    help="riskguard: risk decisions against fraud, mules, takeover and fake accounts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
apikey_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
strategy_app = typer.Typer(help="Validate, publish, compare and roll back strategies.", no_args_is_help=True)
list_app = typer.Typer(help="Manage block, allow and watch lists.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")
app.add_typer(strategy_app, name="strategy")
app.add_typer(list_app, name="list")
app.add_typer(consortium_app, name="consortium")
app.add_typer(trace_app, name="trace")
app.add_typer(graph_app, name="graph")
app.add_typer(features_app, name="features")
app.add_typer(complaints_app, name="complaints")
app.add_typer(models_app, name="models")
app.add_typer(devices_app, name="devices")
app.add_typer(keys_app, name="keys")
app.add_typer(privacy_app, name="privacy")
app.add_typer(cases_app, name="cases")
app.add_typer(breach_app, name="breach")
app.add_typer(leak_app, name="leak")
app.add_typer(users_app, name="users")
app.command("replay")(replay_cli.replay)
app.command("consume")(bus_cli.consume)
app.add_typer(bus_cli.bus_app, name="bus")
app.command("train")(replay_cli.train)
app.command("retro")(replay_cli.retro)

ACTOR = f"cli:{getpass.getuser()}"


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _guard(background: bool = False, warm: bool = False) -> Any:
    """A RiskGuard on the configured database; ``warm`` rebuilds feature state (only deciding needs it)."""
    from riskguard.app import RiskGuard
    from riskguard.config import Settings
    from riskguard.logs import configure

    settings = Settings.from_env()
    configure(settings.log_level, json_lines=settings.log_json)
    return RiskGuard(settings, background=background, warm_features=warm)


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")
    return ""


def guard_console_admin(guard: Any) -> str | None:
    """Creates the console's ``admin`` user on an installation with none; its password, once."""
    from riskguard.console.users import UserRepository

    return UserRepository.for_settings(guard.engine, guard.settings).ensure_admin()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


@app.command()
@_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (RISKGUARD_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (RISKGUARD_PORT)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (RISKGUARD_WORKERS); >1 needs PostgreSQL + Redis")
    ] = None,
) -> None:
    """Run the HTTP service on the configured database (embedded SQLite by default)."""
    import uvicorn

    from riskguard.scale.cli import serve_workers

    if serve_workers(host, port, workers):  # several worker processes (docs/scale-out.md)
        return

    from riskguard.api.http import create_asgi
    from riskguard.runtime import tune_gc

    guard = _guard(background=True, warm=True)
    tune_gc()
    token = guard.ensure_admin_key()
    if token:
        typer.echo(
            f"A new installation: this admin API key is shown once; store it now.\n  export RISKGUARD_KEY={token}\n",
            err=True,
        )
    if guard.privacy.keyring_created:
        typer.echo(
            f"A new installation: field-encryption keys generated in {guard.privacy.keyring_path} (mode 0600); "
            "back it up with the database — without it the personal data cannot be read.\n",
            err=True,
        )
    console_password = guard_console_admin(guard)
    if console_password:
        typer.echo(
            "A new installation: console user 'admin' (shown once; change it with `riskguard users passwd admin`)\n"
            f"  sign in at http://{host or guard.settings.host}:{port or guard.settings.port}/console/ "
            f"with password {console_password}\n",
            err=True,
        )
    settings = guard.settings
    bind_host = host or settings.host
    bind_port = port or settings.port
    if not settings.auth:
        typer.echo("WARNING: RISKGUARD_AUTH=off: every request is admin. For local development only.", err=True)
    typer.echo(
        f"riskguard serving on http://{bind_host}:{bind_port} (docs at /docs); "
        f"strategy {guard.live.name} v{guard.live.version}",
        err=True,
    )
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it with the handler it found; with the
    # default one the process would die before ``guard.close()`` (no final feature snapshot, no orderly
    # writer shutdown). Raising SystemExit instead lets the ``finally`` below run.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(
            create_asgi(guard),
            host=bind_host,
            port=bind_port,
            log_level="warning",
            access_log=False,
            loop="uvloop",
            http="httptools",
        )
    finally:
        guard.close()


@app.command()
@_errors
def decide(
    event_file: Annotated[Path, typer.Argument(help="A JSON file with one event")],
    explain: Annotated[bool, typer.Option(help="Show every feature value and rule outcome")] = False,
) -> None:
    """Decide one event in-process on the configured database, and print the decision."""
    from riskguard.events.validate import parse_event

    raw = _read(event_file).encode()
    guard = _guard(warm=True)
    try:
        event = parse_event(raw, **guard.settings.event_limits)
        _print(guard.decide(event, with_explain=explain))
    finally:
        guard.close()


@app.command()
@_errors
def migrate() -> None:
    """Create or upgrade the database schema (serve does this too)."""
    guard = _guard()
    guard.close()
    typer.echo("database is at the newest schema")


@app.command("config")
@_errors
def show_config() -> None:
    """Print the effective settings (from RISKGUARD_* variables and defaults)."""
    from riskguard.config import Settings

    _print(Settings.from_env().redacted())


@app.command()
@_errors
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the world's Parquet files into")],
    accounts: Annotated[int, typer.Option(help="Accounts in the population")] = 10_000,
    days: Annotated[int, typer.Option(help="Days simulated")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed: the same options give the same files")] = 1,
    start: Annotated[
        str, typer.Option(help="First day (Beijing time), YYYY-MM-DD; the world must end before now")
    ] = "2026-01-01",
    intensity: Annotated[
        list[str] | None,
        typer.Option(help="TYPOLOGY=FACTOR, e.g. telecom_fraud=2 or card_testing=0 (repeat for several)"),
    ] = None,
) -> None:
    """Simulate a payment and lending platform and the gangs attacking it; write Parquet with ground truth."""
    from riskguard.sim.config import WorldConfig, parse_intensities
    from riskguard.sim.demo import generate

    config = WorldConfig(
        accounts=accounts,
        days=days,
        seed=seed,
        start=_date(start, "--start"),
        intensity=parse_intensities(intensity or []),
    )
    config.check_in_past()
    summary = generate(config, out, _console(stderr=True))
    typer.echo(
        f"world {summary['world_id']}: {summary['events']:,} events ({summary['fraud_events']:,} fraudulent), "
        f"{summary['accounts']:,} accounts, {len(summary['gangs'])} gangs, {summary['victim_reports']:,} victim "
        f"reports -> {out}"
    )


@app.command()
@_errors
def demo(
    accounts: Annotated[int, typer.Option(help="Accounts in the generated world")] = 3_000,
    days: Annotated[int, typer.Option(help="Days in the generated world")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed of the generated world")] = 1,
    start: Annotated[str, typer.Option(help="First day of the generated world, YYYY-MM-DD")] = "2026-01-01",
    world: Annotated[
        Path | None, typer.Option(help="Stream this world (from `riskguard simulate`) instead of generating one")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Keep the generated world in this directory")] = None,
    url: Annotated[
        str | None, typer.Option(help="A running service, e.g. http://127.0.0.1:8000 (default: in process)")
    ] = None,
    key: Annotated[
        str | None, typer.Option(envvar="RISKGUARD_KEY", help="API key for --url (scopes decide and label)")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Events per second (default: as fast as decided)")] = None,
    connections: Annotated[int, typer.Option(help="Concurrent HTTP connections with --url")] = 8,
    db: Annotated[Path | None, typer.Option(help="In process: keep the SQLite database at this path")] = None,
    strategy: Annotated[
        Path | None, typer.Option(help="In process: decide with this strategy file instead of the starter")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the summary as JSON here")] = None,
    devices: Annotated[
        bool, typer.Option(help="In process: customers' phones register attested keys and sign payments")
    ] = True,
    investigate: Annotated[
        bool | None,
        typer.Option(
            "--investigate/--no-investigate",
            help="Decide into the configured database (RISKGUARD_DATABASE_URL, ./var/riskguard.db: what `make run` "
            "serves), then rebuild the graph, trace victims' money and fill the alert inbox for the console "
            "(default: on when ./var/riskguard.db exists and no --db, --url or RISKGUARD_DATABASE_URL is given)",
        ),
    ] = None,
) -> None:
    """Stream a simulated world through riskguard and print what it caught, missed and cost."""
    from riskguard.sim.demo import DemoOptions, run_demo, write_json

    if rate is not None and rate <= 0:
        _fail("--rate must be positive")
    if db is not None and db.exists():
        _fail(f"--db {db} exists; the demo needs a fresh database")
    if investigate is None:
        investigate = _served_demo_installation(db, url)
        if investigate:
            _console().print(
                "Found the installation `make run` serves (./var/riskguard.db): the demo decides into it and fills "
                "the console's alert inbox (--no-investigate: a throwaway database instead)"
            )
    options = DemoOptions(
        accounts=accounts,
        days=days,
        seed=seed,
        start=_date(start, "--start"),
        world=world,
        keep_world=out,
        url=url,
        key=key,
        rate=rate,
        connections=connections,
        database=db,
        strategy=strategy,
        devices=devices,
        investigate=investigate,
    )
    summary = run_demo(options, _console())
    if json_out:
        write_json(summary, json_out)


def _served_demo_installation(db: Path | None, url: str | None) -> bool:
    """True when the demo runs beside the default installation of `make run` (the README's first command), so
    a new user's `riskguard demo` leaves alerts in the console they just signed in to. Never for a database
    named by RISKGUARD_DATABASE_URL: that may be a real installation."""
    import os

    if db is not None or url is not None or os.environ.get("RISKGUARD_DATABASE_URL"):
        return False
    return Path("var/riskguard.db").is_file()


def _console(*, stderr: bool = False) -> Any:
    """A rich console; 120 columns when writing to a file or pipe (rich would assume 80)."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 120)


def _date(text: str, option: str) -> Any:
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"{option} {text!r}: write a date as YYYY-MM-DD")


# ---------------------------------------------------------------------- API keys
@apikey_app.command("create")
@_errors
def apikey_create(
    scope: Annotated[list[str], typer.Option("--scope", help="decide, label or admin; repeat for several")],
    name: Annotated[str, typer.Option(help="Who the key is for")] = "service client",
) -> None:
    """Create an API key; the key is printed once and never stored."""
    guard = _guard()
    try:
        key, token = guard.api_keys.create(scope, name, actor=ACTOR)
    finally:
        guard.close()
    typer.echo(
        f"key id {key.key_id}, scopes {','.join(sorted(key.scopes))}. Store this key now; it is not shown again:",
        err=True,
    )
    typer.echo(token)


@apikey_app.command("list")
@_errors
def apikey_list() -> None:
    """List keys (ids, scopes, state; never the secrets)."""
    guard = _guard()
    try:
        _print(guard.api_keys.list())
    finally:
        guard.close()


@apikey_app.command("revoke")
@_errors
def apikey_revoke(key_id: str) -> None:
    """Revoke a key by id (running servers stop accepting it within a minute)."""
    guard = _guard()
    try:
        guard.api_keys.revoke(key_id, actor=ACTOR)
    finally:
        guard.close()
    typer.echo(f"revoked {key_id}")


# ---------------------------------------------------------------------- strategies
@strategy_app.command("validate")
@_errors
def strategy_validate(file: Path) -> None:
    """Check a strategy document: structure, features, lists, warnings and every CEL condition."""
    from riskguard.config import Settings
    from riskguard.decision.warnings import WarningCatalogue
    from riskguard.rules.strategy import compile_strategy

    settings = Settings.from_env()
    compiled = compile_strategy(_read(file), warning_keys=WarningCatalogue.from_file(settings.warnings_file).keys())
    modes: dict[str, int] = {}
    for rule in compiled.document.rules:
        modes[rule.mode] = modes.get(rule.mode, 0) + 1
    typer.echo(
        f"ok: {compiled.name} v{compiled.version}: {len(compiled.features)} features, "
        f"{len(compiled.lists)} lists, {len(compiled.document.rules)} rules "
        f"({', '.join(f'{n} {m}' for m, n in sorted(modes.items()))})"
    )


@strategy_app.command("publish")
@_errors
def strategy_publish(
    file: Path,
    shadow: Annotated[bool, typer.Option(help="Run it as the shadow (challenger) strategy")] = False,
    note: Annotated[str, typer.Option(help="Why, for the deployment history")] = "",
) -> None:
    """Validate, store and make a strategy live (or shadow); running servers switch within a second."""
    guard = _guard()
    try:
        compiled = guard.publish(_read(file), actor=ACTOR, role="shadow" if shadow else "live", note=note)
    finally:
        guard.close()
    typer.echo(f"published {compiled.name} v{compiled.version} as {'shadow' if shadow else 'live'}")


@strategy_app.command("list")
@_errors
def strategy_list() -> None:
    """Stored versions, and the live and shadow deployments."""
    guard = _guard()
    try:
        live, shadow = guard.strategies.current("live"), guard.strategies.current("shadow")
        for row in guard.strategies.versions():
            marks = []
            if live and (live.name, live.version) == (row["name"], row["version"]):
                marks.append("LIVE")
            if shadow and (shadow.name, shadow.version) == (row["name"], row["version"]):
                marks.append("SHADOW")
            typer.echo(
                f"{row['name']:<24} v{row['version']:<5} {row['created_at']:%Y-%m-%d %H:%M} "
                f"{row['created_by']:<16} {' '.join(marks)}"
            )
    finally:
        guard.close()


def _resolve(guard: Any, ref: str) -> tuple[str, str]:
    """A file path, ``live``, ``shadow``, ``NAME`` (newest) or ``NAME@VERSION`` → (label, text)."""
    path = Path(ref)
    if path.exists():
        return str(path), _read(path)
    if ref in ("live", "shadow"):
        deployment = guard.strategies.current(ref)
        if deployment is None:
            _fail(f"no {ref} strategy is deployed")
        ref = f"{deployment.name}@{deployment.version}"
    name, _, version = ref.partition("@")
    row = guard.strategies.get(name, int(version) if version else None)
    return f"{row['name']}@{row['version']}", row["document"]


@strategy_app.command("diff")
@_errors
def strategy_diff(
    first: Annotated[str, typer.Argument(help="File, live, shadow, NAME or NAME@VERSION")],
    second: Annotated[str | None, typer.Argument(help="The same; when given, FIRST is the old side")] = None,
) -> None:
    """Show what changes: `diff NEW` compares the live strategy with NEW; `diff OLD NEW` compares two."""
    a, b = ("live", first) if second is None else (first, second)
    from riskguard.rules.strategy import load_strategy

    guard = _guard()
    try:
        label_a, text_a = _resolve(guard, a)
        label_b, text_b = _resolve(guard, b)
    finally:
        guard.close()
    doc_a, doc_b = load_strategy(text_a), load_strategy(text_b)
    rules_a = {r.id: r for r in doc_a.rules}
    rules_b = {r.id: r for r in doc_b.rules}
    for rid in sorted(rules_b.keys() - rules_a.keys()):
        typer.echo(f"+ rule {rid}")
    for rid in sorted(rules_a.keys() - rules_b.keys()):
        typer.echo(f"- rule {rid}")
    for rid in sorted(rules_a.keys() & rules_b.keys()):
        if rules_a[rid] != rules_b[rid]:
            typer.echo(f"~ rule {rid}")
    feats_a = {f.name: f for f in doc_a.features}
    feats_b = {f.name: f for f in doc_b.features}
    for name in sorted(feats_b.keys() - feats_a.keys()):
        typer.echo(f"+ feature {name}")
    for name in sorted(feats_a.keys() - feats_b.keys()):
        typer.echo(f"- feature {name}")
    if doc_a.thresholds != doc_b.thresholds:
        typer.echo(f"~ thresholds {doc_a.thresholds} -> {doc_b.thresholds}")
    typer.echo("".join(difflib.unified_diff(text_a.splitlines(True), text_b.splitlines(True), label_a, label_b)))


@strategy_app.command("rollback")
@_errors
def strategy_rollback(
    to: Annotated[
        str | None, typer.Option("--to", help="VERSION of the live strategy, or NAME@VERSION (default: the previous)")
    ] = None,
) -> None:
    """Make the previously deployed version (or the one given) live again."""
    name = version = None
    if to:
        name_part, _, version_part = to.rpartition("@")
        if not version_part.isdigit():
            _fail(f"--to {to!r}: give VERSION or NAME@VERSION")
        name, version = (name_part or None), int(version_part)
    guard = _guard()
    try:
        name, version = guard.rollback(actor=ACTOR, version=version, name=name)
    finally:
        guard.close()
    typer.echo(f"rolled back: {name} v{version} is live")


@strategy_app.command("clear-shadow")
@_errors
def strategy_clear_shadow() -> None:
    """Stop running a shadow strategy."""
    guard = _guard()
    try:
        guard.strategies.deploy("shadow", None, None, ACTOR, note="cleared")
    finally:
        guard.close()
    typer.echo("no shadow strategy")


@strategy_app.command("show")
@_errors
def strategy_show(ref: Annotated[str, typer.Argument(help="live, shadow, NAME or NAME@VERSION")] = "live") -> None:
    """Print a stored strategy document."""
    guard = _guard()
    try:
        _label, text = _resolve(guard, ref)
    finally:
        guard.close()
    typer.echo(text, nl=not text.endswith("\n"))


# ---------------------------------------------------------------------- lists
@list_app.command("add")
@_errors
def list_add(
    name: str,
    values: list[str],
    reason: Annotated[str | None, typer.Option(help="Why (kept with the entry and in the audit log)")] = None,
    ttl: Annotated[str | None, typer.Option(help="Expire after e.g. 48h, 30d")] = None,
) -> None:
    """Add values to a list."""
    from riskguard.features.spec import UNIT_SECONDS, WINDOW

    expires = None
    if ttl:
        match = WINDOW.match(ttl)
        if not match:
            _fail(f"--ttl {ttl!r}: write e.g. 30m, 48h, 30d")
        expires = datetime.now(UTC) + timedelta(seconds=int(match.group(1)) * UNIT_SECONDS[match.group(2)])
    guard = _guard()
    try:
        count = guard.add_to_list(name, values, reason=reason, expires_at=expires, actor=ACTOR)
    finally:
        guard.close()
    typer.echo(f"{name}: {count} added" + (f", expiring {expires:%Y-%m-%d %H:%M} UTC" if expires else ""))


@list_app.command("remove")
@_errors
def list_remove(name: str, values: list[str]) -> None:
    """Remove values from a list."""
    guard = _guard()
    try:
        count = guard.remove_from_list(name, values, actor=ACTOR)
    finally:
        guard.close()
    typer.echo(f"{name}: {count} removed")


@list_app.command("show")
@_errors
def list_show(name: str) -> None:
    """Print a list's unexpired entries (values masked; the full values are in the database)."""
    from riskguard.masking import mask

    guard = _guard()
    try:
        for row in guard.lists.entries(name):
            expires = f"{row['expires_at']:%Y-%m-%d %H:%M}" if row["expires_at"] else "never"
            typer.echo(f"{mask(row['value'])}\texpires {expires}\t{row['reason'] or ''}")
    finally:
        guard.close()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
