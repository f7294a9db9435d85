"""Typology 4 — illegal loan intermediaries (非法贷款中介).

An agent "packages" loan applications for clients who would not qualify: on an afternoon in the office it
files several applications for different clients, mostly from the agent's own phone and office network,
with the agent's number as the contact phone, the office address, a templated employer and purpose, a
round monthly income two to four times the client's real one, and a round amount. Three in four are
approved (the platform's own decision, outside the event stream) and disbursed a day or three later; the
client then pays the agent a fee of 10 to 25 % of the loan, often with a "服务费"-like remark.

Signals: loan applications for several accounts from one device or IP; a contact phone that is not the
applicant's and is shared by many applicants; templated employer, address and income across applicants;
declared income far above what the account receives; a transfer of a round share of a fresh loan to the
same payee as other borrowers.
"""

from __future__ import annotations

import numpy as np

from riskguard.sim.context import WorldContext
from riskguard.sim.laundering import gang_kit
from riskguard.sim.rhythm import DAY_MS, HOUR_MS, MINUTE_MS
from riskguard.sim.table import LOAN_PURPOSES, R, T
from riskguard.sim.texts import FEE_REMARKS, address, employer_names

TYPOLOGY = "loan_intermediary"
APPROVAL = 0.75


def simulate(ctx: WorldContext, rng: np.random.Generator) -> None:
    typology = ctx.typology_code(TYPOLOGY)
    pop = ctx.pop
    fee_remarks = ctx.texts.codes(list(FEE_REMARKS))
    for _ in range(ctx.gang_count(TYPOLOGY)):
        gang = ctx.new_gang(TYPOLOGY)
        devices, office_ips = gang_kit(
            ctx, rng, gang, phones=int(rng.integers(1, 3)), ips=1, emulator_p=0.0, rooted_p=0.0
        )
        hired = ctx.hire_agent(rng, gang)
        if hired is None:
            continue
        contacts, agent_account = hired
        region = int(pop.region[agent_account])
        office = ctx.texts.code(address(rng, region))
        employer = ctx.texts.code(employer_names(rng, 1)[0])
        purpose = LOAN_PURPOSES.index(str(rng.choice(["home_renovation", "business", "car"])))  # large, plausible
        working_days = [d for d in range(ctx.config.days) if rng.random() < 0.45] or [0]
        for day in working_days:
            clients = ctx.pick(rng, int(rng.integers(2, 7)), opened_before_ms=ctx.start_ms - 90 * DAY_MS)
            t = ctx.start_ms + day * DAY_MS + int(rng.integers(13, 17)) * HOUR_MS
            for client in clients:
                t += int(rng.integers(8, 40)) * MINUTE_MS
                _package(
                    ctx,
                    rng,
                    gang,
                    typology,
                    int(client),
                    t,
                    devices,
                    office_ips[0],
                    contacts,
                    agent_account,
                    office,
                    employer,
                    purpose,
                    fee_remarks,
                )


def _package(
    ctx: WorldContext,
    rng: np.random.Generator,
    gang: int,
    typology: int,
    client: int,
    t: int,
    devices: list[int],
    office_ip: int,
    contacts: list[int],
    agent_account: int,
    office: int,
    employer: int,
    purpose: int,
    fee_remarks: np.ndarray,
) -> None:
    pop = ctx.pop
    if t >= ctx.end_ms:
        return
    ctx.member(gang, "client", "account", client, t)
    income = max(3000, int(pop.income_fen[client] // 100))
    declared = int(max(income * rng.uniform(2, 4), rng.choice([15000, 18000, 20000, 25000])) // 1000 * 1000)
    amount = int(rng.choice([50_000, 80_000, 100_000, 150_000, 200_000])) * 100
    own_device = rng.random() < 0.3
    real_employer = int(pop.employer[client])
    if rng.random() < 0.8 or real_employer < 0:
        employer_code = employer  # the agent's template
    else:
        employer_code = ctx.texts.code(pop.employer_names[real_employer])
    row = len(ctx.fraud)
    known = t + int(rng.uniform(30, 90) * DAY_MS)  # found when the loans go bad or a client complains
    ctx.fraud.add(
        ts=t,
        type=T["loan_application"],
        account=client,
        amount=amount,
        device=int(pop.device[client]) if own_device else devices[int(rng.integers(len(devices)))],
        ip=int(pop.home_ip[client]) if own_device and rng.random() < 0.5 else office_ip,
        phone=int(pop.phone[client]),
        channel=0,
        locale=0,
        contact_phone=contacts[int(rng.integers(len(contacts)))] if rng.random() < 0.85 else int(pop.phone[client]),
        declared_income=declared,
        employer=employer_code,
        address=office if rng.random() < 0.6 else ctx.texts.code(address(rng, int(pop.region[client]))),
        purpose=purpose,
        term_months=int(rng.choice([12, 24, 36])),
        typology=typology,
        gang=gang,
        role=R["packaged_application"],
        known_at=known,
    )
    if rng.random() >= APPROVAL:
        return
    paid = t + int(rng.uniform(1, 3) * DAY_MS)
    if paid >= ctx.end_ms:
        return
    ctx.credits.add(paid, client, amount, "loan_disbursal", typology=typology, gang=gang, ref=row)
    fee_at = paid + int(rng.uniform(0.1, 2) * DAY_MS)
    if fee_at >= ctx.end_ms:
        return
    fee = int(amount * rng.uniform(0.10, 0.25)) // 10_000 * 10_000  # a round hundred yuan
    ctx.fraud.add(
        ts=fee_at,
        type=T["transfer"],
        account=client,
        amount=fee,
        counterparty=agent_account,
        device=int(pop.device[client]),
        ip=int(pop.home_ip[client]),
        channel=0,
        locale=int(pop.english[client]),
        remark=int(rng.choice(fee_remarks)) if rng.random() < 0.5 else -1,
        on_call=0,
        screen_sharing=0,
        payee_name_matches=1,
        typology=typology,
        gang=gang,
        role=R["agent_fee"],
        loss=1,
        known_at=known,
    )
