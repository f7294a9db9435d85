"""Builds a whole world: population, legitimate traffic, every typology's gangs, settled balances.

``simulate(config)`` returns a :class:`World` held in integer arrays; ``writer.write_world`` turns it into
Parquet files. Random numbers come from one ``numpy.random.SeedSequence`` per world, spawned into one
independent stream per part (population, background, each typology), so changing one typology's
intensity does not change the others' draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from riskguard.sim import background, cardtest, farms, loans, recruitment, rights, takeover, telecom
from riskguard.sim.config import TYPOLOGIES, WorldConfig
from riskguard.sim.context import Gang, Member, WorldContext
from riskguard.sim.ledger import settle
from riskguard.sim.population import Population, build_population
from riskguard.sim.table import COLUMNS, EventTable, TextTable

MODULES: dict[str, Callable[[WorldContext, np.random.Generator], None]] = {
    "fake_account_farm": farms.simulate,
    "telecom_fraud": telecom.simulate,
    "account_takeover": takeover.simulate,
    "loan_intermediary": loans.simulate,
    "proxy_rights_agent": rights.simulate,
    "card_testing": cardtest.simulate,
    "mule_recruitment": recruitment.simulate,
}

#: (stage, done, total): what a progress bar shows
Progress = Callable[[str, int, int], None]


@dataclass
class Report:
    """A victim's report: the payments it lists are positions in ``World.events``."""

    gang: int
    typology: str
    account: int
    reported_ms: int
    script: str
    events: np.ndarray


@dataclass
class World:
    config: WorldConfig
    population: Population
    events: EventTable  # in time order
    accounts: dict[str, np.ndarray]  # every account: the population's and those opened by gangs
    credits: dict[str, np.ndarray]  # in time order; ``ref`` is an event position or -1
    reports: list[Report]
    gangs: list[Gang]
    members: list[Member]
    texts: TextTable
    device_emulator: np.ndarray
    device_rooted: np.ndarray
    merchant_category: np.ndarray
    dropped_debits: int
    settle_rounds: int

    @property
    def world_id(self) -> str:
        return self.config.world_id


def simulate(config: WorldConfig, progress: Progress | None = None) -> World:
    def tick(stage: str, done: int, total: int) -> None:
        if progress:
            progress(stage, done, total)

    streams = np.random.SeedSequence(config.seed).spawn(2 + len(TYPOLOGIES))
    tick("population", 0, 1)
    pop = build_population(config, np.random.default_rng(streams[0]))
    tick("population", 1, 1)
    ctx = WorldContext(config, pop, TextTable())
    legit_maker = background.Background(ctx, np.random.default_rng(streams[1]))
    legit = legit_maker.generate(lambda day: tick("legitimate traffic", day, config.days))
    for number, typology in enumerate(TYPOLOGIES):
        tick("gangs", number, len(TYPOLOGIES))
        MODULES[typology](ctx, np.random.default_rng(streams[2 + number]))
    tick("gangs", len(MODULES), len(MODULES))
    fraud = ctx.fraud.table()

    tick("balances", 0, 1)
    tables = [t for t in legit if len(t)] + [fraud]
    n_legit = sum(len(t) for t in legit)
    order = np.argsort(np.concatenate([t["ts"] for t in tables]), kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    events = EventTable({})
    for name in COLUMNS:  # one column at a time: peak memory stays near one copy of the events
        events.cols[name] = np.concatenate([t.cols.pop(name) for t in tables])[order]
    del order, legit, fraud, tables

    legit_credits = legit_maker.credits()
    fraud_credits = ctx.credits.arrays()
    fraud_credits["ref"] = np.where(fraud_credits["ref"] >= 0, fraud_credits["ref"] + n_legit, -1)
    credits = {k: np.concatenate([legit_credits[k], fraud_credits[k]]) for k in legit_credits}
    credits["ref"] = np.where(credits["ref"] >= 0, position[np.maximum(credits["ref"], 0)], -1)
    credit_order = np.argsort(credits["ts"], kind="stable")
    credits = {k: v[credit_order] for k, v in credits.items()}

    new = ctx.new_accounts_arrays()
    accounts = {
        "opened_ms": np.concatenate([pop.opened_ms, new["opened_ms"]]),
        "region": np.concatenate([pop.region, new["region"]]),
        "phone": np.concatenate([pop.phone, new["phone"]]),
        "home_ip": np.concatenate([pop.home_ip, new["home_ip"]]),
        "device": np.concatenate([pop.device, new["device"]]),
        "device2": np.concatenate([pop.device2, np.full(len(new["device"]), -1, dtype=np.int64)]),
        "card": np.concatenate([pop.card, new["card"]]),
        "card2": np.concatenate([pop.card2, np.full(len(new["card"]), -1, dtype=np.int64)]),
        "opening_fen": np.concatenate([pop.opening_fen, np.zeros(len(new["card"]), dtype=np.int64)]),
    }
    settlement = settle(events, credits, accounts["opening_fen"], config.start_ms)
    accounts["closing_fen"] = settlement.closing_fen
    keep = settlement.keep
    kept_position = np.cumsum(keep) - 1
    for name in COLUMNS:
        events.cols[name] = events.cols[name][keep]
    credits["ref"] = np.where(credits["ref"] >= 0, kept_position[np.maximum(credits["ref"], 0)], -1)
    reports = [
        Report(
            r.gang,
            r.typology,
            r.account,
            r.reported_ms,
            r.script,
            kept_position[position[np.asarray(r.rows, dtype=np.int64) + n_legit]],
        )
        for r in ctx.reports
    ]
    tick("balances", 1, 1)
    emulator, rooted = ctx.device_flags()
    return World(
        config=config,
        population=pop,
        events=events,
        accounts=accounts,
        credits=credits,
        reports=reports,
        gangs=ctx.gangs,
        members=ctx.members,
        texts=ctx.texts,
        device_emulator=emulator,
        device_rooted=rooted,
        merchant_category=np.concatenate([pop.merchants.category, np.asarray(ctx.extra_merchants, dtype=np.int8)]),
        dropped_debits=int((~keep).sum()),
        settle_rounds=settlement.rounds,
    )
