"""Typology 6 — card testing (测卡).

A gang holding a list of stolen card numbers checks which still work: from one phone (often an emulator),
one or two addresses and one to three freshly opened accounts, it makes many tiny online payments (1.00
yuan, or a few fen to a few yuan) at one small digital-goods shop, one to three per card, seconds apart,
for 20 to 90 minutes. A few hours to two days later it spends on the cards that worked: gift cards and
game currency worth hundreds to thousands of yuan. The cards are not the accounts' own; the cardholders
find out from their statements and charge back weeks later.

Signals: many distinct cards on one device or account in minutes; many tiny payments at one merchant;
cards never seen on the account before; a new account, an emulator; gift-card purchases from the same
device shortly after.
"""

from __future__ import annotations

import numpy as np

from riskguard.sim.context import WorldContext
from riskguard.sim.laundering import gang_kit
from riskguard.sim.population import CAT
from riskguard.sim.rhythm import DAY_MS, HOUR_MS, MINUTE_MS, time_in_window
from riskguard.sim.table import R, T

TYPOLOGY = "card_testing"
LIVE_SHARE = 0.08


def simulate(ctx: WorldContext, rng: np.random.Generator) -> None:
    typology = ctx.typology_code(TYPOLOGY)
    merchants = ctx.pop.merchants
    shops = merchants.by_category[CAT["digital_goods"]]
    cash_out = np.concatenate([merchants.by_category[CAT["gift_card"]], merchants.by_category[CAT["game_currency"]]])
    for _ in range(ctx.gang_count(TYPOLOGY)):
        gang = ctx.new_gang(TYPOLOGY)
        devices, ips = gang_kit(
            ctx, rng, gang, phones=int(rng.integers(1, 3)), ips=int(rng.integers(1, 3)), emulator_p=0.6, rooted_p=0.4
        )
        target = int(shops[len(shops) // 2 + int(rng.integers(len(shops) - len(shops) // 2))])  # a small shop
        bursts = sorted(
            time_in_window(rng, ctx.start_ms + DAY_MS // 2, ctx.end_ms - HOUR_MS, night=rng.random() < 0.5)
            for _ in range(int(rng.integers(1, 4)))
        )
        accounts = []
        for _ in range(int(rng.integers(1, 4))):
            opened = bursts[0] - int(rng.uniform(0.1, 5) * DAY_MS)
            phone = ctx.gang_phones(rng, 1, virtual=True)[0]
            account = ctx.new_account(
                opened, region=int(rng.integers(len(ctx.pop.mobile_pool))), phone=phone, ip=ips[0], device=devices[0]
            )
            ctx.member(gang, "tester_account", "account", account, opened)
            if opened >= ctx.start_ms:
                ctx.fraud.add(
                    ts=opened,
                    type=T["signup"],
                    account=account,
                    device=devices[0],
                    ip=ips[0],
                    phone=phone,
                    channel=0,
                    locale=0,
                    typology=typology,
                    gang=gang,
                    role=R["tester_signup"],
                    known_at=opened + 10 * DAY_MS,
                )
            accounts.append(account)
        for t0 in bursts:
            _burst(ctx, rng, gang, typology, t0, devices, ips, accounts, target, cash_out)


def _burst(
    ctx: WorldContext,
    rng: np.random.Generator,
    gang: int,
    typology: int,
    t0: int,
    devices: list[int],
    ips: list[int],
    accounts: list[int],
    target: int,
    cash_out: np.ndarray,
) -> None:
    cards = [ctx.new_card() for _ in range(int(rng.integers(40, 201)))]
    duration = int(rng.integers(20, 91)) * MINUTE_MS
    known = t0 + int(rng.uniform(7, 40) * DAY_MS)  # chargebacks
    device = devices[int(rng.integers(len(devices)))]
    for card in cards:
        ctx.member(gang, "stolen_card", "card", card, t0)
        t = t0 + int(rng.integers(duration))
        for _ in range(int(rng.integers(1, 4))):
            if t >= ctx.end_ms:
                break
            amount = 100 if rng.random() < 0.4 else int(rng.integers(1, 1000))
            ctx.fraud.add(
                ts=t,
                type=T["payment"],
                account=accounts[int(rng.integers(len(accounts)))],
                amount=amount,
                merchant=target,
                device=device,
                ip=ips[int(rng.integers(len(ips)))],
                card=card,
                channel=1,
                locale=0,
                screen_sharing=0,
                typology=typology,
                gang=gang,
                role=R["card_test"],
                loss=1,
                known_at=known,
            )
            t += int(rng.integers(3_000, 60_000))
        if rng.random() < LIVE_SHARE:
            spend = t + int(rng.uniform(2, 48) * HOUR_MS)
            if spend < ctx.end_ms:
                ctx.fraud.add(
                    ts=spend,
                    type=T["payment"],
                    account=accounts[int(rng.integers(len(accounts)))],
                    amount=int(rng.integers(200, 3001)) * 100,
                    merchant=int(rng.choice(cash_out)),
                    device=device,
                    ip=ips[int(rng.integers(len(ips)))],
                    card=card,
                    channel=0,
                    locale=0,
                    screen_sharing=0,
                    typology=typology,
                    gang=gang,
                    role=R["card_cash_out"],
                    loss=1,
                    known_at=known,
                )
