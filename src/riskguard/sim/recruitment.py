"""Typology 7 — mule recruitment: dormant accounts that wake up as pass-through (收购/出租账户).

A recruiter buys or "rents" the accounts of people who stopped using them (students, migrant workers):
silent for months, the account logs in again, often on the handler's phone (a device bind), and within
hours starts passing money through: fraud proceeds from victims at other banks arrive as inbound bank
transfers (credits, outside the event stream), and within minutes to an hour the account sends the money
on, split across other recruited accounts, or withdraws it. The owner's own habits never return.

Signals: a login and device bind after months of silence; an account whose first activity in months is a
large outgoing transfer; money out ≈ money in within hours (pass-through); fan-out to other newly woken
accounts; shared handler devices.
"""

from __future__ import annotations

import numpy as np

from riskguard.sim.context import Mule, WorldContext
from riskguard.sim.laundering import Crew, gang_kit, split
from riskguard.sim.rhythm import DAY_MS, HOUR_MS, MINUTE_MS
from riskguard.sim.table import R, T

TYPOLOGY = "mule_recruitment"


def simulate(ctx: WorldContext, rng: np.random.Generator) -> None:
    typology = ctx.typology_code(TYPOLOGY)
    pop = ctx.pop
    for _ in range(ctx.gang_count(TYPOLOGY)):
        gang = ctx.new_gang(TYPOLOGY)
        devices, ips = gang_kit(ctx, rng, gang, phones=int(rng.integers(2, 4)), ips=int(rng.integers(2, 4)))
        recruits = ctx.pick(rng, int(rng.integers(6, 21)), dormant=True)
        if len(recruits) < 2:
            continue
        span = ctx.end_ms - ctx.start_ms - HOUR_MS
        mules: list[Mule] = []
        woke: list[int] = []
        for account in recruits:
            account = int(account)
            wake = ctx.start_ms + int(rng.uniform(0, 0.7) * span)
            handler = rng.random() < 0.6
            device = devices[int(rng.integers(len(devices)))] if handler else int(pop.device[account])
            ip = ips[int(rng.integers(len(ips)))] if handler else int(pop.mobile_ips(rng, np.array([account]))[0])
            known = wake + int(rng.uniform(5, 20) * DAY_MS)
            ctx.fraud.add(
                ts=wake,
                type=T["login"],
                account=account,
                device=device,
                ip=ip,
                channel=0,
                locale=0,
                success=1,
                typology=typology,
                gang=gang,
                role=R["recruit_login"],
                known_at=known,
            )
            if handler:  # the handler's phone is bound to the account
                bind = wake + int(rng.integers(2, 11)) * MINUTE_MS
                ctx.fraud.add(
                    ts=bind,
                    type=T["device_bind"],
                    account=account,
                    device=device,
                    ip=ip,
                    phone=int(pop.phone[account]),
                    channel=0,
                    locale=0,
                    typology=typology,
                    gang=gang,
                    role=R["recruit_device_bind"],
                    known_at=known,
                )
            ctx.member(gang, "recruited_mule", "account", account, wake)
            mules.append(Mule(account, device, ip, ctx.card_of(account)))
            woke.append(wake + 15 * MINUTE_MS)
        crew = Crew(ctx, rng, gang, typology, [mules, mules], forward_role=(R["pass_through"],))
        ready = dict(zip((m.account for m in mules), woke, strict=True))
        for mule in mules:
            _pass_through(ctx, rng, gang, typology, mule, mules, ready, crew)


def _pass_through(
    ctx: WorldContext,
    rng: np.random.Generator,
    gang: int,
    typology: int,
    mule: Mule,
    mules: list[Mule],
    ready: dict[int, int],
    crew: Crew,
) -> None:
    """Inbound transfers to ``mule``, each sent on to other awake recruits (who cash out) or withdrawn."""
    t = ready[mule.account]
    for _ in range(int(rng.integers(1, 5))):
        t += int(rng.uniform(0.5, 36) * HOUR_MS)
        if t >= ctx.end_ms:
            return
        inbound = int(rng.lognormal(np.log(20000), 0.6)) * 100
        ctx.credits.add(t, mule.account, inbound, "inbound_transfer", typology=typology, gang=gang)
        keep = int(inbound * rng.uniform(0.0, 0.02))
        out = t + int(rng.integers(5, 61)) * MINUTE_MS
        others = [m for m in mules if m.account != mule.account and ready[m.account] <= out]
        if rng.random() < 0.6 and others:
            for piece in split(rng, inbound - keep, int(rng.integers(2, 6))):
                if out >= ctx.end_ms:
                    return
                target = others[int(rng.integers(len(others)))]
                crew.transfer(mule, target.account, out, piece, R["pass_through"])
                crew.receive(1, target, out, piece)  # the second recruit cashes it out
                out += int(rng.integers(1, 10)) * MINUTE_MS
        else:
            crew.cash_out(mule, out, inbound - keep)
