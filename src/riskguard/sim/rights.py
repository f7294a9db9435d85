"""Typology 5 — illegal "proxy rights-defence" agents (非法代理维权) and malicious complaints.

An agent recruits borrowers with promises of debt relief, full refunds or "credit repair", then files
complaints for them in bursts (5 to 15 within a few hours, every few days) from the agent's own phone and
network. The texts come from the agent's template (``texts.AgentTemplate``): over 90 % alike, full of the
lures the industry guides list, demanding 停息挂账 / 债务清零, 全额退款 or 征信修复, threatening to escalate
to regulators. The contact phone is the agent's, not the customer's registered one, and many complaints
ask for the refund to go to the agent's account. A third of customers are complained for again (缠诉).
When the institution gives way, the customer pays the agent a fee.

Signals: complaints for several customers from one device or IP; a contact phone that is not the
customer's and is shared across customers; near-duplicate texts with lure phrases; a refund account that
is not the customer's; repeat complaints; fees paid to the same account by several complainants.
Route, don't reject: real complainants must be served (see ``../shared/DOMAIN.md``).
"""

from __future__ import annotations

import numpy as np

from riskguard.sim.context import WorldContext
from riskguard.sim.laundering import gang_kit
from riskguard.sim.rhythm import DAY_MS, HOUR_MS, MINUTE_MS
from riskguard.sim.table import DEMANDS, R, T
from riskguard.sim.texts import AgentTemplate

TYPOLOGY = "proxy_rights_agent"
AGENT_DEMANDS = ("debt_relief", "full_refund", "credit_repair")
GIVE_WAY = 0.3


def simulate(ctx: WorldContext, rng: np.random.Generator) -> None:
    typology = ctx.typology_code(TYPOLOGY)
    for _ in range(ctx.gang_count(TYPOLOGY)):
        demand = AGENT_DEMANDS[int(rng.integers(len(AGENT_DEMANDS)))]
        gang = ctx.new_gang(TYPOLOGY, demand=demand)
        template = AgentTemplate(rng, demand)
        devices, ips = gang_kit(
            ctx, rng, gang, phones=int(rng.integers(1, 3)), ips=int(rng.integers(1, 3)), emulator_p=0.0, rooted_p=0.0
        )
        hired = ctx.hire_agent(rng, gang)
        if hired is None:
            continue
        phones, agent_account = hired
        customers: list[int] = []
        t = ctx.start_ms + int(rng.uniform(0, min(3, ctx.config.days)) * DAY_MS)
        while t < ctx.end_ms:
            batch = list(ctx.pick(rng, int(rng.integers(4, 12)), opened_before_ms=ctx.start_ms - 180 * DAY_MS))
            repeats = [c for c in customers if rng.random() < 0.3][:4]  # 缠诉: the same customers again
            customers += [int(c) for c in batch]
            day_start = ctx.start_ms + (t - ctx.start_ms) // DAY_MS * DAY_MS
            burst = day_start + int(rng.integers(9, 16)) * HOUR_MS  # office hours
            for customer in [int(c) for c in batch] + repeats:
                burst += int(rng.integers(5, 30)) * MINUTE_MS
                if burst >= ctx.end_ms:
                    break
                _complain(
                    ctx,
                    rng,
                    gang,
                    typology,
                    customer,
                    burst,
                    devices,
                    ips,
                    phones,
                    agent_account,
                    template,
                    first=customer not in repeats,
                )
            t += int(rng.uniform(3, 7) * DAY_MS)


def _complain(
    ctx: WorldContext,
    rng: np.random.Generator,
    gang: int,
    typology: int,
    customer: int,
    t: int,
    devices: list[int],
    ips: list[int],
    phones: list[int],
    agent_account: int,
    template: AgentTemplate,
    *,
    first: bool,
) -> None:
    pop = ctx.pop
    if first:
        ctx.member(gang, "customer", "account", customer, t)
    disputed = int(rng.lognormal(np.log(25000), 0.6)) // 100 * 100 + 100
    own_device = rng.random() < 0.2
    known = t + int(rng.uniform(7, 30) * DAY_MS)
    ctx.fraud.add(
        ts=t,
        type=T["complaint"],
        account=customer,
        amount=disputed * 100,
        device=int(pop.device[customer]) if own_device else devices[int(rng.integers(len(devices)))],
        ip=int(pop.home_ip[customer]) if own_device else ips[int(rng.integers(len(ips)))],
        phone=int(pop.phone[customer]),
        channel=int(rng.choice([1, 0, 3], p=[0.6, 0.25, 0.15])),  # web, app, hotline
        locale=0,
        text=ctx.texts.code(template.render(rng, disputed)),
        demand=DEMANDS.index(template.demand),
        contact_phone=phones[int(rng.integers(len(phones)))] if rng.random() < 0.85 else int(pop.phone[customer]),
        refund_account=agent_account if rng.random() < 0.35 else -1,
        typology=typology,
        gang=gang,
        role=R["agent_complaint"],
        known_at=known,
    )
    if not first or rng.random() >= GIVE_WAY:
        return
    paid = t + int(rng.uniform(2, 10) * DAY_MS)
    if paid >= ctx.end_ms:
        return
    ctx.fraud.add(
        ts=paid,
        type=T["transfer"],
        account=customer,
        amount=int(disputed * rng.uniform(0.2, 0.3)) // 100 * 10_000 + 10_000,
        counterparty=agent_account,
        device=int(pop.device[customer]),
        ip=int(pop.home_ip[customer]),
        card=int(pop.card[customer]),
        channel=0,
        locale=int(pop.english[customer]),
        on_call=0,
        screen_sharing=0,
        payee_name_matches=1,
        typology=typology,
        gang=gang,
        role=R["agent_fee"],
        loss=1,
        known_at=known,
    )
