"""A simulated world with credential stuffing and account takeover (riskguard.sim), streamed through
riskguard in process with the starter strategy: stuffing bursts are recognised on their IPs and devices,
every drain of a taken-over account is stopped (challenged or harder) before it completes, legitimate
logins are mostly allowed, and a leak import makes the affected accounts' risky transfers warn."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from riskguard.accountsec.leaks import read_values
from riskguard.app import RiskGuard
from riskguard.events.schema import from_stored
from riskguard.sim import takeover
from riskguard.sim.config import TYPOLOGIES, WorldConfig
from riskguard.sim.stream import Decided, InProcessTarget
from riskguard.sim.world import simulate
from riskguard.sim.writer import envelope, read_events, write_world

from conftest import make_settings

STUFFING_RULES = {"stuffing_ip_accounts", "stuffing_device", "credential_stuffing_ip"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("acctsec-world")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(takeover, "SUCCESS_RATE", 0.15)  # more takeovers per burst than the default 2 %
        config = WorldConfig(
            accounts=1000, days=2, seed=21, intensity={**dict.fromkeys(TYPOLOGIES, 0.0), "account_takeover": 1.0}
        )
        write_world(simulate(config), out)
    return out


def stream(guard: RiskGuard, rows: pl.DataFrame) -> dict[str, Decided]:
    decided: dict[str, Decided] = {}
    InProcessTarget(guard).stream(
        (envelope(row) for row in rows.iter_rows(named=True)), lambda d: decided.__setitem__(d.event_id, d)
    )
    return decided


def test_stuffing_takeover_and_leak_in_a_simulated_world(world: Path, tmp_path: Path) -> None:
    events = read_events(world)
    labels = pl.read_parquet(world / "labels.parquet").filter(pl.col("label_kind") == "event")
    roles: dict[str, str] = dict(zip(labels["event_id"], labels["role"], strict=True))
    half = events.height // 2
    first, second = events.slice(0, half), events.slice(half)
    settings = make_settings(f"sqlite:///{tmp_path}/world.db")
    with RiskGuard(settings, background=False) as guard:
        decided = stream(guard, first)

        # a leak of the phones and card numbers of up to 40 customers seen so far (none of them fraud)
        # who go on to make transfers of 1,000 or more, written in another notation than the events'
        fraud_accounts = set(events.filter(pl.col("event_id").is_in(list(roles)))["account_id"])
        movers = set(
            second.filter((pl.col("type") == "transfer") & (pl.col("amount").cast(pl.Float64) >= 1000))["account_id"]
        )
        known = (
            first.filter(
                (pl.col("phone").is_not_null() | pl.col("card_id").is_not_null())
                & pl.col("account_id").is_in(list(movers - fraud_accounts))
            )
            .unique("account_id", keep="first", maintain_order=True)
            .head(40)
        )
        path = tmp_path / "leak.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["mobile", "card_number", "name"])
            for phone, card in zip(known["phone"], known["card_id"], strict=True):
                local = (phone or "").removeprefix("+86")  # 159-4600-4011 for +8615946004011
                writer.writerow([f"{local[:3]}-{local[3:7]}-{local[7:]}" if local else "", card or "", "x"])
        result = guard.accountsec.leaks.import_leak(
            read_values(path),
            name="sim-leak",
            source="simulated",
            discovered_at=_when(first["occurred_at"][-1]),
            watch_days=90,
            actor="test",
            events=_logged(guard),
        )
        leaked = set(known["account_id"])
        assert result.accounts >= len(leaked) >= 3  # identifiers are on few simulated events
        guard.refresh()
        decided |= stream(guard, second)
        leaked_transfers = [
            row["event_id"]
            for row in second.iter_rows(named=True)
            if row["account_id"] in leaked and row["type"] == "transfer" and float(row["amount"]) >= 1000
        ]
        warned = [guard.get_decision(event_id) for event_id in leaked_transfers]

    assert len(decided) == events.height and not [d for d in decided.values() if d.decision == "error"]
    by_role: dict[str, list[Decided]] = {}
    for event_id, d in decided.items():
        by_role.setdefault(roles.get(event_id, "legit"), []).append(d)

    # stuffing bursts: recognised on almost every attempt, and on every burst IP
    stuffing = by_role["stuffing_login"]
    recognised = [d for d in stuffing if STUFFING_RULES & set(d.rules)]
    assert len(recognised) >= 0.8 * len(stuffing), Counter(r for d in stuffing for r in d.rules)
    ip_of = dict(zip(events["event_id"], events["ip"], strict=True))
    burst_ips = {ip_of[d.event_id] for d in stuffing}
    flagged_ips = {ip_of[d.event_id] for d in recognised}
    assert burst_ips == flagged_ips

    # takeovers: every drain (transfer or withdrawal of a taken-over account) is stopped before it completes
    drains = by_role["drain"]
    assert len(drains) >= 5
    assert all(d.decision != "allow" for d in drains), [(d.event_id, d.rules) for d in drains]
    in_sequence = [d for d in drains if "takeover_sequence_drain" in d.rules]
    assert len(in_sequence) >= 0.8 * len(drains)

    # legitimate customers: logins mostly allowed
    type_of = dict(zip(events["event_id"], events["type"], strict=True))
    legit_logins = [d for d in by_role["legit"] if type_of[d.event_id] == "login"]
    friction = sum(d.decision != "allow" for d in legit_logins) / len(legit_logins)
    assert len(legit_logins) > 500 and friction < 0.02, friction
    mine = {
        "stuffing_ip_accounts",
        "stuffing_device",
        "dormant_account_new_device",
        "takeover_sequence_drain",
        "takeover_sequence_phone_changed",
        "takeover_credential_change_new_device",
    }
    assert sum(bool(mine & set(d.rules)) for d in by_role["legit"]) <= 0.005 * len(by_role["legit"])

    # the leak: every risky transfer of an affected account warns
    assert warned, "the leaked accounts made no transfer of 1,000 or more in the second half"
    for body in warned:
        assert body["decision"] != "allow" and "leaked_account_money_out" in [r["rule"] for r in body["reasons"]]
        assert body["warning"] is not None


def _logged(guard: RiskGuard) -> Iterator[Any]:
    from datetime import UTC, datetime

    return (from_stored(p) for _t, p in guard.events.stream_since(datetime(1970, 1, 1, tzinfo=UTC)))


def _when(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)
