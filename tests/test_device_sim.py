"""Trusted devices in a simulated world: customers' phones attest and sign, device farms get low trust."""

from __future__ import annotations

from pathlib import Path
from statistics import mean

import polars as pl
import pytest

from riskguard.app import RiskGuard
from riskguard.device.simworld import DevicePlan, signer_for
from riskguard.sim.config import WorldConfig
from riskguard.sim.world import simulate
from riskguard.sim.writer import iter_events, write_world

from conftest import make_settings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(simulate(WorldConfig(accounts=300, days=2, seed=11)), out)
    return out


def test_the_device_plan_follows_the_world_files(world: Path) -> None:
    plan = DevicePlan(world)
    truth = pl.read_parquet(world / "truth.parquet")
    farm_devices = truth.filter(pl.col("role") == "farm_device")["entity_value"].to_list()
    assert farm_devices and all(plan.kind(d) == "farm" for d in farm_devices)
    other_gang = truth.filter((pl.col("entity_kind") == "device") & (pl.col("role") != "farm_device"))
    assert all(plan.kind(d) == "none" for d in other_gang["entity_value"].to_list())
    customers = pl.read_parquet(world / "accounts.parquet")["device_id"].drop_nulls().to_list()
    kinds = [plan.kind(d) for d in customers if d not in plan.gang]
    assert kinds.count("android") > 0.7 * len(kinds) and kinds.count("software") < 0.15 * len(kinds)
    assert DevicePlan(world).enrolled == plan.enrolled  # a function of the files alone


def test_device_farm_accounts_get_low_trust(world: Path, tmp_path: Path) -> None:
    truth = pl.read_parquet(world / "truth.parquet")
    farm_accounts = set(truth.filter(pl.col("role") == "farm_account")["entity_value"].to_list())
    gang_accounts = set(truth.filter(pl.col("entity_kind") == "account")["entity_value"].to_list())
    guard = RiskGuard(make_settings(f"sqlite:///{tmp_path}/rg.db", sqlite_synchronous="NORMAL"), background=False)
    try:
        sign = signer_for(world, guard)
        trust: dict[str, list[int]] = {}
        farm_flags: dict[str, list[bool]] = {}
        failures = 0
        fraud = set(pl.read_parquet(world / "labels.parquet")["event_id"].drop_nulls().to_list())
        for body in iter_events(world):
            result = guard.decide(sign(body), with_explain=True)
            device = result["explain"]["variables"]
            if body["event_id"] in fraud and body["account_id"] not in farm_accounts:
                continue  # a gang acting on someone else's account (takeover): not that account's device
            trust.setdefault(body["account_id"], []).append(device["device.trust"])
            farm_flags.setdefault(body["account_id"], []).append(device["device.farm"])
            failures += device["device.signed"] and not device["device.signature_ok"]
    finally:
        guard.close()
    farm = [mean(trust[a]) for a in farm_accounts if a in trust]
    customers = [mean(v) for a, v in trust.items() if a not in gang_accounts]
    assert failures == 0 and sign.signed > 100 and sign.registered["farm"] >= len(farm)
    assert farm and max(farm) <= 20, sorted(farm)[-5:]
    assert mean(customers) >= 80 and sorted(customers)[len(customers) // 10] >= 60
    assert mean(any(farm_flags[a]) for a in farm_accounts if a in farm_flags) >= 0.9
    assert mean(any(v) for a, v in farm_flags.items() if a not in gang_accounts) < 0.02
