"""What the typologies share while a world is built: the population, allocators for new entities, the
gangs and their members, the fraud events, credits and victim reports written so far.

Typology modules never touch each other's state except through two pools kept here: accounts that device
farms hold for sale (telecom gangs buy them as first-layer mules), and the set of accounts already given a
fraud role (an account is a victim, a mule or a customer of one gang at most, so every label is unambiguous).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from riskguard.sim import ids
from riskguard.sim.config import TYPOLOGIES, WorldConfig
from riskguard.sim.population import Population
from riskguard.sim.rhythm import DAY_MS
from riskguard.sim.table import RowBuilder, TextTable

CREDIT_KINDS: tuple[str, ...] = ("salary", "loan_disbursal", "promo_bonus", "inbound_transfer")
CK = {name: code for code, name in enumerate(CREDIT_KINDS)}

#: a typology's gangs at intensity 1: one per this many accounts (and at least one)
GANG_ACCOUNTS: dict[str, int] = {
    "fake_account_farm": 300_000,
    "telecom_fraud": 100_000,
    "account_takeover": 250_000,
    "loan_intermediary": 150_000,
    "proxy_rights_agent": 200_000,
    "card_testing": 300_000,
    "mule_recruitment": 200_000,
}


@dataclass
class Gang:
    id: str
    typology: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass
class Member:
    gang: int
    role: str
    kind: str  # account, device, ip, phone, card, merchant
    value: int
    since_ms: int


@dataclass
class VictimReport:
    gang: int
    typology: str
    account: int
    reported_ms: int
    script: str
    rows: list[int]  # rows of ``WorldContext.fraud`` (the reported payments)


@dataclass
class Mule:
    """An account a gang moves money through, and the phone and address it is operated from."""

    account: int
    device: int
    ip: int
    card: int


@dataclass
class FarmAccount:
    account: int
    device: int
    ip: int
    opened_ms: int
    gang: int


class CreditBuilder:
    """Money arriving from outside the event stream: salaries, loan disbursals, promotions, inbound bank
    transfers. Rows may point at a fraud event row (``ref``: a loan disbursal's application)."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.account: list[int] = []
        self.amount: list[int] = []
        self.kind: list[int] = []
        self.typology: list[int] = []
        self.gang: list[int] = []
        self.ref: list[int] = []

    def add(
        self, ts: int, account: int, amount: int, kind: str, *, typology: int = -1, gang: int = -1, ref: int = -1
    ) -> None:
        self.ts.append(ts)
        self.account.append(account)
        self.amount.append(amount)
        self.kind.append(CK[kind])
        self.typology.append(typology)
        self.gang.append(gang)
        self.ref.append(ref)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "ts": np.asarray(self.ts, dtype=np.int64),
            "account": np.asarray(self.account, dtype=np.int64),
            "amount": np.asarray(self.amount, dtype=np.int64),
            "kind": np.asarray(self.kind, dtype=np.int8),
            "typology": np.asarray(self.typology, dtype=np.int8),
            "gang": np.asarray(self.gang, dtype=np.int32),
            "ref": np.asarray(self.ref, dtype=np.int64),
        }


class WorldContext:
    def __init__(self, config: WorldConfig, population: Population, texts: TextTable) -> None:
        self.config = config
        self.pop = population
        self.texts = texts
        self.start_ms = config.start_ms
        self.end_ms = config.end_ms
        self.fraud = RowBuilder()
        self.credits = CreditBuilder()
        self.gangs: list[Gang] = []
        self.members: list[Member] = []
        self.reports: list[VictimReport] = []
        self.farm_pool: list[FarmAccount] = []
        self.claimed = np.zeros(population.n, dtype=bool)
        # entities created during the world, beyond the population's
        self._new_opened: list[int] = []
        self._new_region: list[int] = []
        self._new_phone: list[int] = []
        self._new_ip: list[int] = []
        self._new_device: list[int] = []
        self._new_card: list[int] = []
        self._device_emulator: list[bool] = []
        self._device_rooted: list[bool] = []
        self.extra_merchants: list[int] = []  # category codes of shops gangs open
        self._n_cards = population.n_cards
        self._gang_ip_cursor = 0
        self._phone_cursor = 0

    # ------------------------------------------------------------------ gangs
    def gang_count(self, typology: str) -> int:
        intensity = self.config.intensity_of(typology)
        if intensity <= 0:
            return 0
        return max(1, math.floor(intensity * self.config.accounts / GANG_ACCOUNTS[typology] + 0.5))

    def new_gang(self, typology: str, **details: str) -> int:
        number = sum(1 for g in self.gangs if g.typology == typology) + 1
        self.gangs.append(Gang(f"{typology}-{number:03d}", typology, dict(details)))
        return len(self.gangs) - 1

    def member(self, gang: int, role: str, kind: str, value: int, since_ms: int) -> None:
        self.members.append(Member(gang, role, kind, int(value), int(since_ms)))

    @staticmethod
    def typology_code(typology: str) -> int:
        return TYPOLOGIES.index(typology)

    # ------------------------------------------------------------------ accounts
    @property
    def n_accounts(self) -> int:
        return self.pop.n + len(self._new_opened)

    def pick(
        self,
        rng: np.random.Generator,
        k: int,
        *,
        dormant: bool = False,
        opened_before_ms: int | None = None,
        min_opening_fen: int = 0,
        claim: bool = True,
    ) -> np.ndarray:
        """Up to ``k`` accounts of the population with no fraud role yet (claimed unless ``claim=False``)."""
        pop = self.pop
        ok = (~self.claimed) & (pop.dormant == dormant) & ~pop.seller
        ok &= pop.opened_ms < (opened_before_ms if opened_before_ms is not None else self.start_ms - 30 * DAY_MS)
        if min_opening_fen:
            ok &= pop.opening_fen >= min_opening_fen
        pool = np.flatnonzero(ok)
        if len(pool) == 0:
            return pool
        chosen = np.sort(rng.choice(pool, min(k, len(pool)), replace=False))
        if claim:
            self.claimed[chosen] = True
        return chosen

    def new_account(self, opened_ms: int, *, region: int, phone: int, ip: int, device: int) -> int:
        """An account opened by a gang (or a device farm); it has no money until someone sends it some."""
        self._new_opened.append(int(opened_ms))
        self._new_region.append(int(region))
        self._new_phone.append(int(phone))
        self._new_ip.append(int(ip))
        self._new_device.append(int(device))
        self._new_card.append(self.new_card())
        return self.pop.n + len(self._new_opened) - 1

    def card_of(self, account: int) -> int:
        if account < self.pop.n:
            return int(self.pop.card[account])
        return self._new_card[account - self.pop.n]

    def phone_of(self, account: int) -> int:
        if account < self.pop.n:
            return int(self.pop.phone[account])
        return self._new_phone[account - self.pop.n]

    def opened_of(self, account: int) -> int:
        if account < self.pop.n:
            return int(self.pop.opened_ms[account])
        return self._new_opened[account - self.pop.n]

    def new_accounts_arrays(self) -> dict[str, np.ndarray]:
        return {
            "opened_ms": np.asarray(self._new_opened, dtype=np.int64),
            "region": np.asarray(self._new_region, dtype=np.int16),
            "phone": np.asarray(self._new_phone, dtype=np.int64),
            "home_ip": np.asarray(self._new_ip, dtype=np.int64),
            "device": np.asarray(self._new_device, dtype=np.int64),
            "card": np.asarray(self._new_card, dtype=np.int64),
        }

    # ------------------------------------------------------------------ other entities
    def new_device(self, rng: np.random.Generator, *, emulator_p: float = 0.0, rooted_p: float = 0.0) -> int:
        self._device_emulator.append(bool(rng.random() < emulator_p))
        self._device_rooted.append(bool(rng.random() < rooted_p))
        return self.pop.n_devices + len(self._device_emulator) - 1

    def device_flags(self) -> tuple[np.ndarray, np.ndarray]:
        """Emulator and rooted flags of every device (population's and gangs')."""
        return (
            np.concatenate([self.pop.device_emulator, np.asarray(self._device_emulator, dtype=bool)]),
            np.concatenate([self.pop.device_rooted, np.asarray(self._device_rooted, dtype=bool)]),
        )

    def new_card(self) -> int:
        self._n_cards += 1
        return self._n_cards - 1

    def gang_ips(self, rng: np.random.Generator, k: int, *, contiguous: bool = False) -> list[int]:
        """Addresses in 198.18.0.0/15: a contiguous block (a farm's range) or scattered proxies."""
        if contiguous:
            self._gang_ip_cursor += 256 - self._gang_ip_cursor % 256  # a fresh /24
            first = ids.GANG_IP_BASE + self._gang_ip_cursor + 1
            self._gang_ip_cursor += max(k, 1) + 1
            return [first + i for i in range(k)]
        out = []
        for _ in range(k):
            self._gang_ip_cursor += int(rng.integers(7, 300))
            out.append(ids.GANG_IP_BASE + self._gang_ip_cursor % (1 << 17))
        return out

    def gang_phones(
        self, rng: np.random.Generator, k: int, *, virtual: bool = False, sequential: bool = False
    ) -> list[int]:
        """Numbers outside the population's: consecutive virtual-operator numbers bought in bulk
        (``sequential``), or odd operator numbers ("phone cards" bought or rented one by one)."""
        if sequential:
            prefix = int(rng.choice(ids.VIRTUAL_PREFIXES))
            first = prefix * 10**8 + int(rng.integers(10**6, 9 * 10**7))
            return [first + i for i in range(k)]
        out = []
        for _ in range(k):
            self._phone_cursor += 1
            prefix = int(rng.choice(ids.VIRTUAL_PREFIXES)) if virtual else int(rng.choice((166, 198, 199)))
            out.append(prefix * 10**8 + (self._phone_cursor * 7_919 + int(rng.integers(10**4)) * 10**4) % 10**8)
        return out

    def new_merchant(self, category: int) -> int:
        self.extra_merchants.append(category)
        return len(self.pop.merchants) + len(self.extra_merchants) - 1

    def hire_agent(self, rng: np.random.Generator, gang: int) -> tuple[list[int], int] | None:
        """An intermediary's contact phones (one or two, recorded as gang members) and the customer
        account the agent operates from; None when the population has no account left to pick."""
        phones = self.gang_phones(rng, int(rng.integers(1, 3)))
        for phone in phones:
            self.member(gang, "agent_phone", "phone", phone, self.start_ms)
        agent = self.pick(rng, 1)
        if not len(agent):
            return None
        account = int(agent[0])
        self.member(gang, "agent_account", "account", account, self.start_ms)
        return phones, account
