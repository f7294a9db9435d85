"""Typology 3 — fake-account farms (养号 / 批量注册).

A farm owns a rack of phones, most of them emulators, each signing up 5 to 15 accounts (so a device
fingerprint is shared across accounts), with consecutive virtual-operator numbers bought in bulk, from one
address range. It registers in bursts of 15 to 80 accounts within an hour or two, mostly at night. About
60 % of the accounts abuse the new-user promotion: the bonus (a credit from the platform) is passed to the
farm's collector account or spent at the farm's own shell shop within a day. The rest wait to be sold as
mule accounts: telecom-fraud and takeover gangs buy them as first-layer mules (``laundering.py``).

Signals: several sign-ups from one device or one IP in a short time; emulator and rooted flags;
virtual-operator phone numbers, consecutive; a collector receiving many small transfers from new accounts
(fan-in); new accounts that pay one unknown shop exactly their bonus.
"""

from __future__ import annotations

import numpy as np

from riskguard.sim.context import FarmAccount, WorldContext
from riskguard.sim.population import CAT
from riskguard.sim.rhythm import DAY_MS, HOUR_MS, MINUTE_MS, time_in_window
from riskguard.sim.table import R, T

TYPOLOGY = "fake_account_farm"
PROMO_SHARE = 0.6


def simulate(ctx: WorldContext, rng: np.random.Generator) -> None:
    typology = ctx.typology_code(TYPOLOGY)
    for _ in range(ctx.gang_count(TYPOLOGY)):
        gang = ctx.new_gang(TYPOLOGY)
        devices = [ctx.new_device(rng, emulator_p=0.7, rooted_p=0.2) for _ in range(int(rng.integers(8, 21)))]
        block = ctx.gang_ips(rng, int(rng.integers(20, 61)), contiguous=True)
        for device in devices:
            ctx.member(gang, "farm_device", "device", device, ctx.start_ms)
        for ip in block:
            ctx.member(gang, "farm_ip", "ip", ip, ctx.start_ms)
        region = int(rng.integers(len(ctx.pop.mobile_pool)))
        collector = ctx.new_account(
            ctx.start_ms - int(rng.uniform(30, 200)) * DAY_MS,
            region=region,
            phone=ctx.gang_phones(rng, 1)[0],
            ip=block[0],
            device=devices[0],
        )
        ctx.member(gang, "collector", "account", collector, ctx.start_ms)
        shop = ctx.new_merchant(CAT["digital_goods"])
        ctx.member(gang, "shell_shop", "merchant", shop, ctx.start_ms)
        bursts = sorted(
            time_in_window(rng, ctx.start_ms, ctx.end_ms - 3 * HOUR_MS, night=rng.random() < 0.7)
            for _ in range(max(1, round(ctx.config.days / 3)))
        )
        for t0 in bursts:
            _burst(ctx, rng, gang, typology, t0, devices, block, region, collector, shop)


def _burst(
    ctx: WorldContext,
    rng: np.random.Generator,
    gang: int,
    typology: int,
    t0: int,
    devices: list[int],
    block: list[int],
    region: int,
    collector: int,
    shop: int,
) -> None:
    size = int(rng.integers(15, 81))
    span = int(rng.integers(30, 121)) * MINUTE_MS
    phones = ctx.gang_phones(rng, size, virtual=True, sequential=True)
    known = t0 + int(rng.uniform(2, 7) * DAY_MS)
    times = np.sort(t0 + rng.integers(0, span, size))
    per_device, first_device = int(rng.integers(5, 16)), int(rng.integers(len(devices)))
    for i, (phone, ts) in enumerate(zip(phones, times, strict=True)):
        ts = int(ts)
        device = devices[(first_device + i // per_device) % len(devices)]
        ip = block[int(rng.integers(len(block)))]
        account = ctx.new_account(ts, region=region, phone=phone, ip=ip, device=device)
        ctx.member(gang, "farm_account", "account", account, ts)
        ctx.member(gang, "farm_phone", "phone", phone, ts)
        common = dict(account=account, device=device, ip=ip, locale=0, typology=typology, gang=gang, known_at=known)
        ctx.fraud.add(ts=ts, type=T["signup"], phone=phone, channel=0, role=R["farm_signup"], **common)
        login = ts + int(rng.integers(30_000, 10 * MINUTE_MS))
        ctx.fraud.add(ts=login, type=T["login"], channel=0, success=1, role=R["farm_login"], **common)
        if rng.random() >= PROMO_SHARE:
            ctx.farm_pool.append(FarmAccount(account, device, ip, ts, gang))
            continue
        bonus = int(rng.choice([8, 10, 18, 20, 38, 50, 88])) * 100
        credited = login + int(rng.integers(10_000, 5 * MINUTE_MS))
        if credited >= ctx.end_ms:
            continue
        ctx.credits.add(credited, account, bonus, "promo_bonus", typology=typology, gang=gang)
        spent = credited + int(rng.integers(5 * MINUTE_MS, 24 * HOUR_MS))
        if spent >= ctx.end_ms:
            continue
        if rng.random() < 0.5:
            ctx.fraud.add(
                ts=spent,
                type=T["transfer"],
                amount=bonus,
                counterparty=collector,
                channel=0,
                on_call=0,
                screen_sharing=0,
                payee_name_matches=1,
                role=R["promo_collect"],
                loss=1,
                **common,
            )
        else:
            ctx.fraud.add(
                ts=spent,
                type=T["payment"],
                amount=bonus,
                merchant=shop,
                channel=0,
                screen_sharing=0,
                promo_code=0,
                role=R["promo_purchase"],
                loss=1,
                **common,
            )
