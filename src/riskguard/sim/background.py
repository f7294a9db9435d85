"""Legitimate traffic: what the population does every day, generated a day at a time in bulk arrays.

Per account and day, counts of each event type are Poisson draws scaled by the account's activity; times
follow the daily rhythm. People log in from their own phones (a few mistype their password first), pay
shops (bills, groceries, games), send money to friends, family and small sellers, withdraw to their bank
cards, now and then bind a tablet, change a password or profile, apply for a loan, or complain. Salaries
arrive on the employer's payday and approved loans are disbursed a day or three after the application
(both as credits: money from outside the event stream).

Whether each payment, transfer or withdrawal can be afforded is settled later for the whole world at once
(``ledger.py``): one the wallet cannot cover is dropped, as the platform would have declined it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from riskguard.sim.context import CK, WorldContext
from riskguard.sim.population import CATEGORIES, FRIENDS
from riskguard.sim.rhythm import DAY_MS, HOUR_MS, times_in_day
from riskguard.sim.table import (
    DEMANDS,
    LOAN_PURPOSES,
    PASSWORD_METHODS,
    PROFILE_FIELDS,
    EventTable,
    T,
)
from riskguard.sim.texts import LEGIT_REMARKS, address, legit_complaint

#: expected events per account and day, for an account of average activity
RATES: dict[str, float] = {
    "login": 0.42,
    "payment": 0.40,
    "transfer": 0.12,
    "withdrawal": 0.02,
    "device_bind": 1 / 400,
    "password_change": 1 / 500,
    "profile_change": 1 / 600,
    "loan_application": 1 / 700,
    "complaint": 1 / 4000,
}
FRIEND_WEIGHTS = np.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05])[:FRIENDS]
LOAN_APPROVAL = 0.7
#: what ordinary complaints ask for (the first entries of ``table.DEMANDS``; agents ask for the rest)
ORDINARY_DEMANDS = DEMANDS[:4]


class Background:
    """Generates one day of legitimate events at a time; ``credits`` collects salaries and disbursals."""

    def __init__(self, ctx: WorldContext, rng: np.random.Generator) -> None:
        self.ctx = ctx
        self.rng = rng
        pop = ctx.pop
        self.remark_codes = ctx.texts.codes([r for r, _ in LEGIT_REMARKS])
        weights = np.array([w for _, w in LEGIT_REMARKS])
        self.remark_cdf = np.cumsum(weights) / weights.sum()
        self.employer_codes = ctx.texts.codes(pop.employer_names)
        self.freelance = ctx.texts.code("自由职业")
        shares = np.array([c[1] for c in CATEGORIES])
        self.category_cdf = np.cumsum(shares) / shares.sum()
        self.category_median = np.array([c[2] for c in CATEGORIES])
        self.category_sigma = np.array([c[3] for c in CATEGORIES])
        self.type_names = list(RATES)
        rates = np.array([RATES[t] for t in self.type_names])
        self.rate_total = rates.sum()
        self.type_cdf = np.cumsum(rates) / self.rate_total
        self.credit_ts: list[np.ndarray] = []
        self.credit_account: list[np.ndarray] = []
        self.credit_amount: list[np.ndarray] = []
        self.credit_kind: list[np.ndarray] = []
        self.credit_ref: list[np.ndarray] = []
        self.rows_so_far = 0

    def generate(self, progress: Callable[[int], None] | None = None) -> list[EventTable]:
        """One table per day, in order (the caller concatenates them, column by column)."""
        days = []
        for day in range(self.ctx.config.days):
            table = self.day(day)
            self.rows_so_far += len(table)
            days.append(table)
            if progress:
                progress(day + 1)
        return days

    def credits(self) -> dict[str, np.ndarray]:
        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        n = sum(len(p) for p in self.credit_ts)
        return {
            "ts": cat(self.credit_ts, np.int64),
            "account": cat(self.credit_account, np.int64),
            "amount": cat(self.credit_amount, np.int64),
            "kind": cat(self.credit_kind, np.int8),
            "typology": np.full(n, -1, dtype=np.int8),
            "gang": np.full(n, -1, dtype=np.int32),
            "ref": cat(self.credit_ref, np.int64),
        }

    # ------------------------------------------------------------------ one day
    def day(self, day: int) -> EventTable:
        ctx, rng, pop = self.ctx, self.rng, self.ctx.pop
        day_start = ctx.start_ms + day * DAY_MS
        day_end = day_start + DAY_MS
        weekday = (ctx.config.start.toordinal() + day) % 7  # 5, 6: Saturday, Sunday
        alive = np.flatnonzero((~pop.dormant) & (pop.opened_ms < day_end))
        counts = rng.poisson(self.rate_total * pop.activity[alive] * (1.1 if weekday >= 5 else 1.0))
        account = np.repeat(alive, counts)
        ts = times_in_day(rng, day_start, len(account))
        late = ts > pop.opened_ms[account] + 60_000  # nobody acts before their account exists
        account, ts = account[late], ts[late]
        kind = np.searchsorted(self.type_cdf, rng.random(len(account)), side="right")
        tables = [self.signups(day_start, day_end)]
        makers = {
            "login": self.logins,
            "payment": self.payments,
            "transfer": self.transfers,
            "withdrawal": self.withdrawals,
            "device_bind": self.device_binds,
            "password_change": self.password_changes,
            "profile_change": self.profile_changes,
            "loan_application": self.loan_applications,
            "complaint": self.complaints,
        }
        offset = self.rows_so_far + len(tables[0])
        for code, name in enumerate(self.type_names):
            pick = kind == code
            table = makers[name](account[pick], ts[pick], offset)
            offset += len(table)
            tables.append(table)
        tables.append(self.seller_receipts(day_start))
        self.salaries(day, day_start)
        return EventTable.concat(tables, consume=True)

    # ------------------------------------------------------------------ helpers
    def _device(self, account: np.ndarray) -> np.ndarray:
        pop = self.ctx.pop
        second = pop.device2[account]
        use_second = (second >= 0) & (self.rng.random(len(account)) < 0.2)
        return np.where(use_second, second, pop.device[account])

    def _ip(self, account: np.ndarray) -> np.ndarray:
        pop = self.ctx.pop
        mobile = self.rng.random(len(account)) < 0.45
        return np.where(mobile, pop.mobile_ips(self.rng, account), pop.home_ip[account])

    def _locale(self, account: np.ndarray) -> np.ndarray:
        return self.ctx.pop.english[account].astype(np.int8)

    def _common(self, account: np.ndarray, ts: np.ndarray, type_name: str, **extra: object) -> EventTable:
        return EventTable.make(
            len(account),
            ts=ts,
            type=T[type_name],
            account=account,
            device=self._device(account),
            ip=self._ip(account),
            locale=self._locale(account),
            **extra,
        )

    def _channel(self, n: int, weights: tuple[float, float, float, float]) -> np.ndarray:
        return self.rng.choice(4, n, p=np.asarray(weights) / sum(weights)).astype(np.int8)

    # ------------------------------------------------------------------ event types
    def signups(self, day_start: int, day_end: int) -> EventTable:
        pop = self.ctx.pop
        account = np.flatnonzero((pop.opened_ms >= day_start) & (pop.opened_ms < day_end))
        return EventTable.make(
            len(account),
            ts=pop.opened_ms[account],
            type=T["signup"],
            account=account,
            device=pop.device[account],
            ip=pop.home_ip[account],
            phone=pop.phone[account],
            channel=self._channel(len(account), (0.9, 0.1, 0.0, 0.0)),
            locale=self._locale(account),
        )

    def logins(self, account: np.ndarray, ts: np.ndarray, _offset: int) -> EventTable:
        rng = self.rng
        failed = rng.random(len(account)) < 0.03
        table = self._common(
            account,
            ts,
            "login",
            success=np.where(failed, 0, 1),
            channel=self._channel(len(account), (0.85, 0.15, 0.0, 0.0)),
        )
        retry = table.take(np.flatnonzero(failed))  # a mistyped password, then the right one
        retry.cols["ts"] = retry.cols["ts"] + rng.integers(5_000, 60_000, len(retry))
        retry.cols["success"][:] = 1
        return EventTable.concat([table, retry])

    def payments(self, account: np.ndarray, ts: np.ndarray, _offset: int) -> EventTable:
        rng, pop = self.rng, self.ctx.pop
        n = len(account)
        category = np.searchsorted(self.category_cdf, rng.random(n), side="right").astype(np.int8)
        category = np.minimum(category, len(CATEGORIES) - 1)
        merchant = pop.merchants.sample(rng, category)
        yuan = rng.lognormal(np.log(self.category_median[category]), self.category_sigma[category])
        amount = np.maximum(1, np.round(yuan * 100)).astype(np.int64)
        by_card = rng.random(n) < 0.55
        second = pop.card2[account]
        card = np.where((second >= 0) & (rng.random(n) < 0.4), second, pop.card[account])
        new_user = (ts - pop.opened_ms[account]) < 7 * DAY_MS
        promo = np.where(new_user & (rng.random(n) < 0.3), 0, -1)
        return self._common(
            account,
            ts,
            "payment",
            amount=amount,
            merchant=merchant,
            card=np.where(by_card, card, -1),
            channel=self._channel(n, (0.7, 0.05, 0.25, 0.0)),
            screen_sharing=(rng.random(n) < 0.001).astype(np.int8),
            promo_code=promo,
        )

    def _payees(self, account: np.ndarray) -> np.ndarray:
        rng, pop = self.rng, self.ctx.pop
        n = len(account)
        slot = rng.choice(FRIENDS, n, p=FRIEND_WEIGHTS / FRIEND_WEIGHTS.sum())
        payee = pop.friends[account, slot]
        u = rng.random(n)
        if len(pop.sellers):
            to_seller = u < 0.13
            payee[to_seller] = pop.sellers[rng.integers(0, len(pop.sellers), int(to_seller.sum()))]
        stranger = u > 0.85  # second-hand goods, a one-off payment
        payee[stranger] = rng.integers(0, pop.n, int(stranger.sum()))
        clash = payee == account
        payee[clash] = pop.friends[account[clash], 1]
        return payee

    def transfers(self, account: np.ndarray, ts: np.ndarray, _offset: int) -> EventTable:
        rng, pop = self.rng, self.ctx.pop
        payee = self._payees(account)
        keep = payee != account
        account, ts, payee = account[keep], ts[keep], payee[keep]
        n = len(account)
        mix = rng.random(n)
        yuan = rng.lognormal(np.log(150), 1.2, n)
        red = mix < 0.25
        yuan[red] = rng.choice([6.66, 8.88, 20, 52, 66, 88, 100, 188, 200, 520], int(red.sum()))
        rent = (mix >= 0.875) & (mix < 0.985)
        yuan[rent] = rng.lognormal(np.log(3000), 0.6, int(rent.sum()))
        large = mix >= 0.985  # family support, a car, a deposit
        yuan[large] = rng.lognormal(np.log(20000), 0.7, int(large.sum()))
        whole = (~red) & (rng.random(n) < 0.7)
        yuan[whole] = np.maximum(1, np.round(yuan[whole]))
        amount = np.maximum(1, np.round(yuan * 100)).astype(np.int64)
        remark = np.full(n, -1, dtype=np.int32)
        has_remark = rng.random(n) < 0.45
        picks = np.searchsorted(self.remark_cdf, rng.random(int(has_remark.sum())), side="right")
        remark[has_remark] = self.remark_codes[np.minimum(picks, len(self.remark_codes) - 1)]
        by_card = rng.random(n) < 0.3
        return self._common(
            account,
            ts,
            "transfer",
            amount=amount,
            counterparty=payee,
            card=np.where(by_card, pop.card[account], -1),
            channel=self._channel(n, (0.95, 0.03, 0.02, 0.0)),
            remark=remark,
            on_call=(rng.random(n) < 0.03).astype(np.int8),
            screen_sharing=(rng.random(n) < 0.002).astype(np.int8),
            payee_name_matches=(rng.random(n) >= 0.015).astype(np.int8),
        )

    def seller_receipts(self, day_start: int) -> EventTable:
        """Customers paying small sellers (个体户) by personal transfer: legitimate fan-in."""
        rng, pop = self.rng, self.ctx.pop
        sellers = pop.sellers[pop.opened_ms[pop.sellers] < day_start]
        if not len(sellers):
            return EventTable.make(0)
        counts = rng.poisson(5.0, len(sellers))
        payee = np.repeat(sellers, counts)
        payer = rng.integers(0, pop.n, len(payee))
        ts = times_in_day(rng, day_start, len(payee))
        ok = (payer != payee) & (~pop.dormant[payer]) & (ts > pop.opened_ms[payer] + 60_000)
        payer, payee, ts = payer[ok], payee[ok], ts[ok]
        n = len(payer)
        amount = np.maximum(100, np.round(rng.lognormal(np.log(60), 0.9, n)) * 100).astype(np.int64)
        remark = np.where(rng.random(n) < 0.3, self.ctx.texts.code("货款"), -1)
        return self._common(
            payer,
            ts,
            "transfer",
            amount=amount,
            counterparty=payee,
            channel=0,  # app
            remark=remark,
            on_call=0,
            screen_sharing=0,
            payee_name_matches=(rng.random(n) >= 0.01).astype(np.int8),
        )

    def withdrawals(self, account: np.ndarray, ts: np.ndarray, _offset: int) -> EventTable:
        rng, pop = self.rng, self.ctx.pop
        n = len(account)
        typical = np.maximum(800, pop.income_fen[account] // 100 // 4)  # a quarter of a month's pay
        amount = (np.maximum(1, np.round(rng.lognormal(np.log(typical), 0.6), -2)) * 100).astype(np.int64)
        return self._common(
            account,
            ts,
            "withdrawal",
            amount=amount,
            card=pop.card[account],
            channel=self._channel(n, (0.95, 0.05, 0.0, 0.0)),
        )

    def device_binds(self, account: np.ndarray, ts: np.ndarray, _offset: int) -> EventTable:
        pop = self.ctx.pop
        table = self._common(account, ts, "device_bind", phone=pop.phone[account], channel=0)
        second = pop.device2[account]
        table.cols["device"] = np.where(second >= 0, second, pop.device[account])
        return table

    def password_changes(self, account: np.ndarray, ts: np.ndarray, _offset: int) -> EventTable:
        table = self._common(
            account,
            ts,
            "password_change",
            channel=0,
            method=self.rng.choice(len(PASSWORD_METHODS), len(account), p=[0.6, 0.3, 0.1]),
        )
        table.cols["device"] = self.ctx.pop.device[account]
        return table

    def profile_changes(self, account: np.ndarray, ts: np.ndarray, _offset: int) -> EventTable:
        field = self.rng.choice(len(PROFILE_FIELDS), len(account), p=[0.4, 0.2, 0.3, 0.1])
        return self._common(account, ts, "profile_change", phone=self.ctx.pop.phone[account], channel=0, field=field)

    def loan_applications(self, account: np.ndarray, ts: np.ndarray, offset: int) -> EventTable:
        rng, pop, texts = self.rng, self.ctx.pop, self.ctx.texts
        n = len(account)
        amount = (np.clip(np.round(rng.lognormal(np.log(20000), 0.8, n), -3), 1000, 300_000) * 100).astype(np.int64)
        income = pop.income_fen[account] // 100
        declared = np.where(
            income > 0,
            np.round(income * rng.uniform(0.9, 1.15, n), -2),
            np.round(rng.uniform(2000, 4500, n), -2),
        ).astype(np.int64)
        employer = np.where(
            pop.employer[account] >= 0, self.employer_codes[np.maximum(pop.employer[account], 0)], self.freelance
        )
        addresses = texts.codes([address(rng, int(r)) for r in pop.region[account]])
        relative = rng.random(n) < 0.12
        contact = np.where(relative, pop.phone[pop.friends[account, 0]], pop.phone[account])
        table = self._common(
            account,
            ts,
            "loan_application",
            amount=amount,
            phone=pop.phone[account],
            channel=self._channel(n, (0.85, 0.15, 0.0, 0.0)),
            contact_phone=contact,
            declared_income=declared,
            employer=employer,
            address=addresses,
            purpose=rng.integers(0, len(LOAN_PURPOSES), n),
            term_months=rng.choice([3, 6, 12, 24, 36], n),
        )
        table.cols["device"] = pop.device[account]
        approved = np.flatnonzero(rng.random(n) < LOAN_APPROVAL)
        paid_at = ts[approved] + rng.integers(1 * DAY_MS, 3 * DAY_MS, len(approved))
        inside = paid_at < self.ctx.end_ms
        self.credit_ts.append(paid_at[inside])
        self.credit_account.append(account[approved][inside])
        self.credit_amount.append(amount[approved][inside])
        self.credit_kind.append(np.full(int(inside.sum()), CK["loan_disbursal"], dtype=np.int8))
        self.credit_ref.append(offset + approved[inside])
        return table

    def complaints(self, account: np.ndarray, ts: np.ndarray, _offset: int) -> EventTable:
        rng, pop, texts = self.rng, self.ctx.pop, self.ctx.texts
        n = len(account)
        disputed = np.round(rng.lognormal(np.log(200), 1.0, n)).astype(np.int64) + 1
        text = texts.codes([legit_complaint(rng, int(a)) for a in disputed])
        has_amount = rng.random(n) < 0.6
        other = rng.random(n) < 0.05
        return self._common(
            account,
            ts,
            "complaint",
            amount=np.where(has_amount, disputed * 100, -1),
            phone=pop.phone[account],
            channel=self._channel(n, (0.6, 0.15, 0.0, 0.25)),
            text=text,
            demand=rng.integers(0, len(ORDINARY_DEMANDS), n),
            contact_phone=np.where(other, pop.phone[pop.friends[account, 0]], pop.phone[account]),
        )

    def salaries(self, day: int, day_start: int) -> None:
        ctx, rng, pop = self.ctx, self.rng, self.ctx.pop
        from datetime import timedelta

        date = ctx.config.start + timedelta(days=day)
        paid = np.flatnonzero((pop.payday == date.day) & (pop.income_fen > 0))
        ts = day_start + 9 * HOUR_MS + rng.integers(0, 4 * HOUR_MS, len(paid))
        paid_ok = ts > pop.opened_ms[paid]
        paid, ts = paid[paid_ok], ts[paid_ok]
        amount = np.round(pop.income_fen[paid] * rng.uniform(0.95, 1.05, len(paid)), -2).astype(np.int64)
        self.credit_ts.append(ts)
        self.credit_account.append(paid)
        self.credit_amount.append(amount)
        self.credit_kind.append(np.full(len(paid), CK["salary"], dtype=np.int8))
        self.credit_ref.append(np.full(len(paid), -1, dtype=np.int64))
