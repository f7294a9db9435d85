"""The columnar event table the simulator builds: one numpy array per field, integers only.

Strings (identifiers, timestamps, amounts, the attributes JSON) are made only when a part of the world is
written (``writer.py``). Every column uses ``-1`` for "absent". Amounts are integer fen (1/100 yuan).
Ground truth travels in the same rows (``typology``, ``gang``, ``role``, ``loss``) and is split off into
the labels file on writing, so the events file is exactly the API envelope.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from riskguard.events.schema import EVENT_TYPES

T = {name: code for code, name in enumerate(EVENT_TYPES)}

#: event types that move money (the loss rate's denominator); loan applications and complaints carry an
#: amount that is asked for or disputed, not moved
MONEY_MOVING = ("payment", "transfer", "withdrawal")

CHANNELS: tuple[str, ...] = ("app", "web", "mini_program", "hotline")
LOCALES: tuple[str, ...] = ("zh-CN", "en")

#: what a fraud event was for; "legit" is every event no gang made
ROLES: tuple[str, ...] = (
    "legit",
    "victim_payment",  # telecom fraud: the victim pays the "safe account"
    "mule_signup",  # a gang opens an account to use as a mule
    "mule_device_bind",  # a gang's phone is bound to a rented or recruited account
    "layer1_forward",  # first-layer mule forwards within minutes
    "layer2_forward",
    "pass_through",  # a recruited dormant account passes money on
    "cash_out_withdrawal",
    "cash_out_purchase",  # gift cards, game currency, crypto OTC
    "stuffing_login",  # account takeover: a failed credential-stuffing attempt
    "takeover_login",
    "takeover_device_bind",
    "takeover_password_change",
    "takeover_profile_change",
    "drain",  # money taken from a taken-over account
    "farm_signup",
    "farm_login",
    "promo_collect",  # a farm account passes its new-user bonus to the collector
    "promo_purchase",  # or spends it at the gang's shell shop
    "packaged_application",  # a loan application packaged by an illegal intermediary
    "agent_fee",  # the customer pays the intermediary or the rights-defence agent
    "agent_complaint",  # a templated complaint filed by a proxy rights-defence agent
    "tester_signup",  # card testing: the gang opens the accounts it tests cards from
    "card_test",  # card testing: a tiny payment with a stolen card
    "card_cash_out",  # a bigger purchase with a card that passed the test
    "recruit_login",  # a dormant account wakes up
    "recruit_device_bind",
)
R = {name: code for code, name in enumerate(ROLES)}

#: enumerated attribute values
PROFILE_FIELDS = ("nickname", "email", "address", "phone")
PASSWORD_METHODS = ("old_password", "sms", "face")
LOAN_PURPOSES = ("consumption", "home_renovation", "education", "medical", "business", "car", "wedding", "travel")
DEMANDS = (
    "billing_error",
    "service",
    "duplicate_charge",
    "interest_rate",
    "debt_relief",
    "full_refund",
    "credit_repair",
)
PROMO_CODES = ("NEWUSER", "WELCOME88")

#: column → dtype; every column's "absent" is -1 (entity numbers fit 32 bits: at most 5M accounts)
COLUMNS: dict[str, type] = {
    "ts": np.int64,  # milliseconds since the epoch
    "type": np.int8,
    "account": np.int32,
    "amount": np.int64,  # fen
    "counterparty": np.int32,
    "merchant": np.int32,
    "device": np.int32,
    "ip": np.int64,
    "phone": np.int64,
    "card": np.int32,
    "channel": np.int8,
    "locale": np.int8,
    # attributes (emulator, rooted, phone_carrier_type, account_age_days and merchant_category are derived
    # on writing, from the device, the phone number, the account and the merchant)
    "success": np.int8,
    "on_call": np.int8,
    "screen_sharing": np.int8,
    "payee_name_matches": np.int8,
    "remark": np.int32,  # index into the world's text table
    "field": np.int8,
    "method": np.int8,
    "contact_phone": np.int64,
    "declared_income": np.int32,  # yuan a month
    "employer": np.int32,  # text table
    "address": np.int32,  # text table
    "purpose": np.int8,
    "term_months": np.int16,
    "text": np.int32,  # text table
    "demand": np.int8,
    "refund_account": np.int32,
    "promo_code": np.int8,
    # ground truth
    "typology": np.int8,  # index into config.TYPOLOGIES; -1 legitimate
    "gang": np.int32,  # index into the world's gangs; -1 legitimate
    "role": np.int8,  # ROLES
    "loss": np.int8,  # 1: the event takes money from a victim or the platform (counted once per chain)
    "known_at": np.int64,  # when the truth comes out (a victim's report, a chargeback, an investigation)
}


@dataclass
class EventTable:
    """Equal-length numpy arrays, one per column of ``COLUMNS``."""

    cols: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cols["ts"]) if self.cols else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    @classmethod
    def make(cls, n: int, **given: Any) -> EventTable:
        """A table of ``n`` rows: given columns (arrays or scalars), every other column absent (-1)."""
        unknown = set(given) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown event columns: {sorted(unknown)}")
        cols: dict[str, np.ndarray] = {}
        for name, dtype in COLUMNS.items():
            value = given.get(name, -1)
            array = np.empty(n, dtype=dtype)
            array[:] = value
            cols[name] = array
        if "role" not in given:
            cols["role"][:] = 0
        if "loss" not in given:
            cols["loss"][:] = 0
        return cls(cols)

    @classmethod
    def concat(cls, tables: Iterable[EventTable], *, consume: bool = False) -> EventTable:
        """One table of all rows; with ``consume``, each input column is released once copied (the peak
        memory is then one copy of the rows plus one column, not two copies)."""
        parts = [t for t in tables if len(t)]
        if not parts:
            return cls.make(0)
        cols = {}
        for name in COLUMNS:
            cols[name] = np.concatenate([t.cols.pop(name) if consume else t.cols[name] for t in parts])
        return cls(cols)

    def take(self, index: np.ndarray) -> EventTable:
        return EventTable({name: array[index] for name, array in self.cols.items()})


class RowBuilder:
    """Collects events one at a time (the typologies: few gangs, modest volumes) and makes a table."""

    def __init__(self) -> None:
        self._rows: dict[str, list[int]] = {name: [] for name in COLUMNS}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, **values: int) -> None:
        for name, column in self._rows.items():
            column.append(values.get(name, -1))
        self._n += 1

    def get(self, name: str, row: int) -> int:
        return self._rows[name][row]

    def set(self, name: str, row: int, value: int) -> None:
        self._rows[name][row] = value

    def table(self) -> EventTable:
        table = EventTable({name: np.asarray(values, dtype=COLUMNS[name]) for name, values in self._rows.items()})
        if self._n:
            table.cols["role"][table.cols["role"] < 0] = 0
            table.cols["loss"][table.cols["loss"] < 0] = 0
        return table


class TextTable:
    """Interned strings (remarks, complaint texts, employer names, addresses); events hold indices."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._index: dict[str, int] = {}

    def code(self, text: str) -> int:
        found = self._index.get(text)
        if found is None:
            found = self._index[text] = len(self.values)
            self.values.append(text)
        return found

    def codes(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self.code(t) for t in texts], dtype=np.int32)
