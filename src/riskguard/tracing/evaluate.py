"""How well tracing works on a simulated world, against its ground truth (``riskguard trace world``).

For the victims of one typology (telecom fraud by default), with reports at the simulated report times:

- **traced to the gang's mule accounts**: where the trace says each victim's money ended up — held on an
  account, escaped from it, or stopped there by a limit — and which share of the reported loss ended on
  accounts that the truth lists as that victim's gang's mules (``truth.parquet``). ``trail at mule
  accounts`` is the share of all traced money received (every hop) that was received by those accounts.
- **frozen before it escaped**: each report triggers a trace of every report made so far, as of that
  report's time (what investigators know then), and stop-payments on the accounts holding traced money:
  on each account, its freezable amount beyond what earlier orders already froze there (so the same
  money is never counted twice), attributed to the victims whose traced money it holds. The share is
  frozen / reported loss. For comparison, **still there** is the simulated truth: the victims' own money
  that was still on the gang's accounts at their report times (traced through the gang's labelled events
  only, where every unit of money is fraud money).
- **recovery per victim**: the frozen money, pooled per account over all reports, is planned for return
  (direct where one victim's money is on the account, pro rata by loss where several are mixed), and
  each victim's recovery rate is returned / loss.

The world replays open loop (money frozen at a report time still moves in the ledger afterwards); an
account's frozen total never exceeds the largest amount freezable there at any report time.
"""

from __future__ import annotations

import functools
import statistics
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from riskguard.errors import ValidationFailed
from riskguard.tracing.ledger import Ledger
from riskguard.tracing.money import money, split
from riskguard.tracing.reports import Victim, resolve
from riskguard.tracing.returns import Claim, plan_returns
from riskguard.tracing.sources import events_frame, ledger_from_world, reports_from_world
from riskguard.tracing.tracer import Tracer


def mule_accounts(world: Path) -> dict[str, set[str]]:
    """Gang id → its mule accounts (every role naming a mule: layer mules, bought, rented, recruited)."""
    truth = pl.read_parquet(world / "truth.parquet").filter(
        (pl.col("entity_kind") == "account") & pl.col("role").str.contains("mule")
    )
    out: dict[str, set[str]] = defaultdict(set)
    for gang, account in truth.select("gang_id", "entity_value").iter_rows():
        out[gang].add(account)
    return out


def evaluate_world(
    world: Path, tracer: Tracer, *, typology: str | None = "telecom_fraud", ledger: Ledger | None = None
) -> dict[str, Any]:
    ledger = ledger or ledger_from_world(world)
    reports, rows = reports_from_world(world, typology)
    if not reports:
        raise ValidationFailed(
            [{"loc": ["world"], "type": "value_error", "msg": f"{world} has no victim reports of {typology}"}]
        )
    victims = resolve(ledger, reports, loc=("victim_reports",))
    gang_of = dict(zip(rows["report_id"].to_list(), rows["gang_id"].to_list(), strict=True))
    mules = mule_accounts(world)
    gang_codes = {
        gang: {c for c in ledger.codes_of(pl.Series(sorted(accounts), dtype=pl.String)).tolist() if c >= 0}
        for gang, accounts in mules.items()
    }
    mule_codes = {v.index: gang_codes.get(gang_of[v.report_id], set()) for v in victims}

    # where the money went: one trace of every report, as of the last report
    final = tracer.run(ledger, victims).trace
    ended: dict[int, int] = defaultdict(int)
    for code, holding in final.holdings.items():
        for victim, amount in holding.taint.items():
            if code in mule_codes[victim]:
                ended[victim] += amount
    for _row, account, victim, amount in final.escapes:
        if account in mule_codes[victim]:
            ended[victim] += amount
    for _row, source, _to, victim, amount, _why in final.stops:
        if source in mule_codes[victim]:
            ended[victim] += amount
    trail_total = trail_mules = 0
    for code, holding in final.holdings.items():
        for victim, amount in holding.in_by.items():
            trail_total += amount
            if code in mule_codes[victim]:
                trail_mules += amount
    deepest = max((h for holding in final.holdings.values() for h in holding.hop.values()), default=0)

    # what stop-payments at the report times would have secured: at each report, every account's
    # freezable money beyond what earlier orders already froze there (the same money is never frozen twice)
    frozen_acc: dict[int, int] = defaultdict(int)
    frozen_at: dict[tuple[int, int], int] = defaultdict(int)
    frozen_v: dict[int, int] = defaultdict(int)
    traces = 0
    for when, known, _now in _report_times(victims):
        outcome = tracer.run(ledger, known, as_of=when)
        traces += 1
        for order in outcome.orders:
            extra = order.freezable - frozen_acc[order.account]
            if extra <= 0:
                continue
            frozen_acc[order.account] += extra
            for victim, amount in split(extra, order.by_victim).items():
                frozen_at[(order.account, victim)] += amount
                frozen_v[victim] += amount
    still_there = _still_on_gang_accounts(world, ledger, victims, typology)
    pools: dict[int, dict[int, int]] = defaultdict(dict)
    for (account, victim), amount in frozen_at.items():
        pools[account][victim] = amount
    frozen_list = sorted(
        ((account, sum(parts.values()), parts) for account, parts in pools.items()), key=lambda f: (-f[1], f[0])
    )
    plan = plan_returns(
        frozen_list, [Claim(v.index, v.loss, v.recovered) for v in victims], rising_tide=tracer.rising_tide
    )
    returned = {v.index: plan.direct.get(v.index, 0) + plan.pooled.get(v.index, 0) for v in victims}
    rates = [returned[v.index] / v.loss for v in victims]
    loss = sum(v.loss for v in victims)
    per_victim = [
        {
            "report_id": v.report_id,
            "victim_account": v.account,
            "gang_id": gang_of[v.report_id],
            "loss": money(v.loss),
            "traced_to_mules": money(ended[v.index]),
            "frozen": money(frozen_v[v.index]),
            "returned": money(returned[v.index]),
            "recovery_rate": round(returned[v.index] / v.loss, 6),
        }
        for v in victims
    ]
    return {
        "world": str(world),
        "typology": typology or "all",
        "rule": tracer.rule,
        "max_hops": tracer.max_hops,
        "balance_basis": ledger.basis.describe(),
        "reports": len(victims),
        "reported_loss": money(loss),
        "traced_to_mules": money(sum(ended.values())),
        "traced_to_mules_share": round(sum(ended.values()) / loss, 6),
        "trail_at_mules_share": round(trail_mules / trail_total, 6) if trail_total else 0.0,
        "deepest_hop": deepest,
        "still_there": money(still_there),
        "still_there_share": round(still_there / loss, 6),
        "frozen": money(sum(frozen_v.values())),
        "frozen_share": round(sum(frozen_v.values()) / loss, 6),
        "returned": money(plan.allocated),
        "unallocated": money(plan.unallocated),
        "recovery_rate": round(plan.allocated / loss, 6),
        "recovery_per_victim": {
            "mean": round(statistics.fmean(rates), 6),
            "median": round(statistics.median(rates), 6),
            "min": round(min(rates), 6),
            "max": round(max(rates), 6),
            "victims_with_any": sum(1 for r in rates if r > 0),
        },
        "traces_run": traces,
        "victims": per_victim,
    }


@functools.lru_cache(maxsize=2)
def _gang_ledger(world: str, typology: str | None) -> Ledger:
    """The ledger of the gangs' own labelled events (one per world and typology: every rule compares to it)."""
    labels = pl.read_parquet(Path(world) / "labels.parquet", columns=["event_id", "typology", "label_kind"])
    labels = labels.filter(pl.col("label_kind") == "event")
    if typology is not None:
        labels = labels.filter(pl.col("typology") == typology)
    frame, _ = events_frame(Path(world))
    return Ledger.from_frame(frame.filter(pl.col("event_id").is_in(labels["event_id"].implode())))


def _still_on_gang_accounts(world: Path, ledger: Ledger, victims: list[Victim], typology: str | None) -> int:
    """The simulated truth: how much of the victims' own money was still on the gang's accounts at each
    victim's report time. Traced through the gang's own events only (the victims' payments, the mules'
    forwards and cash-outs, as labelled), where every unit of money is fraud money, first in, first out."""
    fraud = _gang_ledger(str(world), typology)
    resolved = []
    for v in victims:
        rows = fraud.rows_of(ledger.event_id.gather([row for row, _ in v.seeds]).to_list())
        seeds = [(row, amount) for row, (_, amount) in zip(rows, v.seeds, strict=True) if row >= 0]
        resolved.append(Victim(v.index, v.report_id, v.account, v.loss, v.recovered, v.reported_ms, seeds))
    tracer = Tracer("fifo", max_hops=50, min_amount=0, alerts=False)
    held = 0
    for when, known, now in _report_times(resolved):
        trace = tracer.run(fraud, known, as_of=when).trace
        held += sum(amount for victim, amount in trace.held_by_victim().items() if victim in now)
    return held


def _report_times(victims: list[Victim]) -> Iterator[tuple[int, list[Victim], set[int]]]:
    """Each report time in order: the time, every report made by then, and the victims reporting then."""
    by_time: dict[int, list[Victim]] = defaultdict(list)
    for victim in victims:
        by_time[victim.reported_ms].append(victim)
    known: list[Victim] = []
    for when in sorted(by_time):
        known.extend(by_time[when])
        yield when, list(known), {v.index for v in by_time[when]}
