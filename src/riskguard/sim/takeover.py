"""Typology 2 — account takeover with leaked credentials (撞库盗号).

A gang replays a leaked list of logins in bursts of 15 to 45 minutes, from a handful of proxy addresses and
scripted (often emulated) phones: hundreds of accounts, one or two failed attempts each, a success rate of
about 2 %. On each account it gets into, it binds its own phone within minutes, changes the password (and
often the phone number), then drains the wallet to first-layer mules (or, when the wallet is thin, pays
from the linked bank card), and sometimes withdraws to its own card. The owner notices within hours and
reports. The drained money is laundered like telecom-fraud proceeds.

Signals: many failed logins from one IP or device across many accounts in minutes; a successful login
after failures on a new device; a device bind, password change and phone change in quick succession; a
transfer or withdrawal from a device bound minutes ago to a payee never paid before.
"""

from __future__ import annotations

import numpy as np

from riskguard.sim.context import VictimReport, WorldContext
from riskguard.sim.laundering import Crew, build_crew, gang_kit, split
from riskguard.sim.rhythm import DAY_MS, HOUR_MS, MINUTE_MS, time_in_window
from riskguard.sim.table import R, T

TYPOLOGY = "account_takeover"
SUCCESS_RATE = 0.02
REPORT_SHARE = 0.9
MIN_WALLET_FEN = 500_00


def simulate(ctx: WorldContext, rng: np.random.Generator) -> None:
    typology = ctx.typology_code(TYPOLOGY)
    for _ in range(ctx.gang_count(TYPOLOGY)):
        gang = ctx.new_gang(TYPOLOGY)
        devices, proxies = gang_kit(
            ctx, rng, gang, phones=int(rng.integers(2, 4)), ips=int(rng.integers(3, 8)), emulator_p=0.6, rooted_p=0.3
        )
        phones = ctx.gang_phones(rng, 2, virtual=True)
        cards = [ctx.new_card() for _ in range(2)]
        for phone in phones:
            ctx.member(gang, "attacker_phone", "phone", phone, ctx.start_ms)
        for card in cards:
            ctx.member(gang, "attacker_card", "card", card, ctx.start_ms)
        bursts = sorted(
            time_in_window(rng, ctx.start_ms, ctx.end_ms - HOUR_MS, night=rng.random() < 0.6)
            for _ in range(max(1, round(ctx.config.days / 3)))
        )
        crew = build_crew(ctx, rng, gang, typology, bursts[0], (int(rng.integers(3, 6)), int(rng.integers(2, 4))))
        for t0 in bursts:
            _burst(ctx, rng, gang, typology, t0, devices, proxies, phones, cards, crew)


def _burst(
    ctx: WorldContext,
    rng: np.random.Generator,
    gang: int,
    typology: int,
    t0: int,
    devices: list[int],
    proxies: list[int],
    phones: list[int],
    cards: list[int],
    crew: Crew,
) -> None:
    duration = int(rng.integers(15, 46)) * MINUTE_MS
    size = int(np.clip(ctx.config.accounts * 0.04, 60, 600) * rng.uniform(0.7, 1.3))
    targets = ctx.pick(rng, size, claim=False)
    known = t0 + int(rng.uniform(1, 3) * DAY_MS)  # found when the login logs are reviewed
    for account in targets:
        for _ in range(int(rng.integers(1, 3))):
            ctx.fraud.add(
                ts=t0 + int(rng.integers(duration)),
                type=T["login"],
                account=int(account),
                device=devices[int(rng.integers(len(devices)))],
                ip=proxies[int(rng.integers(len(proxies)))],
                channel=1,
                locale=0,
                success=0,
                typology=typology,
                gang=gang,
                role=R["stuffing_login"],
                known_at=known,
            )
    hits = max(1, int(rng.binomial(len(targets), SUCCESS_RATE)))
    victims = [int(a) for a in targets if not ctx.claimed[a]][:hits]
    for victim in victims:
        ctx.claimed[victim] = True
        _takeover(
            ctx, rng, gang, typology, victim, t0 + int(rng.integers(duration)), devices, proxies, phones, cards, crew
        )


def _takeover(
    ctx: WorldContext,
    rng: np.random.Generator,
    gang: int,
    typology: int,
    victim: int,
    t: int,
    devices: list[int],
    proxies: list[int],
    phones: list[int],
    cards: list[int],
    crew: Crew,
) -> None:
    pop = ctx.pop
    device = devices[int(rng.integers(len(devices)))]
    ip = proxies[int(rng.integers(len(proxies)))]
    rows: list[int] = []
    drains: list[int] = []

    def add(**values: int) -> int:
        if values["ts"] >= ctx.end_ms:
            return -1
        row = len(ctx.fraud)
        ctx.fraud.add(account=victim, device=device, ip=ip, locale=0, typology=typology, gang=gang, **values)
        rows.append(row)
        return row

    add(ts=t, type=T["login"], channel=0, success=1, role=R["takeover_login"])
    t += int(rng.integers(2, 21)) * MINUTE_MS
    add(ts=t, type=T["device_bind"], channel=0, phone=int(pop.phone[victim]), role=R["takeover_device_bind"])
    t += int(rng.integers(1, 6)) * MINUTE_MS
    add(ts=t, type=T["password_change"], channel=0, method=1, role=R["takeover_password_change"])
    if rng.random() < 0.5:
        t += int(rng.integers(1, 4)) * MINUTE_MS
        add(
            ts=t,
            type=T["profile_change"],
            channel=0,
            field=3,
            phone=phones[int(rng.integers(len(phones)))],
            role=R["takeover_profile_change"],
        )
    budget = int(pop.opening_fen[victim] * 0.9) // 100 * 100
    if budget >= MIN_WALLET_FEN:
        withdraw = int(budget * 0.3) if rng.random() < 0.3 else 0
        pieces = split(rng, budget - withdraw, int(rng.integers(1, 4)))
        card = -1
    else:  # a thin wallet: pay from the linked bank card instead
        withdraw = 0
        pieces = [int(rng.integers(2000, 20001)) * 100]
        card = int(pop.card[victim])
    for piece in pieces:
        t += int(rng.integers(1, 11)) * MINUTE_MS
        if t >= ctx.end_ms:
            break
        mule = crew.layers[0][int(rng.integers(len(crew.layers[0])))]
        drains.append(
            add(
                ts=t,
                type=T["transfer"],
                channel=0,
                amount=piece,
                counterparty=mule.account,
                card=card,
                on_call=0,
                screen_sharing=0,
                payee_name_matches=1,
                role=R["drain"],
                loss=1,
            )
        )
        crew.receive(0, mule, t, piece)
    drains = [row for row in drains if row >= 0]
    if withdraw:
        t += int(rng.integers(2, 15)) * MINUTE_MS
        row = add(
            ts=t,
            type=T["withdrawal"],
            channel=0,
            amount=withdraw,
            card=cards[int(rng.integers(len(cards)))],
            role=R["drain"],
            loss=1,
        )
        if row >= 0:
            drains.append(row)
    reported = bool(drains) and rng.random() < REPORT_SHARE
    report_ms = t + max(30 * MINUTE_MS, int(rng.lognormal(np.log(6), 0.9) * HOUR_MS))
    for row in rows:
        ctx.fraud.set("known_at", row, report_ms if reported else t + 30 * DAY_MS)
    if reported:
        ctx.reports.append(VictimReport(gang, TYPOLOGY, victim, report_ms, "account_takeover", drains))
