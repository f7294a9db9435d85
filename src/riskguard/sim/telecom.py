"""Typology 1 — telecom and online fraud with money laundering (电信网络诈骗 + 洗钱).

Each gang runs one script (police impersonation and the "safe account", fake investment, fake loan fees,
fake customer-service refunds, order-brushing rebates). Its victims are ordinary customers: they pay from
their own phone, at home, with their own bank card, usually to a payee they have never paid before, often
in several escalating payments, sometimes while on the phone with the fraudster or sharing their screen,
sometimes writing the script's words in the remark. The money lands on first-layer mule accounts (bought
from device farms, rented from ordinary people, or opened by the gang) and moves on within minutes
through two or three layers to cash-out (``laundering.py``). Most victims report hours to days later; the
report lists the fraudulent payments.

Signals: a large first payment to a new payee, on_call / screen_sharing, a script remark, a payee name
that does not match; on the mule side, fan-in to the payee, new or newly re-bound accounts moving large
sums, pass-through within minutes, fan-out, withdrawals in pieces, shared gang devices.
"""

from __future__ import annotations

import numpy as np

from riskguard.sim.context import VictimReport, WorldContext
from riskguard.sim.laundering import Crew, build_crew
from riskguard.sim.rhythm import DAY_MS, HOUR_MS, MINUTE_MS, time_in_window
from riskguard.sim.table import R, T
from riskguard.sim.texts import COACHED_REMARKS, SCRIPT_REMARKS, SCRIPTS

TYPOLOGY = "telecom_fraud"
VICTIMS_PER_GANG_DAY = 2.5
REPORT_SHARE = 0.85

#: per script: payments (min, max), gap between payments (min, max) in minutes, median first amount in
#: yuan and growth per payment, P(on a call), P(screen sharing), P(script remark)
SCRIPT_SHAPES: dict[str, tuple[tuple[int, int], tuple[int, int], float, float, float, float, float]] = {
    "police_impersonation": ((1, 3), (5, 40), 30000, 1.0, 0.75, 0.05, 0.35),
    "investment": ((2, 5), (360, 2880), 5000, 1.8, 0.10, 0.03, 0.30),
    "fake_loan_fee": ((2, 4), (10, 60), 4000, 1.3, 0.40, 0.15, 0.30),
    "fake_customer_service": ((1, 3), (3, 20), 8000, 1.0, 0.65, 0.45, 0.30),
    "order_brushing": ((3, 6), (10, 90), 300, 2.2, 0.15, 0.03, 0.30),
}
MAX_PAYMENT_FEN = 100_000_00


def simulate(ctx: WorldContext, rng: np.random.Generator) -> None:
    typology = ctx.typology_code(TYPOLOGY)
    remark_codes = {s: ctx.texts.codes(list(SCRIPT_REMARKS[s])) for s in SCRIPTS}
    coached = ctx.texts.codes(list(COACHED_REMARKS))
    for _ in range(ctx.gang_count(TYPOLOGY)):
        script = SCRIPTS[int(rng.integers(len(SCRIPTS)))]
        gang = ctx.new_gang(TYPOLOGY, script=script)
        victims = ctx.pick(rng, max(2, int(rng.poisson(VICTIMS_PER_GANG_DAY * ctx.config.days))))
        if not len(victims):
            continue
        starts = sorted(time_in_window(rng, ctx.start_ms, ctx.end_ms) for _ in victims)
        crew = build_crew(
            ctx,
            rng,
            gang,
            typology,
            starts[0],
            (int(rng.integers(4, 9)), int(rng.integers(3, 7)), int(rng.integers(2, 5))),
        )
        shape = SCRIPT_SHAPES[script]
        for victim, first in zip(rng.permutation(victims), starts, strict=True):
            rows = _victim_payments(
                ctx, rng, gang, typology, int(victim), first, script, shape, crew, remark_codes[script], coached
            )
            if not rows:
                continue
            last = max(ctx.fraud.get("ts", r) for r in rows)
            reported = rng.random() < REPORT_SHARE
            report_ms = last + max(20 * MINUTE_MS, int(rng.lognormal(np.log(20), 1.0) * HOUR_MS))
            known = report_ms if reported else last + 30 * DAY_MS
            for row in rows:
                ctx.fraud.set("known_at", row, known)
            if reported:
                ctx.reports.append(VictimReport(gang, TYPOLOGY, int(victim), report_ms, script, rows))


def _victim_payments(
    ctx: WorldContext,
    rng: np.random.Generator,
    gang: int,
    typology: int,
    victim: int,
    first: int,
    script: str,
    shape: tuple,
    crew: Crew,
    remarks: np.ndarray,
    coached: np.ndarray,
) -> list[int]:
    (n_min, n_max), (gap_min, gap_max), median, growth, p_call, p_share, p_remark = shape
    pop = ctx.pop
    rows: list[int] = []
    ts = first
    base = float(rng.lognormal(np.log(median), 0.6))
    lied_about_name = rng.random() < 0.35
    for i in range(int(rng.integers(n_min, n_max + 1))):
        if ts >= ctx.end_ms:
            break
        amount = min(MAX_PAYMENT_FEN, round(base * growth**i * rng.uniform(0.8, 1.2)) * 100)
        u = rng.random()
        remark = int(rng.choice(remarks)) if u < p_remark else int(rng.choice(coached)) if u < p_remark + 0.25 else -1
        mule = crew.layers[0][int(rng.integers(len(crew.layers[0])))]
        card = int(pop.card2[victim]) if pop.card2[victim] >= 0 and rng.random() < 0.3 else int(pop.card[victim])
        row = len(ctx.fraud)
        ctx.fraud.add(
            ts=ts,
            type=T["transfer"],
            account=victim,
            amount=amount,
            counterparty=mule.account,
            device=int(pop.device[victim]),
            ip=int(pop.home_ip[victim]) if rng.random() < 0.6 else int(pop.mobile_ips(rng, np.array([victim]))[0]),
            card=card,
            channel=0,
            locale=int(pop.english[victim]),
            remark=remark,
            on_call=int(rng.random() < p_call),
            screen_sharing=int(rng.random() < p_share),
            payee_name_matches=int(not lied_about_name),
            typology=typology,
            gang=gang,
            role=R["victim_payment"],
            loss=1,
        )
        rows.append(row)
        crew.receive(0, mule, ts, amount)
        ts += int(rng.integers(gap_min * MINUTE_MS, gap_max * MINUTE_MS + 1))
    return rows
