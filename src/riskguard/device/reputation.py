"""``device.trust``: 0 (no trust) to 100, from what the server can check, with the reasons.

Trust starts at 100 and each reason found takes off its weight (``WEIGHTS``); reasons are listed heaviest
first. Only server-side facts can raise trust — a verified attestation, a key registered long ago, a
signature that verified. What the client reports about itself (emulator, root, hooking framework, VPN or
proxy, its fingerprint) can only lower it: a tampered client can hide bad news, never invent good news.

Signals: attestation and security level, verified boot, OS patch age, key age, client flags (at
registration and on the event), fingerprint consistency (the event's fingerprint against the registered
one, and how often it changed), accounts per device (keys registered for several accounts on one device),
devices per account, a device new for this account, a key moved from another account, and device farms:
many devices registered from one network in a day, a burst within an hour, or many devices sharing one
fingerprint template (cloned emulator images).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from riskguard.device import codes
from riskguard.device.registry import DeviceRegistry, KeyRecord
from riskguard.device.trust import Policy

WEIGHTS: dict[str, int] = {
    codes.SIGNATURE_FAILED: 50,
    codes.KEY_REVOKED: 60,
    codes.UNREGISTERED_DEVICE: 45,
    codes.NOT_ATTESTED: 30,
    codes.SOFTWARE_KEY: 30,
    codes.TEE_NOT_STRONGBOX: 5,
    codes.BOOT_FAILED: 60,
    codes.BOOT_UNVERIFIED: 40,
    codes.PATCH_OLD: 10,
    codes.KEY_NEW: 10,
    codes.NEW_DEVICE_FOR_ACCOUNT: 10,
    codes.KEY_REBOUND: 20,
    codes.EMULATOR: 40,
    codes.ROOTED: 25,
    codes.HOOKING: 30,
    codes.VPN_OR_PROXY: 10,
    codes.FINGERPRINT_CHANGED: 15,
    codes.FINGERPRINT_UNSTABLE: 10,
    codes.DEVICE_MANY_ACCOUNTS: 25,
    codes.DEVICE_SHARED: 10,
    codes.ACCOUNT_MANY_DEVICES: 15,
    codes.FARM_NETWORK: 30,
    codes.FARM_FINGERPRINT: 30,
    codes.REGISTRATION_BURST: 20,
    codes.COUNTER_UNSUPPORTED: 0,
}
FARM_REASONS = frozenset({codes.FARM_NETWORK, codes.FARM_FINGERPRINT, codes.REGISTRATION_BURST})
#: client flags (event attributes or the registration's ``environment``) and the reason each one gives
FLAGS = {
    "emulator": codes.EMULATOR,
    "rooted": codes.ROOTED,
    "jailbroken": codes.ROOTED,
    "hooking": codes.HOOKING,
    "vpn": codes.VPN_OR_PROXY,
    "proxy": codes.VPN_OR_PROXY,
}
DAY = 86_400.0


@dataclass
class Assessment:
    trust: int
    reasons: list[str]
    key_age_days: int
    patch_age_days: int
    new_for_account: bool
    farm: bool


def days_between(later: datetime, earlier: datetime) -> int:
    return int((later - earlier).total_seconds() // DAY)


def patch_age(patch_level: int | None, at: datetime) -> int:
    """Days from a YYYYMMDD patch level to ``at`` (-1 when unknown or unreadable)."""
    if not patch_level:
        return -1
    try:
        day = datetime(patch_level // 10000, patch_level // 100 % 100, max(1, patch_level % 100), tzinfo=UTC)
    except ValueError:
        return -1
    return max(0, days_between(at, day))


def client_flags(*sources: Mapping[str, Any] | None) -> set[str]:
    found: set[str] = set()
    for source in sources:
        if not source:
            continue
        for flag, reason in FLAGS.items():
            if source.get(flag) is True:
                found.add(reason)
    return found


def assess(
    record: KeyRecord | None,
    registry: DeviceRegistry,
    policy: Policy,
    *,
    at: datetime,
    attributes: Mapping[str, Any] | None,
    device_id: str | None,
    failure: str | None = None,
    revoked: bool = False,
) -> Assessment:
    """The trust of ``record`` (the key behind this event, or None for an unregistered device) at ``at``."""
    reasons: set[str] = set()
    key_age = patch_days = -1
    new_for_account = True
    if failure:
        reasons.add(codes.SIGNATURE_FAILED)
    if revoked:
        reasons.add(codes.KEY_REVOKED)
    reasons |= client_flags(attributes, record.environment if record else None)
    if record is None:
        reasons.add(codes.UNREGISTERED_DEVICE)
        reasons.add(codes.NEW_DEVICE_FOR_ACCOUNT)
        accounts = registry.device_accounts(device_id) if device_id else 0
    else:
        if not record.attested:
            reasons.add(codes.SOFTWARE_KEY if codes.SOFTWARE_KEY in record.findings else codes.NOT_ATTESTED)
        elif record.security_level == "tee":
            reasons.add(codes.TEE_NOT_STRONGBOX)
        for finding in (codes.BOOT_UNVERIFIED, codes.BOOT_FAILED, codes.COUNTER_UNSUPPORTED):
            if finding in record.findings:
                reasons.add(finding)
        patch_days = patch_age(record.patch_level, at)
        if patch_days > policy.patch_old_days:
            reasons.add(codes.PATCH_OLD)
        bindings = registry.bindings(record.key_id)
        first = bindings[0].registered_at if bindings else record.registered_at
        key_age = max(0, days_between(at, first))
        if key_age < policy.key_new_days:
            reasons.add(codes.KEY_NEW)
        new_for_account = days_between(at, record.registered_at) < policy.new_device_days
        if new_for_account:
            reasons.add(codes.NEW_DEVICE_FOR_ACCOUNT)
        if record.rebound_from is not None:
            reasons.add(codes.KEY_REBOUND)
        fingerprint = attributes.get("device_fingerprint") if attributes else None
        if isinstance(fingerprint, str) and record.fingerprint and fingerprint != record.fingerprint:
            reasons.add(codes.FINGERPRINT_CHANGED)
        if record.fingerprint_changes >= 3:
            reasons.add(codes.FINGERPRINT_UNSTABLE)
        accounts = registry.device_accounts(record.device_id)
        if registry.account_devices(record.account_id) >= policy.many_devices:
            reasons.add(codes.ACCOUNT_MANY_DEVICES)
        registered = record.registered_ts
        if registry.network_devices(record.network, registered, DAY) >= policy.farm_network_devices:
            reasons.add(codes.FARM_NETWORK)
        if registry.network_devices(record.network, registered, 3600.0, distinct=False) >= policy.burst_registrations:
            reasons.add(codes.REGISTRATION_BURST)
        if registry.fingerprint_devices(record.fingerprint) >= policy.farm_fingerprint_devices:
            reasons.add(codes.FARM_FINGERPRINT)
    if accounts >= policy.many_accounts:
        reasons.add(codes.DEVICE_MANY_ACCOUNTS)
    elif accounts == 2:
        reasons.add(codes.DEVICE_SHARED)
    ordered = sorted(reasons, key=lambda r: (-WEIGHTS.get(r, 0), r))
    trust = max(0, 100 - sum(WEIGHTS.get(r, 0) for r in ordered))
    return Assessment(
        trust=trust,
        reasons=ordered,
        key_age_days=key_age,
        patch_age_days=patch_days,
        new_for_account=new_for_account,
        farm=bool(reasons & FARM_REASONS),
    )
