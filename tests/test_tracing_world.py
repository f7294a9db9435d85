"""Tracing a simulated world's telecom-fraud victims against the ground truth, and mule scores."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from riskguard.cli.main import app as cli_app
from riskguard.errors import ValidationFailed
from riskguard.sim.config import WorldConfig
from riskguard.sim.world import simulate
from riskguard.sim.writer import write_world
from riskguard.tracing import Tracer, ledger_from_world, reports_from_world
from riskguard.tracing.evaluate import evaluate_world, mule_accounts
from riskguard.tracing.mules import score
from riskguard.tracing.reports import ReportIn, Window, resolve


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("traceworld")
    write_world(simulate(WorldConfig(accounts=3_000, days=5, seed=1)), out)
    return out


def test_the_world_ledger_has_exact_balances(world: Path) -> None:
    ledger = ledger_from_world(world)
    basis = ledger.basis.describe()
    assert basis["basis"] == "given" and basis["raised_accounts"] == 0
    closing = pl.read_parquet(world / "accounts.parquet", columns=["account_id", "closing_balance"])
    last = len(ledger) - 1
    for account, balance in closing.head(200).iter_rows():
        code = ledger.code(account)
        if code >= 0:
            assert ledger.balance_at(code, last) == round(float(balance) * 100)


def test_telecom_victims_money_is_traced_to_their_gangs_mules_frozen_and_returned(world: Path) -> None:
    result = evaluate_world(world, Tracer("libr"))
    assert result["reports"] >= 5
    assert result["traced_to_mules_share"] > 0.95
    assert result["trail_at_mules_share"] > 0.95
    assert 0 < result["frozen_share"] < 1
    assert 0 < result["still_there_share"] < 1
    # libr freezes most of what was really still there (it can also hold a rented mule's own money)
    assert result["frozen_share"] > result["still_there_share"] / 2
    assert result["returned"] == result["frozen"] and result["unallocated"] == "0.00"
    for victim in result["victims"]:
        assert 0 <= victim["recovery_rate"] <= 1
    # the money left within hours and most victims reported a day later: the later rules free less
    lifo = evaluate_world(world, Tracer("lifo"))
    assert lifo["frozen_share"] < result["frozen_share"]


def test_victims_sharing_mules_are_tracked_apart(world: Path) -> None:
    ledger = ledger_from_world(world)
    reports, _ = reports_from_world(world)
    outcome = Tracer().run(ledger, reports)
    shared = [h for h in outcome.trace.holdings.values() if len(h.in_by) > 1]
    assert shared, "a gang's first-layer mules receive from several victims"
    document = outcome.document
    for victim in document["victims"]:
        assert float(victim["held"]) + float(victim["escaped"]) + float(victim["stopped"]) == pytest.approx(
            float(victim["traced"]), abs=0.005
        )
        assert float(victim["traced"]) <= float(victim["loss"])
    assert all(
        link["event_id"] for order in document["freeze_orders"] for path in order["paths"] for link in path["links"]
    )


def test_a_window_report_finds_the_payments_and_scales_to_the_loss(world: Path) -> None:
    ledger = ledger_from_world(world)
    reports, _rows = reports_from_world(world)
    first = reports[0]
    rows_of = ledger.rows_of(first.event_ids or [])
    times = [int(ledger.ts[r]) for r in rows_of]
    from datetime import UTC, datetime

    window = Window(
        start=datetime.fromtimestamp(min(times) / 1000, UTC), end=datetime.fromtimestamp(max(times) / 1000, UTC)
    )
    payees = [ledger.name(int(ledger.payee[r])) for r in rows_of]
    half = first.loss / 2
    (victim,) = resolve(
        ledger,
        [
            ReportIn(
                victim_account=first.victim_account,
                loss=half,
                reported_at=first.reported_at,
                window=window,
                payees=payees,
            )
        ],
    )
    assert {r for r, _ in victim.seeds} >= set(rows_of)
    assert victim.traced == round(half * 100) and victim.notes
    # a window with one transfer of exactly the reported amount takes that transfer alone
    one = rows_of[0]
    exact = ReportIn(
        victim_account=first.victim_account,
        loss=Decimal(int(ledger.amount[one])) / 100,
        reported_at=first.reported_at,
        window=window,
    )
    (victim,) = resolve(ledger, [exact])
    assert victim.seeds == [(one, int(ledger.amount[one]))] and not victim.notes
    with pytest.raises(ValidationFailed):
        Tracer("poison").run(ledger, reports)


def test_mule_scores_separate_the_mules(world: Path) -> None:
    ledger = ledger_from_world(world)
    reports, _ = reports_from_world(world, None)
    scores = score(ledger, trace=Tracer(alerts=False).run(ledger, reports).trace)
    mules = set().union(*mule_accounts(world).values())
    frame = scores.frame.with_columns(mule=pl.col("account").is_in(list(mules)))
    mule_rows, others = frame.filter(pl.col("mule")), frame.filter(~pl.col("mule"))
    assert mule_rows.height >= 10
    assert mule_rows["pass_through_ratio"].median() > 0.8 > 0.2 > others["pass_through_ratio"].median()
    assert mule_rows["median_dwell_minutes"].median() < 6 * 60 < others["median_dwell_minutes"].median()
    assert mule_rows["fan_in"].median() > others["fan_in"].median()
    # a rented mule's own payment to a friend carries traced money too (libr), so a few others score
    assert mule_rows["victim_inflow_share"].max() > 0.5
    assert (others["victim_inflow_share"] > 0.5).sum() <= others.height // 100
    assert set(scores.values("mule.fan_out")) <= set(frame["account"])


def test_the_cli_prints_the_world_evaluation(world: Path) -> None:
    result = CliRunner().invoke(cli_app, ["trace", "world", str(world), "--rule", "all"])
    assert result.exit_code == 0, result.stderr
    for rule in ("libr", "proportional", "fifo", "lifo"):
        assert rule in result.stdout
    assert "frozen" in result.stdout and "acc-" not in result.stdout
    result = CliRunner().invoke(cli_app, ["trace", "mules", "--world", str(world)])
    assert result.exit_code == 0 and "mules (truth)" in result.stdout
    result = CliRunner().invoke(cli_app, ["trace", "world", str(world / "nowhere")])
    assert result.exit_code == 2 and "not a world directory" in result.stderr
