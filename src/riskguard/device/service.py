"""The device service: challenges, registration, lookups, and the per-decision evaluation the stage calls.

``DeviceService(engine, settings)`` is built by ``RiskGuard`` (``rg.devices``); the HTTP routes (http.py)
and the reference client's in-process transport call it. Nothing here holds global state.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from sqlalchemy import Engine

from riskguard.device import codes
from riskguard.device.digest import challenge_bytes, registration_digest, transaction_digest
from riskguard.device.errors import DeviceRefused
from riskguard.device.keys import b64, key_id, unb64
from riskguard.device.nonces import NonceStore
from riskguard.device.providers.android import AndroidKeyProvider
from riskguard.device.providers.apple import AppAttestProvider
from riskguard.device.providers.base import AttestationProvider
from riskguard.device.providers.fido import WebAuthnProvider
from riskguard.device.providers.oem import OemProvider
from riskguard.device.providers.software import SoftwareKeyProvider
from riskguard.device.registry import DeviceRegistry, KeyRecord
from riskguard.device.reputation import assess
from riskguard.device.signing import parse_claim, verify
from riskguard.device.stage import DeviceStage
from riskguard.device.trust import TrustConfig
from riskguard.errors import NotFound, ValidationFailed
from riskguard.events.schema import Event
from riskguard.masking import mask
from riskguard.store import audit

log = logging.getLogger("riskguard.device")

Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class ChallengeRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``digest``: hex SHA-256 of the transaction (digest.py); or, to register, ``account_id`` and
    ``device_id`` (the server binds the nonce to ``registration_digest(account_id, device_id)``)."""

    digest: str | None = None
    account_id: Identifier | None = None
    device_id: Identifier | None = None


class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    account_id: Identifier
    device_id: Identifier
    nonce: str
    attestation: dict[str, Any]
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    ip: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    fingerprint: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    environment: dict[str, bool] = {}
    rebind: bool = False


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed([{"loc": ["body", field], "msg": message, "type": "value_error"}])


def network_of(ip: str | None) -> str | None:
    """The registration's network: an IPv4 /24 or an IPv6 /48."""
    if ip is None:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise _invalid("ip", f"{ip!r} is not an IP address") from None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class DeviceService:
    def __init__(
        self,
        engine: Engine,
        *,
        trust: TrustConfig | None = None,
        config_path: str = "",
        max_future_skew_s: float = 300.0,
        background: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if trust is None:
            trust = TrustConfig.from_file(config_path) if config_path else TrustConfig()
        self.engine = engine
        self.wall = wall
        self.max_future_skew = timedelta(seconds=max_future_skew_s)
        self.registry = DeviceRegistry(engine)
        self.registry.load()
        self.nonces = NonceStore(
            ttl_s=trust.policy.challenge_ttl_s, size=trust.policy.nonce_bytes, clock=clock, wall=wall
        )
        self.configure(trust)
        self.stage = DeviceStage(self)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._flush_loop, name="riskguard-devices", daemon=True)
            self._thread.start()

    def configure(self, trust: TrustConfig, providers: list[AttestationProvider] | None = None) -> None:
        """Replaces the trust configuration (and, optionally, the providers: e.g. an OEM decoder)."""
        self.trust = trust
        self.nonces.ttl = trust.policy.challenge_ttl_s
        self.nonces.size = trust.policy.nonce_bytes
        chosen = providers or [
            AndroidKeyProvider(trust),
            WebAuthnProvider(trust),
            AppAttestProvider(trust),
            OemProvider(trust),
            SoftwareKeyProvider(),
        ]
        self.providers = {fmt: p for p in chosen for fmt in p.formats}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self.registry.flush()
        except Exception:
            log.exception("writing device counters at shutdown failed")

    def _flush_loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.registry.flush()
                self.trust.revocation.reload()
            except Exception:
                log.exception("writing device counters failed; will retry")

    # ------------------------------------------------------------------ challenges
    def challenge(self, request: ChallengeRequest) -> dict[str, Any]:
        if request.digest is not None:
            if request.account_id is not None or request.device_id is not None:
                raise _invalid("digest", "give digest, or account_id and device_id (to register), not both")
            try:
                digest = bytes.fromhex(request.digest)
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise _invalid("digest", "must be the SHA-256 of the transaction, 64 hex characters")
            purpose = "transaction"
        elif request.account_id is not None and request.device_id is not None:
            digest = registration_digest(request.account_id, request.device_id)
            purpose = "register"
        else:
            raise _invalid("digest", "give digest (to sign a transaction) or account_id and device_id (to register)")
        nonce, expires = self.nonces.issue(digest)
        return {
            "nonce": b64(nonce),
            "digest": digest.hex(),
            "purpose": purpose,
            "expires_at": expires,
            "ttl_s": self.nonces.ttl,
        }

    # ------------------------------------------------------------------ registration
    def register(self, request: RegisterRequest, *, actor: str = "system") -> dict[str, Any]:
        """Verifies the attestation and binds the key to the account; refusals raise ``DeviceRefused``."""
        now = self.wall()
        occurred = request.occurred_at.astimezone(UTC) if request.occurred_at else now
        if occurred - now > self.max_future_skew:
            raise _invalid("occurred_at", "is in the future")
        network = network_of(request.ip)
        fmt = request.attestation.get("format")
        provider = self.providers.get(fmt) if isinstance(fmt, str) else None
        if provider is None:
            raise DeviceRefused(codes.ATTESTATION_UNSUPPORTED, f"format {fmt!r}; known: {', '.join(self.providers)}")
        nonce = unb64(request.nonce, field="nonce")
        digest = registration_digest(request.account_id, request.device_id)
        consumer = "register:" + secrets.token_hex(8)  # a registration never reuses a nonce, even its own
        reason = self.nonces.consume(nonce, digest, consumer)
        if reason is not None:
            raise DeviceRefused(reason)
        attestation = provider.verify(request.attestation, challenge_bytes(nonce, digest), now)
        kid = key_id(attestation.public_key)
        if self.trust.revocation.any_revoked(attestation.serials):
            raise DeviceRefused(codes.CERT_REVOKED)
        with self.registry.lock:
            current = self.registry.current(kid)
            ends = None
            if current is not None and current.status == "active":
                if current.device_id != request.device_id:
                    raise DeviceRefused(codes.DEVICE_MISMATCH, "this key is registered for another device", status=409)
                if current.account_id == request.account_id:
                    return {"registered": False, "already": True, **self._view(current, unmask=True)}
                if not request.rebind:
                    raise DeviceRefused(codes.KEY_BOUND_TO_OTHER_ACCOUNT, status=409)
                ends = current
            elif current is not None and current.status == "revoked":
                raise DeviceRefused(codes.KEY_REVOKED, status=409)
            record = self.registry.add(
                attestation,
                {
                    "key_id": kid,
                    "device_id": request.device_id,
                    "account_id": request.account_id,
                    "environment": dict(request.environment),
                    "fingerprint": request.fingerprint,
                    "network": network,
                    "rebound_from": ends.account_id if ends is not None else None,
                    "registered_at": occurred,
                },
                ends=ends,
                now=now,
            )
        if ends is not None:
            with self.engine.begin() as connection:
                audit.record(
                    connection,
                    actor,
                    "device.rebind",
                    kid,
                    {"device_id": request.device_id, "from": mask(ends.account_id), "to": mask(request.account_id)},
                )
        return {"registered": True, "already": False, **self._view(record, unmask=True)}

    def revoke(self, key: str, *, actor: str) -> dict[str, Any]:
        record = self.registry.revoke(key, self.wall())
        if record is None:
            raise NotFound(f"no registered key {key!r}")
        with self.engine.begin() as connection:
            audit.record(connection, actor, "device.revoke", key, {"device_id": record.device_id})
        return self._view(record, unmask=True)

    # ------------------------------------------------------------------ lookups
    def get(self, device_id: str, *, account_id: str | None = None, unmask: bool = False) -> dict[str, Any]:
        records = self.registry.for_device(device_id)
        if not records:
            raise NotFound(f"no keys are registered for device {device_id!r}")
        out: dict[str, Any] = {
            "device_id": device_id,
            "accounts": self.registry.device_accounts(device_id),
            "keys": [self._view(r, unmask=unmask) for r in records],
        }
        if account_id is not None:
            record = self.registry.for_pair(account_id, device_id)
            found = assess(
                record, self.registry, self.trust.policy, at=self.wall(), attributes=None, device_id=device_id
            )
            out["assessment"] = {"account_id": account_id if unmask else mask(account_id), **found.__dict__}
        return out

    def _view(self, record: KeyRecord, *, unmask: bool) -> dict[str, Any]:
        view = record.view()
        if not unmask:
            view["account_id"] = mask(record.account_id)
            view["rebound_from"] = mask(record.rebound_from)
        return view

    # ------------------------------------------------------------------ decisions
    def evaluate(self, event: Event, *, observe: bool = True) -> dict[str, Any]:
        """The ``device.*`` variables of one event; consumes its nonce and advances its counter when
        ``observe`` (a dry run checks without using them up)."""
        attributes = event.attributes or {}
        raw = attributes.get("device_signature")
        signed = raw is not None
        failure: str | None = None
        revoked = False
        registry = self.registry
        record: KeyRecord | None = None
        at = event.occurred_at
        if signed:
            record, failure, revoked = self._verify(event, raw, observe)
        elif event.device_id is not None:
            record = registry.for_pair(event.account_id, event.device_id)
            if record is not None and self.trust.revocation.any_revoked(record.serials):
                revoked, record = True, None
        found = assess(
            record,
            registry,
            self.trust.policy,
            at=at,
            attributes=attributes,
            device_id=event.device_id,
            failure=failure,
            revoked=revoked,
        )
        return {
            "device.present": signed or event.device_id is not None,
            "device.signed": signed,
            "device.signature_ok": signed and failure is None,
            "device.failure": failure or "",
            "device.registered": record is not None,
            "device.account_enrolled": registry.account_enrolled(event.account_id),
            "device.attested": record is not None and record.attested,
            "device.provider": record.provider if record else "",
            "device.security_level": record.security_level if record else "none",
            "device.boot_state": record.boot_state if record else "unknown",
            "device.patch_age_days": found.patch_age_days,
            "device.key_age_days": found.key_age_days,
            "device.new_for_account": found.new_for_account,
            "device.rebound": record is not None and record.rebound_from is not None,
            "device.accounts": registry.device_accounts(record.device_id if record else event.device_id or ""),
            "device.account_devices": registry.account_devices(event.account_id),
            "device.farm": found.farm,
            "device.trust": found.trust,
            "device.reasons": found.reasons,
        }

    def _verify(self, event: Event, raw: Any, observe: bool) -> tuple[KeyRecord | None, str | None, bool]:
        """(the key record behind the event, failure code, revoked) for a signed event."""
        registry = self.registry
        claim = parse_claim(raw)
        fallback = registry.for_pair(event.account_id, event.device_id) if event.device_id else None
        if claim is None:
            return fallback, codes.MALFORMED_SIGNATURE, False
        record = registry.current(claim.key_id)
        if record is None:
            return fallback, codes.UNKNOWN_KEY, False
        if record.account_id != event.account_id:
            return fallback, codes.KEY_ACCOUNT_MISMATCH, False
        if record.status == "revoked" or self.trust.revocation.any_revoked(record.serials):
            return None, codes.KEY_REVOKED, True
        if record.status != "active":
            return fallback, codes.KEY_ACCOUNT_MISMATCH, False
        if event.device_id is not None and event.device_id != record.device_id:
            return fallback, codes.DEVICE_MISMATCH, False
        digest = transaction_digest(event)
        reason = self.nonces.check(claim.nonce, digest, event.event_id)
        if reason is not None:
            return record, reason, False
        failure, counter = verify(record, claim, digest, self.trust)
        if failure is not None:
            return record, failure, False
        advanced = counter > record.counter or (counter == record.counter and record.last_event == event.event_id)
        counterless = record.scheme == "webauthn" and counter == 0 and record.counter == 0
        if not (advanced or counterless):
            return record, codes.COUNTER_REGRESSION, False
        if observe:
            reason = self.nonces.consume(claim.nonce, digest, event.event_id)
            if reason is not None:
                return record, reason, False
            fingerprint = (event.attributes or {}).get("device_fingerprint")
            registry.mark_used(
                record,
                counter,
                event.event_id,
                event.occurred_at,
                fingerprint if isinstance(fingerprint, str) else None,
            )
        return record, None, False
