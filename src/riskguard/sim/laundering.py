"""Mule chains: how fraud proceeds move on (shared by telecom fraud, account takeover and mule recruitment).

A crew holds first-, second- and third-layer mule accounts. Money that lands on a first-layer account is
forwarded within minutes, split across second-layer accounts (fan-out); second-layer accounts pass it on
to a third layer or cash it out; the last layer cashes out by bank-card withdrawals (at most 49,999.99
each) or purchases of gift cards, game currency or crypto from OTC desks. Each hop keeps a small cut, so
every account sends on at most what it received, and a hop that would fall after the world's end is not
made (the money waits in the account). Mules are operated from the gang's phones and addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from riskguard.sim.context import Mule, WorldContext
from riskguard.sim.population import CAT
from riskguard.sim.rhythm import MINUTE_MS
from riskguard.sim.table import R, T

WITHDRAWAL_LIMIT_FEN = 4_999_999


def split(rng: np.random.Generator, total: int, parts: int) -> list[int]:
    """``total`` fen in ``parts`` positive integer pieces that add up exactly (uneven, like real splits)."""
    parts = max(1, min(parts, total))
    if parts == 1:
        return [total]
    weights = rng.dirichlet(np.full(parts, 2.0))
    pieces = np.floor(weights * (total - parts)).astype(np.int64) + 1
    pieces[0] += total - int(pieces.sum())
    return [int(p) for p in pieces]


def split_capped(total: int, cap: int, extra: int = 0) -> list[int]:
    """``total`` in near-equal pieces of at most ``cap`` (``extra`` more pieces than the fewest possible)."""
    parts = max(1, -(-total // cap) + extra)
    parts = min(parts, total)
    base, rest = divmod(total, parts)
    return [base + (1 if i < rest else 0) for i in range(parts)]


@dataclass
class Crew:
    """One gang's mule layers and cash-out routes."""

    ctx: WorldContext
    rng: np.random.Generator
    gang: int
    typology: int
    layers: list[list[Mule]]
    known_delay_days: tuple[float, float] = (2.0, 10.0)
    forward_role: tuple[int, ...] = (R["layer1_forward"], R["layer2_forward"], R["layer2_forward"])
    cash_out_merchants: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        merchants = self.ctx.pop.merchants
        self.cash_out_merchants = np.concatenate(
            [merchants.by_category[CAT[c]] for c in ("gift_card", "game_currency", "crypto_otc")]
        )

    def _known(self, ts: int) -> int:
        low, high = self.known_delay_days
        return ts + int(self.rng.uniform(low, high) * 86_400_000)

    def receive(self, layer: int, mule: Mule, ts: int, amount: int) -> None:
        """``mule`` (in ``layer``) received ``amount`` fen at ``ts``: move it on, recursively."""
        rng = self.rng
        keep = int(amount * rng.uniform(0.0, 0.015))  # the mule's cut stays behind
        onward = amount - keep
        if onward <= 0:
            return
        last = layer + 1 >= len(self.layers) or (layer >= 1 and rng.random() < 0.5)
        delay = (2, 30) if layer == 0 else (5, 120)
        t = ts + int(rng.integers(delay[0] * MINUTE_MS, delay[1] * MINUTE_MS))
        if last:
            self.cash_out(mule, t, onward)
            return
        targets = self.layers[layer + 1]
        pieces = split(rng, onward, int(rng.integers(1, min(4, len(targets)) + 1)))
        chosen = rng.choice(len(targets), len(pieces), replace=False)
        for piece, index in zip(pieces, chosen, strict=True):
            if t >= self.ctx.end_ms:
                return
            target = targets[int(index)]
            self.transfer(mule, target.account, t, piece, self.forward_role[min(layer, len(self.forward_role) - 1)])
            self.receive(layer + 1, target, t, piece)
            t += int(rng.integers(20_000, 4 * MINUTE_MS))

    def transfer(self, mule: Mule, payee: int, ts: int, amount: int, role: int) -> int:
        row = len(self.ctx.fraud)
        self.ctx.fraud.add(
            ts=ts,
            type=T["transfer"],
            account=mule.account,
            amount=amount,
            counterparty=payee,
            device=mule.device,
            ip=mule.ip,
            channel=0,
            locale=0,
            on_call=0,
            screen_sharing=0,
            payee_name_matches=1,
            typology=self.typology,
            gang=self.gang,
            role=role,
            loss=0,
            known_at=self._known(ts),
        )
        return row

    def cash_out(self, mule: Mule, ts: int, amount: int) -> None:
        rng, ctx = self.rng, self.ctx
        by_withdrawal = rng.random() < 0.7
        if by_withdrawal:
            pieces = split_capped(amount, WITHDRAWAL_LIMIT_FEN, int(rng.integers(0, 2)))
        else:
            pieces = split(rng, amount, int(rng.integers(1, 4)))
        for piece in pieces:
            if ts >= ctx.end_ms:
                return
            common = dict(
                ts=ts,
                account=mule.account,
                amount=piece,
                device=mule.device,
                ip=mule.ip,
                channel=0,
                locale=0,
                typology=self.typology,
                gang=self.gang,
                loss=0,
                known_at=self._known(ts),
            )
            if by_withdrawal:
                ctx.fraud.add(type=T["withdrawal"], card=mule.card, role=R["cash_out_withdrawal"], **common)
            else:
                merchant = int(rng.choice(self.cash_out_merchants))
                ctx.fraud.add(
                    type=T["payment"], merchant=merchant, screen_sharing=0, role=R["cash_out_purchase"], **common
                )
            ts += int(rng.integers(3 * MINUTE_MS, 90 * MINUTE_MS))


def gang_kit(
    ctx: WorldContext,
    rng: np.random.Generator,
    gang: int,
    *,
    phones: int,
    ips: int,
    emulator_p: float = 0.1,
    rooted_p: float = 0.3,
    since_ms: int | None = None,
) -> tuple[list[int], list[int]]:
    """A gang's own phones (devices) and addresses (proxies), recorded as its members."""
    since = ctx.start_ms if since_ms is None else since_ms
    devices = [ctx.new_device(rng, emulator_p=emulator_p, rooted_p=rooted_p) for _ in range(phones)]
    addresses = ctx.gang_ips(rng, ips)
    for device in devices:
        ctx.member(gang, "gang_device", "device", device, since)
    for ip in addresses:
        ctx.member(gang, "gang_ip", "ip", ip, since)
    return devices, addresses


def _setup_time(ctx: WorldContext, rng: np.random.Generator, first_use_ms: int) -> int:
    return first_use_ms - int(rng.uniform(1 / 24, 5) * 86_400_000)


def new_mule(
    ctx: WorldContext,
    rng: np.random.Generator,
    gang: int,
    typology: int,
    first_use_ms: int,
    device: int,
    ip: int,
    role: str,
) -> Mule:
    """An account the gang opens itself with a bought phone card (a signup event if inside the world)."""
    opened = _setup_time(ctx, rng, first_use_ms) - int(rng.uniform(0, 15) * 86_400_000)
    phone = ctx.gang_phones(rng, 1, virtual=rng.random() < 0.4)[0]
    region = int(rng.integers(len(ctx.pop.mobile_pool)))
    account = ctx.new_account(opened, region=region, phone=phone, ip=ip, device=device)
    if opened >= ctx.start_ms:
        ctx.fraud.add(
            ts=opened,
            type=T["signup"],
            account=account,
            device=device,
            ip=ip,
            phone=phone,
            channel=0,
            locale=0,
            typology=typology,
            gang=gang,
            role=R["mule_signup"],
            known_at=opened + int(rng.uniform(3, 15) * 86_400_000),
        )
    ctx.member(gang, role, "account", account, opened)
    ctx.member(gang, role, "phone", phone, opened)
    return Mule(account, device, ip, ctx.card_of(account))


def taken_mule(
    ctx: WorldContext,
    rng: np.random.Generator,
    gang: int,
    typology: int,
    first_use_ms: int,
    device: int,
    ip: int,
    role: str,
    account: int,
) -> Mule:
    """An existing account handed to the gang (rented, bought from a farm, recruited): the gang binds its
    own phone to it shortly before first use."""
    at = max(_setup_time(ctx, rng, first_use_ms), ctx.opened_of(account) + 3_600_000)
    if ctx.start_ms <= at < ctx.end_ms:
        ctx.fraud.add(
            ts=at,
            type=T["device_bind"],
            account=account,
            device=device,
            ip=ip,
            phone=ctx.phone_of(account),
            channel=0,
            locale=0,
            typology=typology,
            gang=gang,
            role=R["mule_device_bind"],
            known_at=at + int(rng.uniform(3, 15) * 86_400_000),
        )
    ctx.member(gang, role, "account", account, min(at, first_use_ms))
    return Mule(account, device, ip, ctx.card_of(account))


def build_crew(
    ctx: WorldContext,
    rng: np.random.Generator,
    gang: int,
    typology: int,
    first_use_ms: int,
    sizes: tuple[int, ...],
    *,
    farm_share: float = 0.3,
    rented_share: float = 0.35,
) -> Crew:
    """Mule layers of the given sizes: first-layer accounts are bought from farms, rented from ordinary
    people, or opened by the gang; deeper layers are opened or rented."""
    devices, addresses = gang_kit(ctx, rng, gang, phones=max(2, sum(sizes) // 4), ips=3)
    layers: list[list[Mule]] = []
    for depth, size in enumerate(sizes):
        role = f"layer{depth + 1}_mule"
        layer = []
        for _ in range(size):
            device = devices[int(rng.integers(len(devices)))]
            ip = addresses[int(rng.integers(len(addresses)))]
            u = rng.random()
            ready = [i for i, f in enumerate(ctx.farm_pool) if f.opened_ms < first_use_ms - 86_400_000]
            if depth == 0 and u < farm_share and ready:
                bought = ctx.farm_pool.pop(ready[int(rng.integers(len(ready)))])
                layer.append(
                    taken_mule(ctx, rng, gang, typology, first_use_ms, device, ip, "bought_" + role, bought.account)
                )
            elif u < farm_share + rented_share and len(rented := ctx.pick(rng, 1)):
                layer.append(
                    taken_mule(ctx, rng, gang, typology, first_use_ms, device, ip, "rented_" + role, int(rented[0]))
                )
            else:
                layer.append(new_mule(ctx, rng, gang, typology, first_use_ms, device, ip, role))
        layers.append(layer)
    return Crew(ctx, rng, gang, typology, layers)
