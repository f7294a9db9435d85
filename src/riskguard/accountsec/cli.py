"""``riskguard breach`` and ``riskguard leak`` (adapters: parse, call, print).

- ``riskguard breach import FILE|DIR``: a breached-password corpus in range format (``HASH:COUNT`` lines,
  or a directory of per-prefix files of ``SUFFIX:COUNT`` lines); streaming, batched, idempotent.
- ``riskguard breach range PREFIX`` prints what ``GET /v1/breach/range/{prefix}`` answers.
- ``riskguard leak import FILE --name --source --discovered``: register a leak of personal data (CSV or
  JSON Lines); values are tokenised as they are read, accounts matched against the event log, flagged
  until the watch expires, and one outreach alert raised. ``leak match NAME`` matches again (accounts
  seen since), ``leak list`` and ``leak remove NAME``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from riskguard.device.cli import _with_guard  # action(guard) on the configured database, one-line errors

breach_app = typer.Typer(
    help="The breached-password corpus behind GET /v1/breach/range/{prefix}.", no_args_is_help=True
)
leak_app = typer.Typer(help="Registered leaks of personal data: import, match, list, remove.", no_args_is_help=True)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _logged_events(guard: Any) -> Any:
    from riskguard.events.schema import from_stored

    return (from_stored(payload) for _type, payload in guard.events.stream_since(EPOCH))


@breach_app.command("import")
def breach_import(
    path: Annotated[
        Path, typer.Argument(exists=True, readable=True, help="A HASH:COUNT file, or a directory of per-prefix files")
    ],
) -> None:
    """Import (or refresh) breached-password SHA-1 hashes and their counts."""

    def run(guard: Any) -> dict[str, Any]:
        started = time.perf_counter()
        result = guard.accountsec.corpus.import_path(path).as_dict()
        guard.audit.record(_actor(), "breach.import", str(path.name), result)
        result["seconds"] = round(time.perf_counter() - started, 2)
        result["corpus_size"] = guard.accountsec.corpus.size()
        return result

    _print(_with_guard(run))


@breach_app.command("range")
def breach_range(
    prefix: Annotated[str, typer.Argument(help="The first 5 hex digits of a password's SHA-1")],
    pad: Annotated[bool, typer.Option(help="Pad with count-0 lines as the API does on Add-Padding")] = False,
) -> None:
    """Print the suffixes and counts under a prefix (what the range API answers)."""
    from riskguard.accountsec.breach import check_prefix, render_range

    def run(guard: Any) -> str:
        rows = guard.accountsec.corpus.range(check_prefix(prefix, ("prefix",)))
        return render_range(rows, pad=pad, pad_to=guard.settings.breach_padding_lines)

    body = _with_guard(run)
    if body:
        typer.echo(body.replace("\r\n", "\n"))


def _actor() -> str:
    from riskguard.cli.main import ACTOR

    return ACTOR


def _date(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD or an ISO 8601 time)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@leak_app.command("import")
def leak_import(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV or JSON Lines")],
    name: Annotated[str, typer.Option(help="The leak's name (importing the same name again extends it)")],
    source: Annotated[str, typer.Option(help="Where it was found (forum, paste site, police notice...)")],
    discovered: Annotated[str, typer.Option(help="When it was discovered: YYYY-MM-DD (default: today)")] = "",
    watch_days: Annotated[
        float | None, typer.Option(help="Days the affected accounts stay flagged (default RISKGUARD_LEAK_WATCH_DAYS)")
    ] = None,
) -> None:
    """Register a leak: tokenise its phones, e-mails, ID and card numbers; flag matching accounts; alert."""
    from riskguard.accountsec.leaks import read_values

    when = _date(discovered) if discovered else datetime.now(UTC)

    def run(guard: Any) -> dict[str, Any]:
        started = time.perf_counter()
        result = guard.accountsec.leaks.import_leak(
            read_values(path),
            name=name,
            source=source,
            discovered_at=when,
            watch_days=watch_days if watch_days is not None else guard.settings.leak_watch_days,
            actor=_actor(),
            events=_logged_events(guard),
        )
        out = result.as_dict()
        out["seconds"] = round(time.perf_counter() - started, 2)
        return out

    _print(_with_guard(run))


@leak_app.command("match")
def leak_match(name: Annotated[str, typer.Argument(help="A registered leak's name")]) -> None:
    """Match a registered leak against the event log again (accounts that appeared since the import)."""

    def run(guard: Any) -> dict[str, Any]:
        return guard.accountsec.leaks.rematch(name, _logged_events(guard), actor=_actor()).as_dict()

    _print(_with_guard(run))


@leak_app.command("list")
def leak_list() -> None:
    """Registered leaks: name, source, discovery, expiry, identifiers and accounts flagged."""
    _print(_with_guard(lambda guard: guard.accountsec.leaks.list()))


@leak_app.command("remove")
def leak_remove(name: Annotated[str, typer.Argument(help="A registered leak's name")]) -> None:
    """Remove a leak, its tokens and its watch flags (audited)."""
    from riskguard.errors import NotFound

    def run(guard: Any) -> None:
        if not guard.accountsec.leaks.remove(name, _actor()):
            raise NotFound(f"no leak named {name!r}")

    _with_guard(run)
    typer.echo(f"removed leak {name!r}")
