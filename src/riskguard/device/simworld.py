"""Trusted devices in a simulated world: legitimate users run the reference client, device farms don't.

The simulator's files stay as they are (its output per seed does not change); what each device runs is a
pure function of the world's own files, worked out when the world is streamed:

- a device in ``accounts.parquet`` that no gang owns is a customer's phone: it registers with the reference
  client when its account first uses it — an Android Keystore key attested by a TEE (a tenth StrongBox),
  an App Attest key (7 %), or an unattested software key (8 %, older phones), chosen by a hash of the
  device id — at the account's opening (its first device) or some time before the world starts (its
  second), from the account's home IP. A rooted phone (its events say ``rooted``) attests an unlocked
  bootloader. It signs every payment, transfer and withdrawal;
- a farm's device (``truth.parquet`` role ``farm_device``) is an emulator: no secure hardware, so the farm
  registers a software key per account it opens, at sign-up, from the farm's address block, with the
  farm's one emulator image as its fingerprint and the client's emulator flag; it does not attest;
- every other gang device (takeover, telecom, card-testing crews) registers nothing and signs nothing.

``WorldSigner(world_dir, transport, authority)`` is a function from an event body to the body to send.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from riskguard.device.client import DeviceClient, Transport
from riskguard.device.testing import AndroidFacts, TestAuthority

SIGNED_TYPES = frozenset({"payment", "transfer", "withdrawal"})


def _fraction(text: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


class DevicePlan:
    """What runs on each device of a world, and when each customer enrolled each phone."""

    def __init__(self, world_dir: Path) -> None:
        truth = pl.read_parquet(world_dir / "truth.parquet").filter(pl.col("entity_kind") == "device")
        self.farm_image = {
            row["entity_value"]: row["gang_id"]
            for row in truth.filter(pl.col("role") == "farm_device").iter_rows(named=True)
        }
        self.gang = set(truth["entity_value"].to_list())
        accounts = pl.read_parquet(world_dir / "accounts.parquet")
        self.home_ip: dict[str, str] = {}
        self.enrolled: dict[tuple[str, str], datetime] = {}
        start = json.loads((world_dir / "world.json").read_text(encoding="utf-8"))["config"]["start"]
        self.start = datetime.fromisoformat(start).replace(tzinfo=UTC) - timedelta(hours=8)
        for row in accounts.iter_rows(named=True):
            account, opened = row["account_id"], row["opened_at"]
            self.home_ip[account] = row["home_ip"]
            if row["device_id"]:
                self.enrolled[(account, row["device_id"])] = opened
            second = row["second_device_id"]
            if second:
                span = max(timedelta(0), self.start - opened)
                self.enrolled[(account, second)] = opened + span * _fraction(second, "second")

    def kind(self, device_id: str) -> str:
        """android | apple | software (customers), farm, or none (other gangs: no client at all)."""
        if device_id in self.farm_image:
            return "farm"
        if device_id in self.gang:
            return "none"
        share = _fraction(device_id, "kind")
        return "software" if share < 0.08 else "apple" if share < 0.15 else "android"

    def facts(self, device_id: str, rooted: bool) -> AndroidFacts:
        months = int(_fraction(device_id, "patch") * 18)
        year, month = divmod(self.start.year * 12 + self.start.month - 1 - months, 12)
        return AndroidFacts(
            security_level="strongbox" if _fraction(device_id, "level") < 0.1 else "tee",
            boot_state="unverified" if rooted else "verified",
            device_locked=not rooted,
            os_patch_level=year * 100 + month + 1,
        )


class WorldSigner:
    """Registers each device on first use and signs money-moving events, as the plan says."""

    def __init__(self, world_dir: Path, transport: Transport, authority: TestAuthority) -> None:
        self.plan = DevicePlan(world_dir)
        self.transport = transport
        self.authority = authority
        self.clients: dict[tuple[str, str], DeviceClient | None] = {}
        self.registered = {"android": 0, "apple": 0, "software": 0, "farm": 0}
        self.signed = 0

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        device, account = body.get("device_id"), body.get("account_id")
        if not device or not account:
            return body
        key = (account, device)
        if key not in self.clients:
            self.clients[key] = self._enrol(account, device, body)
        client = self.clients[key]
        if client is None or body.get("type") not in SIGNED_TYPES:
            return body
        self.signed += 1
        return client.sign(body)

    def settle(self) -> None:
        """Waits until every registration is stored (raises the first that was not)."""
        settle = getattr(self.transport, "settle", None)
        if settle is not None:
            settle()

    def _enrol(self, account: str, device: str, body: dict[str, Any]) -> DeviceClient | None:
        kind = self.plan.kind(device)
        if kind == "none":
            return None
        attributes = body.get("attributes") or {}
        when = _parse_time(body["occurred_at"])
        if kind == "farm":
            client = DeviceClient(
                account,
                device,
                self.transport,
                kind="software",
                fingerprint=f"emulator-image-{self.plan.farm_image[device]}",
                environment={"emulator": True},
                ip=body.get("ip"),
            )
        else:
            rooted = attributes.get("rooted") is True
            client = DeviceClient(
                account,
                device,
                self.transport,
                kind=kind,
                authority=self.authority,
                facts=self.plan.facts(device, rooted),
                fingerprint=f"fp-{device}",
                environment={"rooted": True} if rooted else {},
                ip=self.plan.home_ip.get(account),
            )
            when = min(when, self.plan.enrolled.get((account, device), when))
        client.register(occurred_at=when)
        self.registered[kind] += 1
        return client


def signer_for(world_dir: Path, guard: Any) -> WorldSigner:
    """A signer streaming into ``guard`` in process, which is set to trust a fresh test authority.

    Registrations are answered once indexed, and stored by the group commit with the decisions around
    them (``InProcessTransport(durable=False)``): each event is decided with exactly the registrations
    streamed before it, and a batch of them costs one commit. ``settle()`` waits for the last ones.
    """
    from riskguard.device.client import InProcessTransport
    from riskguard.device.testing import trust_config

    authority = TestAuthority("riskguard demo attestation")
    guard.devices.configure(trust_config(authority))
    return WorldSigner(world_dir, InProcessTransport(guard.devices, durable=False), authority)
