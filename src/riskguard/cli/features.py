"""``riskguard features compute``: a strategy's features for every event of a history file (an adapter:
parse, call, write)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated

import typer

features_app = typer.Typer(help="Compute declared features offline (training, replay).", no_args_is_help=True)

_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str) -> int:
    """``90s``, ``30m``, ``1h``, ``2d`` → seconds (0 allowed)."""
    from riskguard.errors import ConfigError

    match = _DURATION.match(text.strip())
    if not match:
        raise ConfigError(f"{option} {text!r}: write a duration such as 0s, 30m, 1h or 2d")
    return int(match.group(1)) * _UNITS[match.group(2)]


@features_app.command("compute")
def compute(
    events: Annotated[
        Path, typer.Option(help="Events: a Parquet or CSV file of API envelopes, or a `riskguard simulate` world")
    ],
    strategy: Annotated[Path, typer.Option(help="Strategy YAML whose `features:` to compute")],
    out: Annotated[Path, typer.Option(help="Parquet file to write: event_id and one column per feature")],
    lateness: Annotated[str, typer.Option(help="How late events may arrive and still be folded, e.g. 1h")] = "1h",
) -> None:
    """For every event, in file order (its arrival order), the feature values the online engine gave it.

    avg and ratio columns are written as doubles (what rules read); sum, min and max as exact decimals."""
    from riskguard.cli.main import _errors, _fail, _read

    @_errors
    def run() -> None:
        import polars as pl

        from riskguard.features.offline import offline_features
        from riskguard.rules.strategy import load_strategy

        lateness_s = parse_duration(lateness, "--lateness")
        document = load_strategy(_read(strategy))
        started = time.perf_counter()
        frame = offline_features(events, document.features, lateness_seconds=lateness_s)
        elapsed = time.perf_counter() - started
        exact = [  # Decimal objects (avg, ratio) as doubles: Parquet has no column of arbitrary decimals
            pl.Series(name, [None if v is None else float(v) for v in frame.get_column(name).to_list()], pl.Float64)
            for name, dtype in frame.schema.items()
            if dtype == pl.Object
        ]
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            frame.with_columns(exact).write_parquet(out, compression="zstd")
        except OSError as exc:
            _fail(f"cannot write {out}: {exc.strerror}")
        rate = frame.height / elapsed if elapsed > 0 else 0.0
        published = sum(1 for f in document.features if f.aggregate == "published")
        skipped = f" ({published} published, not reconstructed offline)" if published else ""
        typer.echo(
            f"{frame.height:,} events, {frame.width - 1} features{skipped} in {elapsed:.1f} s "
            f"({rate:,.0f} events/s) -> {out}"
        )

    run()
