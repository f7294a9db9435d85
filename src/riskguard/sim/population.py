"""The people and shops of a world: account profiles, devices, cards, employers, merchants, friendships.

All arrays are indexed by account (or device, merchant) number and built in one vectorised pass. A
population has about 5 % accounts opened during the world (they sign up on their opening day), 7 %
dormant accounts (opened long ago, silent: the pool mule recruiters draw from), 1 % small sellers who
are paid by many people through personal transfers, and households that share a phone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskguard.sim import ids
from riskguard.sim.config import WorldConfig
from riskguard.sim.rhythm import DAY_MS
from riskguard.sim.texts import REGION_WEIGHTS, REGIONS, employer_names

FRIENDS = 6
COMMUNITY = 100

#: merchant categories: (name, share of payments, median amount in yuan, log-normal sigma)
CATEGORIES: tuple[tuple[str, float, float, float], ...] = (
    ("grocery", 0.21, 35, 0.8),
    ("restaurant", 0.20, 55, 0.7),
    ("ecommerce", 0.18, 120, 1.0),
    ("transport", 0.12, 12, 0.7),
    ("utilities", 0.03, 180, 0.5),
    ("telecom", 0.03, 80, 0.4),
    ("entertainment", 0.05, 90, 0.8),
    ("travel", 0.02, 900, 0.9),
    ("healthcare", 0.03, 220, 1.0),
    ("education", 0.01, 1800, 0.8),
    ("digital_goods", 0.06, 25, 1.0),
    ("game_currency", 0.03, 60, 1.0),
    ("gift_card", 0.012, 300, 0.8),
    ("crypto_otc", 0.0008, 3000, 1.0),
)
CATEGORY_NAMES = tuple(c[0] for c in CATEGORIES)
CAT = {name: code for code, name in enumerate(CATEGORY_NAMES)}


@dataclass
class Merchants:
    category: np.ndarray  # int8 code into CATEGORY_NAMES
    region: np.ndarray
    by_category: list[np.ndarray]  # merchant numbers per category
    cdf_by_category: list[np.ndarray]  # popularity (Zipf) within the category

    def __len__(self) -> int:
        return len(self.category)

    def sample(self, rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
        """A merchant of each given category, popular shops more often."""
        out = np.empty(len(category), dtype=np.int64)
        for code in np.unique(category):
            where = np.flatnonzero(category == code)
            pick = np.searchsorted(self.cdf_by_category[code], rng.random(len(where)), side="right")
            out[where] = self.by_category[code][np.minimum(pick, len(self.by_category[code]) - 1)]
        return out


@dataclass
class Population:
    """The accounts that exist when the world starts (plus those opening during it: ``opened_ms``)."""

    n: int
    opened_ms: np.ndarray  # int64
    region: np.ndarray  # int16 into texts.REGIONS
    phone: np.ndarray  # int64 11-digit numbers
    home_ip: np.ndarray  # int64
    device: np.ndarray  # int64 primary device (shared within some households)
    device2: np.ndarray  # int64 second device (-1 for most)
    card: np.ndarray  # int64 first bank card
    card2: np.ndarray  # int64 second card (-1 for some)
    opening_fen: np.ndarray  # int64 wallet balance at the start
    income_fen: np.ndarray  # int64 monthly salary (0: no salary)
    employer: np.ndarray  # int32 into employer_names (-1: none)
    payday: np.ndarray  # int8 day of the month the salary arrives
    activity: np.ndarray  # float64, mean 1
    dormant: np.ndarray  # bool
    seller: np.ndarray  # bool
    english: np.ndarray  # bool: the app is set to English (locale "en")
    friends: np.ndarray  # int64 [n, FRIENDS]
    employer_names: list[str]
    n_devices: int
    n_cards: int
    device_emulator: np.ndarray  # bool per device
    device_rooted: np.ndarray  # bool per device
    mobile_pool: np.ndarray  # int64 carrier NAT addresses, per region: mobile_pool[region] start, size below
    mobile_pool_size: int
    merchants: Merchants
    sellers: np.ndarray  # account numbers of sellers

    def mobile_ips(self, rng: np.random.Generator, accounts: np.ndarray) -> np.ndarray:
        """A carrier NAT address in each account's region (many people share one)."""
        return self.mobile_pool[self.region[accounts]] + rng.integers(0, self.mobile_pool_size, len(accounts))


def build_population(config: WorldConfig, rng: np.random.Generator) -> Population:
    n = config.accounts
    start, end = config.start_ms, config.end_ms
    idx = np.arange(n, dtype=np.int64)

    # opening dates: 5 % during the world (they sign up then), the rest years before
    new = rng.random(n) < 0.05
    age_days = np.maximum(8, rng.lognormal(np.log(700), 0.9, n)).astype(np.int64)
    opened = start - age_days * DAY_MS - rng.integers(0, DAY_MS, n)
    opened[new] = start + rng.integers(0, end - start, int(new.sum()))
    dormant = (~new) & (age_days > 180) & (rng.random(n) < 0.075)

    region = rng.choice(len(REGIONS), n, p=REGION_WEIGHTS).astype(np.int16)
    phone = ids.person_phones(idx, config.seed)
    home_ip = ids.home_ips(idx, config.seed)

    # communities of ~100 people (same region mostly) hold friends; households share a phone
    order = rng.permutation(n)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    community = rank // COMMUNITY
    base = community * COMMUNITY
    size = np.minimum(COMMUNITY, n - base)
    members = base[:, None] + rng.integers(0, size[:, None], (n, FRIENDS))
    friends = order[members]
    self_pick = friends == idx[:, None]
    friends[self_pick] = order[base[:, None].repeat(FRIENDS, 1)[self_pick]]  # the community's first member
    community_region = region[order[base]]
    keep_home = rng.random(n) < 0.85
    region = np.where(keep_home, community_region, region).astype(np.int16)

    device = idx.copy()
    shares = rng.random(n) < 0.12
    partner = friends[:, 0]
    device[shares] = partner[shares]  # a household phone: partner's device (partner's own stays theirs)
    home_ip[shares] = home_ip[partner[shares]]  # and the household's broadband
    has_second = rng.random(n) < 0.3
    device2 = np.full(n, -1, dtype=np.int64)
    device2[has_second] = n + np.arange(int(has_second.sum()))
    n_devices = n + int(has_second.sum())
    emulator = rng.random(n_devices) < 0.002  # developers and testers
    rooted = rng.random(n_devices) < 0.02

    card = 2 * idx
    card2 = np.where(rng.random(n) < 0.45, 2 * idx + 1, -1)
    n_cards = 2 * n

    # people who transact more tend to earn and hold more: wealth grows with the square root of activity
    employed = rng.random(n) < 0.74
    activity = rng.lognormal(0.0, 0.8, n) * np.where(employed, 1.0, 0.6)
    activity /= activity.mean()
    wealth = np.sqrt(activity) / np.sqrt(activity).mean()
    income = np.where(employed, np.round(rng.lognormal(np.log(6500), 0.5, n) * wealth, -2) * 100, 0).astype(np.int64)
    income[dormant] = 0
    n_employers = max(10, n // 60)
    names = employer_names(rng, n_employers)
    employer = np.where(employed, rng.integers(0, n_employers, n), -1).astype(np.int32)
    employer_payday = rng.choice([1, 5, 10, 15, 20, 25, 28], n_employers).astype(np.int8)
    payday = np.where(employer >= 0, employer_payday[np.maximum(employer, 0)], 0).astype(np.int8)
    opening = np.minimum(np.round(rng.lognormal(np.log(6000), 1.2, n) * wealth * 100), 2_000_000_00).astype(np.int64)
    opening[new] = 0
    seller = (rng.random(n) < 0.01) & ~dormant

    pool_size = max(8, n // len(REGIONS) // 40)
    mobile_pool = ids.MOBILE_IP_BASE + np.arange(len(REGIONS), dtype=np.int64) * max(4096, pool_size)

    return Population(
        n=n,
        opened_ms=opened.astype(np.int64),
        region=region,
        phone=phone,
        home_ip=home_ip.astype(np.int64),
        device=device,
        device2=device2,
        card=card,
        card2=card2.astype(np.int64),
        opening_fen=opening,
        income_fen=income,
        employer=employer,
        payday=payday,
        activity=activity,
        dormant=dormant,
        seller=seller,
        english=rng.random(n) < 0.02,
        friends=friends,
        employer_names=names,
        n_devices=n_devices,
        n_cards=n_cards,
        device_emulator=emulator,
        device_rooted=rooted,
        mobile_pool=mobile_pool,
        mobile_pool_size=pool_size,
        merchants=build_merchants(n, rng),
        sellers=np.flatnonzero(seller),
    )


def build_merchants(n_accounts: int, rng: np.random.Generator) -> Merchants:
    count = max(80, n_accounts // 100)
    shares = np.array([c[1] for c in CATEGORIES])
    per = np.maximum(3, np.round(shares / shares.sum() * count)).astype(np.int64)
    category = np.repeat(np.arange(len(CATEGORIES), dtype=np.int8), per)
    category = category[rng.permutation(len(category))]
    region = rng.choice(len(REGIONS), len(category), p=REGION_WEIGHTS).astype(np.int16)
    by_category, cdfs = [], []
    for code in range(len(CATEGORIES)):
        numbers = np.flatnonzero(category == code)
        weights = 1.0 / np.arange(1, len(numbers) + 1) ** 1.1
        by_category.append(numbers)
        cdfs.append(np.cumsum(weights) / weights.sum())
    return Merchants(category=category, region=region, by_category=by_category, cdf_by_category=cdfs)
