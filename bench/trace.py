"""Trace-freeze-return benchmark: many reports over a large ledger, and one report over a very large one.

A synthetic ledger: background transfers among ordinary accounts (payees drawn with a heavy tail, so some
accounts are busy), withdrawals, and gangs whose victims pay first-layer mules that forward the money
within minutes through up to six layers (splitting, each keeping a cut) and cash out; a report per
victim, hours later. Balances are reconstructed from the flows (no opening balances given), as for a
ledger read from the event store.

1. ``--transfers`` (1M) rows and ``--reports`` (1,000) reports, ≤ 6 hops, libr: end to end = building the
   ledger from the columns, indexing it, tracing every report, freeze orders, return plan, poison alerts
   and the result document. Prints ``1,000 reports over 1M transfers: 4.2 s``.
2. ``--large`` (10M) rows: one report at a time (ledger indexed once): per-report time, p50 and p99 over
   ``--singles`` (50) reports.

Baseline in the same run: the simple way, one pass over every ledger row in Python, keeping every
account's balance and the victim's traced money (libr), for a few reports.

    .venv/bin/python bench/trace.py [--transfers 1000000] [--reports 1000] [--large 10000000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from riskguard.tracing import Ledger, ReportIn, Tracer

T0 = 1_767_225_600_000  # 2026-01-01 UTC
DAY = 86_400_000
MINUTE = 60_000
WITHDRAWALS = 0.08  # share of background rows that are withdrawals


def synthetic(rows: int, victims: int, *, seed: int = 7, hops: int = 6) -> tuple[pl.DataFrame, list[ReportIn]]:
    """A ledger frame of about ``rows`` rows with ``victims`` laundering chains, and their reports."""
    rng = np.random.default_rng(seed)
    accounts = max(1_000, rows // 5)
    days = 30
    fraud_ts, fraud_payer, fraud_payee, fraud_amount, fraud_kind, fraud_wallet = [], [], [], [], [], []
    reports = []
    gangs = max(1, victims // 10)
    mule_base = accounts + victims
    layer_sizes = [6, 8, 8, 6, 5, 4][:hops]
    per_gang = sum(layer_sizes)
    for v in range(victims):
        gang = v % gangs
        first = mule_base + gang * per_gang
        layers = []
        for size in layer_sizes:
            layers.append(list(range(first, first + size)))
            first += size
        t = T0 + int(rng.uniform(0, days - 2) * DAY)
        payments = []
        for _ in range(int(rng.integers(1, 4))):
            amount = int(rng.lognormal(np.log(2_000_000), 0.6))
            mule = layers[0][int(rng.integers(len(layers[0])))]
            fraud_ts.append(t)
            fraud_payer.append(accounts + v)
            fraud_payee.append(mule)
            fraud_amount.append(amount)
            fraud_kind.append("transfer")
            fraud_wallet.append(False)
            payments.append(len(fraud_ts) - 1)
            stack = [(0, mule, t, amount)]
            while stack:
                layer, holder, when, money = stack.pop()
                onward = money - int(money * rng.uniform(0, 0.015))
                when += int(rng.integers(2 * MINUTE, 60 * MINUTE))
                if layer + 1 >= len(layers) or (layer >= 2 and rng.random() < 0.3):
                    fraud_ts.append(when)
                    fraud_payer.append(holder)
                    fraud_payee.append(-1)
                    fraud_amount.append(onward)
                    fraud_kind.append("withdrawal")
                    fraud_wallet.append(True)
                    continue
                parts = int(rng.integers(1, 4))
                cuts = np.sort(rng.integers(1, onward, parts - 1)) if parts > 1 and onward > parts else np.array([])
                pieces = np.diff(np.concatenate([[0], cuts, [onward]])).astype(np.int64)
                for piece in pieces:
                    if piece <= 0:
                        continue
                    target = layers[layer + 1][int(rng.integers(len(layers[layer + 1])))]
                    when += int(rng.integers(20_000, 4 * MINUTE))
                    fraud_ts.append(when)
                    fraud_payer.append(holder)
                    fraud_payee.append(target)
                    fraud_amount.append(int(piece))
                    fraud_kind.append("transfer")
                    fraud_wallet.append(True)
                    stack.append((layer + 1, target, when, int(piece)))
            t += int(rng.integers(5 * MINUTE, 40 * MINUTE))
        reports.append(
            (
                accounts + v,
                payments,
                sum(fraud_amount[p] for p in payments),
                t + int(rng.lognormal(np.log(20), 1.0) * 3_600_000),
            )
        )
    fraud_transfers = sum(1 for k in fraud_kind if k == "transfer")
    n = int(max(0, rows - fraud_transfers) / (1 - WITHDRAWALS))  # ``rows`` transfers, and withdrawals besides
    payer = rng.integers(0, accounts, n)
    payee = (rng.pareto(1.2, n) * accounts / 50).astype(np.int64) % accounts
    payee = np.where(payee == payer, (payee + 1) % accounts, payee)
    # mules also see some ordinary traffic
    mules = mule_base + gangs * per_gang
    noise = rng.random(n) < 0.002
    payer = np.where(noise, rng.integers(mule_base, mules, n), payer)
    withdrawal = rng.random(n) < WITHDRAWALS
    kinds = np.where(withdrawal, "withdrawal", "transfer")
    frame = pl.DataFrame(
        {
            "ts": np.concatenate([T0 + rng.integers(0, days * DAY, n), np.asarray(fraud_ts, dtype=np.int64)]),
            "kind": np.concatenate([kinds, np.asarray(fraud_kind)]),
            "payer": np.concatenate([payer, np.asarray(fraud_payer, dtype=np.int64)]),
            "payee": np.concatenate([np.where(withdrawal, -1, payee), np.asarray(fraud_payee, dtype=np.int64)]),
            "amount": np.concatenate(
                [rng.lognormal(np.log(30_000), 1.2, n).astype(np.int64) + 1, np.asarray(fraud_amount, dtype=np.int64)]
            ),
            "wallet": np.concatenate([np.ones(n, dtype=bool), np.asarray(fraud_wallet, dtype=bool)]),
        }
    ).with_row_index("position")
    frame = frame.select(
        event_id=pl.lit("e") + pl.col("position").cast(pl.String),
        ts="ts",
        kind="kind",
        account=pl.lit("acc-") + pl.col("payer").cast(pl.String),
        counterparty=pl.when(pl.col("payee") >= 0).then(pl.lit("acc-") + pl.col("payee").cast(pl.String)),
        card=pl.when(pl.col("kind") == "withdrawal").then(pl.lit("card-") + pl.col("payer").cast(pl.String)),
        amount="amount",
        wallet="wallet",
    )
    out = []
    for number, (victim, payments, loss, reported) in enumerate(reports):
        out.append(
            ReportIn(
                report_id=f"r{number}",
                victim_account=f"acc-{victim}",
                loss=Decimal(loss) / 100,
                reported_at=datetime.fromtimestamp(reported / 1000, UTC),
                event_ids=[f"e{n + p}" for p in payments],
            )
        )
    return frame, out


def naive_libr(frame: pl.DataFrame, report: ReportIn, max_hops: int = 6) -> int:
    """The simple way: one pass over every row in time order, every account's balance in a dict."""
    rows = frame.sort("ts", maintain_order=True)
    seeds = set(report.event_ids or [])
    balance: dict[str, int] = {}
    taint: dict[str, int] = {}
    hop: dict[str, int] = {}
    for event_id, _kind, account, payee, amount, wallet in rows.select(
        "event_id", "kind", "account", "counterparty", "amount", "wallet"
    ).iter_rows():
        if wallet:
            before = balance.get(account, 0)
            if before < amount:  # unseen money: treat as the holder's own (reconstructed balance)
                before = amount
            held = taint.get(account, 0)
            out = min(held, max(0, amount - (before - held)))
            balance[account] = before - amount
            if out:
                taint[account] = held - out
        else:
            out = 0
        if payee is not None:
            balance[payee] = balance.get(payee, 0) + amount
            if event_id in seeds:
                taint[payee] = taint.get(payee, 0) + amount
                hop[payee] = 1
            elif out and hop.get(account, 99) < max_hops:
                taint[payee] = taint.get(payee, 0) + out
                hop[payee] = min(hop.get(payee, 99), hop[account] + 1)
    return sum(taint.values())


class Clock:
    """Wall and CPU time of a step: CPU time shows the work when other processes share the cores."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return out


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument("--reports", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--singles", type=int, default=50)
    parser.add_argument("--baseline-reports", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100k rows, 100 reports, 1M large: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.transfers, args.reports, args.large, args.singles = 100_000, 100, 1_000_000, 10
    tracer = Tracer("libr", max_hops=6)

    frame, reports = synthetic(args.transfers, args.reports)
    transfers = int((frame["kind"] == "transfer").sum())
    print(
        f"ledger: {frame.height:,} rows ({transfers:,} transfers), {len(reports):,} reports; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    clock = Clock()
    ledger = Ledger.from_frame(frame)
    built = clock.lap()
    ledger.index  # noqa: B018
    ledger.debits  # noqa: B018
    indexed = clock.lap()
    outcome = tracer.run(ledger, reports)
    document = outcome.document
    traced = clock.lap()
    wall = built[0] + indexed[0] + traced[0]
    cpu = built[1] + indexed[1] + traced[1]
    summary = document["summary"]
    label = f"{transfers / 1e6:.0f}M" if transfers >= 1e6 else f"{transfers:,}"
    print(f"{len(reports):,} reports over {label} transfers: {wall:.1f} s (CPU {cpu:.1f} s)")
    print(
        f"  build {built[0]:.2f} s, index {indexed[0]:.2f} s, trace + freeze + return + alerts + document "
        f"{traced[0]:.2f} s (CPU {traced[1]:.2f} s); {summary['entries_visited']:,} entries visited, "
        f"{len(outcome.trace.flows):,} per-victim transfers, {summary['accounts']:,} accounts, "
        f"{summary['freeze_orders']:,} freeze orders; traced {summary['traced']}, held {summary['held']}, "
        f"escaped {summary['escaped']}"
    )
    sample = reports[: args.baseline_reports]
    clock = Clock()
    for report in sample:
        naive_libr(frame, report)
    per = clock.lap()[0] / len(sample)
    print(
        f"  baseline (one Python pass over the ledger per report, libr): {per:.2f} s per report, "
        f"~{per * len(reports):,.0f} s for {len(reports):,} (measured on {len(sample)})"
    )
    print(f"  peak RSS so far {rss_mib():,.0f} MiB")
    del ledger, outcome, document

    large, large_reports = synthetic(args.large, max(args.singles, 100), seed=11)
    started = time.perf_counter()
    big = Ledger.from_frame(large)
    big.index  # noqa: B018
    big.debits  # noqa: B018
    big.rows_of(["e0"])  # the event-id and account-id indexes, built once
    big.code("acc-0")
    ready = time.perf_counter() - started
    times, cpus = [], []
    for report in large_reports[: args.singles]:
        clock = Clock()
        result = tracer.run(big, [report])
        result.document  # noqa: B018
        wall, cpu = clock.lap()
        times.append(wall)
        cpus.append(cpu)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    big_label = f"{args.large / 1e6:g}M"
    print(
        f"one report on a {big_label}-transfer ledger: p50 {statistics.median(times) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms over {len(times)} reports (CPU p50 {statistics.median(cpus) * 1000:.0f} ms; "
        f"ledger built and indexed once in {ready:.1f} s)"
    )
    started = time.perf_counter()
    naive_libr(large, large_reports[0])
    print(
        f"  baseline (one Python pass over the {big_label} rows): {time.perf_counter() - started:.1f} s for one report"
    )
    print(f"  peak RSS {rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
