"""The world simulator's invariants: valid events, consistent labels, conserved money, determinism."""

from __future__ import annotations

import hashlib
import itertools
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from riskguard.errors import ConfigError
from riskguard.events.schema import EVENT_TYPES
from riskguard.events.validate import parse_event_obj
from riskguard.sim.config import TYPOLOGIES, WorldConfig, parse_intensities
from riskguard.sim.world import simulate
from riskguard.sim.writer import EVENT_COLUMNS, FILES, iter_events, read_events, write_world

CONFIG = WorldConfig(accounts=800, days=4, seed=3)


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(simulate(CONFIG), out)
    return out


@pytest.fixture(scope="module")
def events(world_dir: Path) -> pl.DataFrame:
    frame = read_events(world_dir)
    return frame.with_row_index("position").with_columns(
        ts=pl.col("occurred_at").str.to_datetime("%Y-%m-%dT%H:%M:%S%.3f%:z", time_zone="UTC"),
        fen=(pl.col("amount").cast(pl.Decimal(20, 2)) * 100).cast(pl.Int64),
    )


@pytest.fixture(scope="module")
def labels(world_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(world_dir / "labels.parquet")


@pytest.fixture(scope="module")
def truth(world_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(world_dir / "truth.parquet")


@pytest.fixture(scope="module")
def labelled(events: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Events with their event label (typology, gang, role) where they have one."""
    event_labels = labels.filter(pl.col("label_kind") == "event").select("event_id", "typology", "gang_id", "role")
    return events.join(event_labels, on="event_id", how="left")


def attrs(frame: pl.DataFrame) -> list[dict]:
    return [json.loads(a) for a in frame["attributes"]]


def digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------- determinism and files
def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    small = WorldConfig(accounts=300, days=2, seed=5)
    write_world(simulate(small), tmp_path / "a")
    write_world(simulate(small), tmp_path / "b")
    first, second = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert set(first) == {"world.json", "events/part-00000.parquet", *FILES}
    assert first == second
    write_world(simulate(WorldConfig(accounts=300, days=2, seed=6)), tmp_path / "c")
    assert digest(tmp_path / "c")["events/part-00000.parquet"] != first["events/part-00000.parquet"]


def test_a_rewritten_world_leaves_no_stale_parts(tmp_path: Path) -> None:
    write_world(simulate(WorldConfig(accounts=300, days=2, seed=5, part_rows=1000)), tmp_path)
    assert len(list((tmp_path / "events").glob("part-*.parquet"))) > 1
    write_world(simulate(WorldConfig(accounts=300, days=2, seed=5)), tmp_path)
    assert [p.name for p in (tmp_path / "events").glob("part-*.parquet")] == ["part-00000.parquet"]


def test_parts_split_the_same_events(tmp_path: Path) -> None:
    write_world(simulate(WorldConfig(accounts=300, days=2, seed=5, part_rows=1000)), tmp_path / "parts")
    write_world(simulate(WorldConfig(accounts=300, days=2, seed=5)), tmp_path / "one")
    split, whole = read_events(tmp_path / "parts"), read_events(tmp_path / "one")
    # the part size is part of the configuration, so the world id (the event id prefix) differs
    assert split.drop("event_id").equals(whole.drop("event_id"))


# ---------------------------------------------------------------------- events are API events
def test_every_event_is_a_valid_api_event_in_the_past_and_in_time_order(world_dir: Path, events: pl.DataFrame) -> None:
    assert tuple(events.columns[1:16]) == EVENT_COLUMNS
    count = 0
    for body in iter_events(world_dir):
        event = parse_event_obj(body)  # the server's own validation, including the 300 s future limit
        if event.amount is not None:
            assert event.currency == "CNY"
            assert -event.amount.as_tuple().exponent == 2
            assert event.amount > 0
        count += 1
    assert count == events.height
    assert events["event_id"].n_unique() == events.height
    assert events["ts"].is_sorted()
    start = pl.datetime(2026, 1, 1, time_zone="Asia/Shanghai").dt.convert_time_zone("UTC")
    assert events.select((pl.col("ts") >= start).all()).item()
    assert set(events["type"].unique()) == set(EVENT_TYPES)


def test_attributes_use_the_names_the_starter_strategy_reads(events: pl.DataFrame) -> None:
    by_type = {t: attrs(events.filter(pl.col("type") == t)) for t in ("login", "transfer", "payment", "signup")}
    assert all("success" in a for a in by_type["login"])
    assert all({"account_age_days", "on_call", "payee_name_matches"} <= a.keys() for a in by_type["transfer"])
    assert all("merchant_category" in a for a in by_type["payment"])
    assert all({"emulator", "phone_carrier_type"} <= a.keys() for a in by_type["signup"])
    complaints = attrs(events.filter(pl.col("type") == "complaint"))
    assert complaints and all({"text", "contact_phone"} <= a.keys() for a in complaints)
    loans = attrs(events.filter(pl.col("type") == "loan_application"))
    assert loans and all({"contact_phone", "declared_income"} <= a.keys() for a in loans)


# ---------------------------------------------------------------------- labels and truth
def test_labels_name_existing_events_and_the_gangs_of_the_truth(
    events: pl.DataFrame, labels: pl.DataFrame, truth: pl.DataFrame, labelled: pl.DataFrame
) -> None:
    event_labels = labels.filter(pl.col("label_kind") == "event")
    assert event_labels["event_id"].n_unique() == event_labels.height
    assert set(event_labels["event_id"]) <= set(events["event_id"])
    gangs = dict(truth.select("gang_id", "typology").unique().iter_rows())
    assert set(labels["gang_id"]) <= set(gangs)
    for gang, typology in labels.select("gang_id", "typology").unique().iter_rows():
        assert gangs[gang] == typology
    entity_labels = labels.filter(pl.col("label_kind") == "entity")
    members = set(truth.select("gang_id", "entity_kind", "entity_value").iter_rows())
    assert set(entity_labels.select("gang_id", "entity_kind", "entity_value").iter_rows()) <= members
    assert set(labels["typology"]) == set(TYPOLOGIES)  # every typology present, each with its gang
    assert set(truth["typology"]) == set(TYPOLOGIES)
    assert (labels["label"] == "fraud").all()
    # labels are never known before the event happened
    joined = event_labels.join(events.select("event_id", "ts"), on="event_id")
    assert (joined["labelled_at"] >= joined["ts"]).all()
    # an account the gang opened and used shows up as a labelled entity
    mule_accounts = truth.filter(pl.col("role").str.contains("mule") & (pl.col("entity_kind") == "account"))
    assert mule_accounts.height > 0
    assert set(mule_accounts["entity_value"]) <= set(entity_labels["entity_value"])
    assert labelled.filter(pl.col("typology").is_not_null()).height == event_labels.height


def test_world_json_counts_match_the_files(world_dir: Path, events: pl.DataFrame, labels: pl.DataFrame) -> None:
    info = json.loads((world_dir / "world.json").read_text())
    assert info["events"] == events.height
    assert info["fraud_events"] == labels.filter(pl.col("label_kind") == "event").height
    assert info["config"] == CONFIG.canonical()
    assert info["world_id"] == CONFIG.world_id
    assert events["event_id"].str.starts_with(CONFIG.world_id + "-").all()


# ---------------------------------------------------------------------- money
def _entries(world_dir: Path, events: pl.DataFrame) -> pl.DataFrame:
    """Every wallet movement: debits (wallet-funded payments, transfers; withdrawals), credits (transfers
    received, and the credits file), ordered credits-first at the same instant."""
    wallet_debit = (pl.col("type") == "withdrawal") | (
        pl.col("type").is_in(["transfer", "payment"]) & pl.col("card_id").is_null()
    )
    debits = events.filter(wallet_debit).select(
        account=pl.col("account_id"), ts="ts", delta=-pl.col("fen"), debit=pl.lit(True), event_id="event_id"
    )
    received = events.filter(pl.col("type") == "transfer").select(
        account=pl.col("counterparty_id"), ts="ts", delta=pl.col("fen"), debit=pl.lit(False), event_id="event_id"
    )
    credits = pl.read_parquet(world_dir / "credits.parquet").select(
        account=pl.col("account_id"),
        ts=pl.col("credited_at"),
        delta=(pl.col("amount").cast(pl.Decimal(20, 2)) * 100).cast(pl.Int64),
        debit=pl.lit(False),
        event_id=pl.col("event_id"),
    )
    return pl.concat([debits, received, credits]).sort(["account", "ts", "debit"], maintain_order=True)


def test_wallets_never_go_negative_and_closing_balances_add_up(world_dir: Path, events: pl.DataFrame) -> None:
    accounts = pl.read_parquet(world_dir / "accounts.parquet").select(
        account=pl.col("account_id"),
        opening=(pl.col("opening_balance").cast(pl.Decimal(20, 2)) * 100).cast(pl.Int64),
        closing=(pl.col("closing_balance").cast(pl.Decimal(20, 2)) * 100).cast(pl.Int64),
    )
    entries = _entries(world_dir, events)
    assert set(entries["account"]) <= set(accounts["account"])  # no money goes to an unknown account
    running = entries.join(accounts, on="account", how="left").with_columns(
        balance=pl.col("opening") + pl.col("delta").cum_sum().over("account")
    )
    assert running["balance"].min() >= 0
    totals = entries.group_by("account").agg(pl.col("delta").sum())
    check = accounts.join(totals, on="account", how="left").with_columns(pl.col("delta").fill_null(0))
    assert (check["opening"] + check["delta"] == check["closing"]).all()
    assert (events.filter(pl.col("amount").is_not_null())["fen"] > 0).all()


def test_mules_never_send_on_more_than_they_received(
    world_dir: Path, labelled: pl.DataFrame, truth: pl.DataFrame
) -> None:
    mules = truth.filter(pl.col("role").str.contains("mule") & (pl.col("entity_kind") == "account"))
    mule_ids = mules["entity_value"].unique().to_list()
    fraud = labelled.filter(pl.col("typology").is_not_null())
    inflow = fraud.filter((pl.col("type") == "transfer") & pl.col("counterparty_id").is_in(mule_ids)).select(
        account="counterparty_id", ts="ts", delta="fen", debit=pl.lit(False)
    )
    credits = (
        pl.read_parquet(world_dir / "credits.parquet")
        .filter(pl.col("typology").is_not_null() & pl.col("account_id").is_in(mule_ids))
        .select(
            account="account_id",
            ts="credited_at",
            delta=(pl.col("amount").cast(pl.Decimal(20, 2)) * 100).cast(pl.Int64),
            debit=pl.lit(False),
        )
    )
    wallet = (pl.col("type") == "withdrawal") | (
        pl.col("type").is_in(["transfer", "payment"]) & pl.col("card_id").is_null()
    )
    outflow = fraud.filter(wallet & pl.col("account_id").is_in(mule_ids)).select(
        account="account_id", ts="ts", delta=-pl.col("fen"), debit=pl.lit(True)
    )
    assert outflow.height > 10
    flows = pl.concat([inflow, credits, outflow]).sort(["account", "ts", "debit"], maintain_order=True)
    held = flows.with_columns(held=pl.col("delta").cum_sum().over("account"))
    assert held["held"].min() >= 0


def test_victim_reports_sum_the_reported_payments(world_dir: Path, labelled: pl.DataFrame) -> None:
    reports = pl.read_parquet(world_dir / "victim_reports.parquet")
    assert reports.height > 0
    assert set(reports["typology"]) == {"telecom_fraud", "account_takeover"}
    by_id = {row["event_id"]: row for row in labelled.iter_rows(named=True)}
    for report in reports.iter_rows(named=True):
        reported = [by_id[e] for e in report["event_ids"]]
        assert report["payments"] == len(reported) > 0
        assert sum(Decimal(r["amount"]) for r in reported) == Decimal(report["amount"])
        assert all(r["account_id"] == report["account_id"] for r in reported)
        assert all(r["gang_id"] == report["gang_id"] for r in reported)
        assert all(r["role"] in ("victim_payment", "drain") for r in reported)
        assert max(r["ts"] for r in reported) < report["reported_at"]


# ---------------------------------------------------------------------- each typology with its signals
def _gang_events(labelled: pl.DataFrame, typology: str, *roles: str) -> pl.DataFrame:
    frame = labelled.filter(pl.col("typology") == typology)
    return frame.filter(pl.col("role").is_in(list(roles))) if roles else frame


def test_credential_stuffing_is_many_failed_logins_on_many_accounts_from_few_ips(labelled: pl.DataFrame) -> None:
    stuffing = _gang_events(labelled, "account_takeover", "stuffing_login")
    assert stuffing.height >= 60
    assert all(a["success"] is False for a in attrs(stuffing))
    assert stuffing["account_id"].n_unique() >= 10 * stuffing["ip"].n_unique()
    takeovers = _gang_events(labelled, "account_takeover", "takeover_login")
    assert 0 < takeovers.height < stuffing["account_id"].n_unique() * 0.1
    for account in takeovers["account_id"]:
        steps = _gang_events(labelled, "account_takeover").filter(
            (pl.col("account_id") == account) & (pl.col("role") != "stuffing_login")
        )
        kinds = steps.sort("ts")["type"].to_list()
        assert kinds[:3] == ["login", "device_bind", "password_change"]
        assert steps["device_id"].n_unique() == 1  # the attacker's phone throughout
    drains = _gang_events(labelled, "account_takeover", "drain")
    assert drains.height > 0


def test_telecom_victims_pay_new_payees_who_forward_within_minutes(labelled: pl.DataFrame, world_dir: Path) -> None:
    payments = _gang_events(labelled, "telecom_fraud", "victim_payment")
    assert payments.height >= 2
    profiles = pl.read_parquet(world_dir / "accounts.parquet")
    victims = payments.join(profiles, on="account_id", suffix="_own")
    assert victims.height == payments.height
    # the victim's own phone and bank card: step-up checks would not stop this
    assert (victims["device_id"] == victims["device_id_own"]).all()
    assert ((victims["card_id"] == victims["card_id_own"]) | (victims["card_id"] == victims["second_card_id"])).all()
    earlier = labelled.filter(pl.col("typology").is_null() & (pl.col("type") == "transfer"))
    pairs = set(earlier.select("account_id", "counterparty_id").iter_rows())
    assert not any(pair in pairs for pair in payments.select("account_id", "counterparty_id").iter_rows())
    forwards = _gang_events(labelled, "telecom_fraud", "layer1_forward")
    assert forwards.height > 0
    inflows = labelled.filter(pl.col("typology").is_not_null() & (pl.col("type") == "transfer"))
    for forward in forwards.iter_rows(named=True):  # each hop follows money that arrived minutes before
        arrived = inflows.filter((pl.col("counterparty_id") == forward["account_id"]) & (pl.col("ts") < forward["ts"]))
        assert arrived.height > 0
        assert (forward["ts"] - arrived["ts"].max()).total_seconds() <= 45 * 60
    fan_out = forwards.group_by("account_id").agg(pl.col("counterparty_id").n_unique())
    assert fan_out["counterparty_id"].max() >= 2
    cash_outs = _gang_events(labelled, "telecom_fraud", "cash_out_withdrawal", "cash_out_purchase")
    assert cash_outs.height > 0


def test_farms_sign_up_in_bursts_from_shared_devices_with_sequential_virtual_numbers(labelled: pl.DataFrame) -> None:
    signups = _gang_events(labelled, "fake_account_farm", "farm_signup")
    assert signups.height >= 15
    per_device = signups.group_by("device_id").len()
    assert per_device["len"].max() >= 3
    flags = attrs(signups)
    assert sum(a["emulator"] for a in flags) > 0
    assert all(a["phone_carrier_type"] == "virtual" for a in flags)
    numbers = sorted(int(p[3:]) for p in signups["phone"])
    steps = [b - a for a, b in itertools.pairwise(numbers)]
    assert steps.count(1) >= len(steps) // 2  # runs of consecutive numbers
    prefixes = {ip.rsplit(".", 1)[0] for ip in signups["ip"]}
    assert len(prefixes) <= 2  # one /24 per farm (two if a block crosses a boundary)


def test_loan_intermediary_packages_applications_with_its_own_contact_phone(labelled: pl.DataFrame) -> None:
    apps = _gang_events(labelled, "loan_intermediary", "packaged_application")
    assert apps.height >= 2
    contacts = [a["contact_phone"] for a in attrs(apps)]
    by_contact = apps.with_columns(contact=pl.Series(contacts)).group_by("contact").agg(pl.col("account_id").n_unique())
    assert by_contact["account_id"].max() >= 2  # one agent's number on several customers' applications
    assert sum(c != p for c, p in zip(contacts, apps["phone"], strict=True)) >= apps.height // 2
    incomes = [a["declared_income"] for a in attrs(apps)]
    assert all(i % 1000 == 0 and i >= 6000 for i in incomes)  # round, inflated


def test_proxy_agents_file_near_duplicate_lure_complaints_with_the_agents_phone(labelled: pl.DataFrame) -> None:
    complaints = _gang_events(labelled, "proxy_rights_agent", "agent_complaint")
    assert complaints.height >= 4
    details = attrs(complaints)
    contacts = [a["contact_phone"] for a in details]
    assert max(contacts.count(c) for c in set(contacts)) >= complaints["account_id"].n_unique() // 2
    lures = ("停息挂账", "债务清零", "全额退款", "全额退保", "征信修复", "征信洗白")
    assert all(any(w in a["text"] for w in lures) for a in details)

    def grams(text: str) -> set[str]:
        return {text[i : i + 2] for i in range(len(text) - 1)}

    first = grams(details[0]["text"])
    similarity = [len(first & grams(a["text"])) / len(first | grams(a["text"])) for a in details[1:]]
    assert sum(similarity) / len(similarity) > 0.5
    ordinary = attrs(labelled.filter((pl.col("type") == "complaint") & pl.col("typology").is_null()))
    assert not any(any(w in a["text"] for w in lures) for a in ordinary)


def test_card_testing_is_many_cards_small_payments_one_device_one_shop(labelled: pl.DataFrame) -> None:
    tests = _gang_events(labelled, "card_testing", "card_test")
    assert tests.height >= 40
    assert tests["card_id"].n_unique() >= 40
    assert tests["merchant_id"].n_unique() == 1
    assert tests["device_id"].n_unique() <= 2
    assert tests["fen"].max() < 1000


def test_recruited_dormant_accounts_wake_up_as_pass_through(
    labelled: pl.DataFrame, truth: pl.DataFrame, world_dir: Path
) -> None:
    recruits = truth.filter(pl.col("role") == "recruited_mule")["entity_value"]
    accounts = pl.read_parquet(world_dir / "accounts.parquet").filter(pl.col("account_id").is_in(recruits.to_list()))
    assert accounts.height >= 2 and accounts["dormant"].all()
    legit = labelled.filter(pl.col("typology").is_null() & pl.col("account_id").is_in(recruits.to_list()))
    assert legit.is_empty()  # the owners are gone: every event on these accounts is the gang's
    moved = _gang_events(labelled, "mule_recruitment").filter(pl.col("fen").is_not_null())
    assert moved.height > 0


# ---------------------------------------------------------------------- configuration
def test_intensity_zero_removes_a_typology_and_leaves_the_others_alone() -> None:
    base = simulate(WorldConfig(accounts=400, days=2, seed=9))
    quiet = simulate(WorldConfig(accounts=400, days=2, seed=9, intensity={"card_testing": 0}))
    code = TYPOLOGIES.index("card_testing")
    assert (base.events["typology"] == code).any()
    assert not (quiet.events["typology"] == code).any()
    telecom = TYPOLOGIES.index("telecom_fraud")
    assert (base.events["typology"] == telecom).sum() == (quiet.events["typology"] == telecom).sum()


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ConfigError, match="accounts"):
        WorldConfig(accounts=10)
    with pytest.raises(ConfigError, match="unknown typology"):
        WorldConfig(intensity={"phishing": 1.0})
    with pytest.raises(ConfigError, match="TYPOLOGY=NUMBER"):
        parse_intensities(["telecom_fraud"])
    assert parse_intensities(["telecom_fraud=2", "card_testing=0"]) == {"telecom_fraud": 2.0, "card_testing": 0.0}
    from datetime import UTC, date, datetime

    with pytest.raises(ConfigError, match="future"):
        WorldConfig(start=date(2026, 11, 1), days=30).check_in_past(datetime(2026, 11, 20, tzinfo=UTC))
    WorldConfig(start=date(2026, 1, 1), days=30).check_in_past(datetime(2026, 11, 20, tzinfo=UTC))
