"""``riskguard consume NAME`` and ``riskguard bus lag|relay|dead`` (an adapter: parse, call, print)."""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated, Any

import typer

from riskguard.cli.errors import cli_errors
from riskguard.errors import ConfigError

bus_app = typer.Typer(help="Event bus: consumer lag, the outbox relay, dead letters.", no_args_is_help=True)


def _guard() -> Any:
    from riskguard.app import RiskGuard
    from riskguard.config import Settings
    from riskguard.logs import configure

    settings = Settings.from_env()
    configure(settings.log_level, json_lines=settings.log_json)
    if not settings.bus_enabled:
        raise ConfigError("the event bus is off: set RISKGUARD_BUS_ENABLED=1 (and RISKGUARD_BUS_BACKEND)")
    return RiskGuard(settings, background=False, warm_features=False)


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


@cli_errors
def consume(
    name: Annotated[str, typer.Argument(help="flows, complaints or graph")],
    member: Annotated[str | None, typer.Option(help="This process's name in the group (default host-pid)")] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Messages per fetch")] = 200,
    block_ms: Annotated[int, typer.Option(min=1, max=60_000, help="Longest wait for new messages")] = 1000,
    until_idle: Annotated[bool, typer.Option(help="Stop once the backlog is processed")] = False,
) -> None:
    """Run one post-event monitoring consumer from the bus until stopped (SIGTERM/Ctrl-C)."""
    from riskguard.bus.consumers import CONSUMERS, make_consumer
    from riskguard.bus.runner import ConsumerRunner

    if name not in CONSUMERS:
        typer.echo(f"error: no consumer {name!r}; choose one of {', '.join(CONSUMERS)}", err=True)
        raise typer.Exit(2)
    with _guard() as guard:
        stop = _stop_on_signals()
        runner = ConsumerRunner(
            guard.engine,
            guard.bus_relay.bus,
            make_consumer(name, guard),
            max_deliveries=guard.settings.bus_max_deliveries,
            member=member,
            batch=batch,
            block_ms=block_ms,
        )
        runner.run(stop, until_idle=until_idle)
        lags = sorted(runner.lags)
        _print(
            {
                "consumer": name,
                "member": runner.member,
                "processed": runner.processed,
                "redeliveries_skipped": runner.skipped,
                "failures": runner.failures,
                "dead_lettered": runner.dead,
                "lag_p50_s": round(lags[len(lags) // 2], 3) if lags else None,
            }
        )


@bus_app.command("lag")
@cli_errors
def lag() -> None:
    """Every consumer group's backlog (waiting, in flight, dead-lettered) and the outbox's."""
    with _guard() as guard:
        bus = guard.bus_relay.bus
        from riskguard.bus.consumers import CONSUMERS

        groups = sorted(set(bus.groups()) | set(CONSUMERS))
        _print(
            {
                "bus": guard.settings.bus_backend,
                "outbox_backlog": guard.bus_relay.backlog(),
                "groups": [bus.lag(group).to_dict() for group in groups],
            }
        )


@bus_app.command("relay")
@cli_errors
def relay(
    until_idle: Annotated[bool, typer.Option(help="Publish the outbox's rows, then stop")] = False,
) -> None:
    """Publish committed decisions from the outbox (for services run with RISKGUARD_BUS_RELAY=0)."""
    with _guard() as guard:
        if until_idle:
            _print({"published": guard.bus_relay.drain(timeout=3600)})
            return
        stop = _stop_on_signals()
        guard.bus_relay.start()
        stop.wait()


@bus_app.command("dead")
@cli_errors
def dead(
    name: Annotated[str, typer.Argument(help="The consumer whose dead letters to list")],
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
) -> None:
    """Messages a consumer failed on every delivery, with the last error (event ids only, no payloads)."""
    with _guard() as guard:
        letters = guard.bus_relay.bus.dead_letters(name, limit)
        _print([{"event_id": d.id, "deliveries": d.deliveries, "reason": d.reason} for d in letters])
