"""The device service: challenges, registration, lookups, and the per-decision evaluation the stage calls.

``DeviceService(engine, settings=..., writer=...)`` is built by ``RiskGuard`` (``rg.devices``) with the
instance's group-commit writer, through which it writes everything (registrations, revocations, used
nonces, counters); the HTTP routes (http.py), the CLI (cli.py) and the reference client's in-process
transport call it. Without a writer it only evaluates (what replays use). Nothing here holds global state.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from redis.exceptions import RedisError
from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from riskguard.config import Settings
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
from riskguard.device.registry import AlreadyBound, DeviceRegistry, KeyRecord, Step, new_record
from riskguard.device.reputation import assess
from riskguard.device.signing import parse_claim, verify
from riskguard.device.stage import DeviceStage
from riskguard.device.tables import device_secrets
from riskguard.device.trust import TrustConfig
from riskguard.errors import ConfigError, NotFound, Unavailable, ValidationFailed
from riskguard.events.schema import Event
from riskguard.masking import mask
from riskguard.store.writer import GroupCommitWriter, Ticket, WriteRequest

NONCE_KEY = "nonce"
SWEEP_EVERY_S = 60.0

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


@dataclass
class Registration:
    """A registration handed to the group commit: ``answer`` is final once ``ticket`` succeeds."""

    answer: dict[str, Any]
    ticket: Ticket | None  # None: nothing to store (the key was already bound to this account)
    key_id: str


class DeviceService:
    def __init__(
        self,
        engine: Engine,
        *,
        settings: Settings | None = None,
        writer: GroupCommitWriter | None = None,
        trust: TrustConfig | None = None,
        clock: Callable[[], float] = time.time,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``settings``: the device configuration file, time skew, commit timeout, and Redis (nonce uses
        live there when the feature back end is Redis); ``writer``: the group commit every write goes
        through (None: evaluation only, with a key of its own for nonces)."""
        settings = settings or Settings()
        if trust is None:
            trust = TrustConfig.from_file(settings.device_config) if settings.device_config else TrustConfig()
        self.engine = engine
        self.writer = writer
        self.wall = wall
        self.max_future_skew = timedelta(seconds=settings.max_future_skew_s)
        self.commit_timeout_s = settings.commit_timeout_ms / 1000 * 4
        self.registry = DeviceRegistry(engine)
        self.registry.load(wall())
        self._redis: Any = None
        if writer is not None and settings.feature_backend == "redis":  # nonce uses shared in Redis
            import redis

            self._redis = redis.Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.nonces = NonceStore(
            load_secret(engine) if writer is not None else secrets.token_bytes(32),
            ttl_s=trust.policy.challenge_ttl_s,
            size=trust.policy.nonce_bytes,
            clock=clock,
            sql=self.registry.sql if writer is not None else None,
            redis=self._redis,
            prefix=f"{{{settings.feature_namespace}}}:device:nonce:",
        )
        self.configure(trust)
        self.stage = DeviceStage(self)
        self._writes: tuple[str, list[Step]] | None = None  # the last observed decision's steps
        self._swept = clock()

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
        if self._redis is not None:
            self._redis.close()

    def refresh(self) -> None:
        """Picks up other workers' registrations, rebindings and revocations, re-reads changed revocation
        lists, and (once a minute) sweeps long-expired nonce uses; ``RiskGuard.refresh`` calls it every poll."""
        if self.writer is None:
            return
        self.registry.refresh(self.wall())
        self.trust.revocation.reload()
        now = self.nonces.clock()
        if now - self._swept >= SWEEP_EVERY_S and self._redis is None:
            self._swept = now
            self.writer.submit(WriteRequest(steps=[self.nonces.sweep_step()]))

    def _submit(self, steps: list[Step]) -> Ticket:
        if self.writer is None:
            raise ConfigError("this device service evaluates only (it was built without a writer)")
        return self.writer.submit(WriteRequest(steps=steps))

    def _consume(self, nonce: bytes, digest: bytes, consumer: str) -> tuple[str | None, Step | None]:
        try:
            return self.nonces.consume(nonce, digest, consumer)
        except RedisError as exc:
            raise Unavailable(f"the nonce store (Redis) did not answer: {exc}") from None

    def writes_for(self, event_id: str) -> list[Step]:
        """The steps the last observed decision of ``event_id`` adds to its own group commit (its nonce's
        use, its key's counter); ``RiskGuard.submit`` puts them in the decision's write request."""
        writes, self._writes = self._writes, None
        return writes[1] if writes is not None and writes[0] == event_id else []

    def _wait(self, ticket: Ticket, what: str) -> None:
        """Waits for ``ticket``; a refusal found while writing is raised as it is."""
        if not ticket.wait(self.commit_timeout_s):
            raise Unavailable(f"the {what} could not be recorded in time; retry")
        if isinstance(ticket.error, DeviceRefused):
            raise ticket.error
        if ticket.error is not None:
            raise Unavailable(f"the {what} could not be recorded; retry")

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
        """Verifies the attestation and binds the key to the account, durably; refusals raise
        ``DeviceRefused``."""
        registration = self.submit_registration(request, actor=actor)
        return self.settle_registration(registration)

    def settle_registration(self, registration: Registration) -> dict[str, Any]:
        """Waits until ``registration`` is stored: its answer, or the refusal found while storing it."""
        ticket = registration.ticket
        if ticket is None:
            return registration.answer
        if ticket.wait(self.commit_timeout_s) and isinstance(ticket.error, (AlreadyBound, DeviceRefused)):
            current = self.registry.load_key(registration.key_id)  # what another worker stored instead
            if isinstance(ticket.error, AlreadyBound) and current is not None:
                return {"registered": False, "already": True, **self._view(current, unmask=True)}
        self._wait(ticket, "registration")
        return registration.answer

    def submit_registration(self, request: RegisterRequest, *, actor: str = "system") -> Registration:
        """Verifies the attestation and indexes the binding at once (decisions after this call see it);
        the row is written by the group commit: ``settle_registration`` (or the ticket) says when."""
        now = self.wall()
        occurred = request.occurred_at.astimezone(UTC) if request.occurred_at else now
        if occurred - now > self.max_future_skew:
            raise _invalid("occurred_at", "is in the future")
        network = network_of(request.ip)
        fmt = request.attestation.get("format")
        provider = self.providers.get(fmt) if isinstance(fmt, str) else None
        if provider is None:
            raise DeviceRefused(codes.ATTESTATION_UNSUPPORTED, f"format {fmt!r}; known: {', '.join(self.providers)}")
        if self.writer is None:
            raise ConfigError("this device service evaluates only (it was built without a writer)")
        nonce = unb64(request.nonce, field="nonce")
        digest = registration_digest(request.account_id, request.device_id)
        consumer = "register:" + self.nonces.random.take(8).hex()  # a registration never reuses a nonce
        reason, nonce_step = self._consume(nonce, digest, consumer)
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
                    answer = {"registered": False, "already": True, **self._view(current, unmask=True)}
                    return Registration(answer, None, kid)
                if not request.rebind:
                    raise DeviceRefused(codes.KEY_BOUND_TO_OTHER_ACCOUNT, status=409)
                ends = current
            elif current is not None and current.status == "revoked":
                raise DeviceRefused(codes.KEY_REVOKED, status=409)
            values = {
                "key_id": kid,
                "device_id": request.device_id,
                "account_id": request.account_id,
                "environment": dict(request.environment),
                "fingerprint": request.fingerprint,
                "network": network,
                "rebound_from": ends.account_id if ends is not None else None,
                "registered_at": occurred,
            }
            record = new_record(attestation, values, now)
            audit = None
            if ends is not None:
                moved = {"device_id": request.device_id, "from": mask(ends.account_id), "to": mask(request.account_id)}
                audit = (now, actor[:64], "device.rebind", kid, _details(moved))
            steps = [self.registry.binding_step(record, ends, now, audit)]
            self.registry.bind(record, ends, now)
            ticket = self._submit([nonce_step, *steps] if nonce_step is not None else steps)
        ticket.on_done(lambda done: self._stored(done, record, ends))
        return Registration({"registered": True, "already": False, **self._view(record, unmask=True)}, ticket, kid)

    def _stored(self, ticket: Ticket, record: KeyRecord, ends: KeyRecord | None) -> None:
        if ticket.error is not None:
            self.registry.withdraw(record, ends)

    def revoke(self, key: str, *, actor: str, reason: str = "") -> dict[str, Any]:
        """Revokes ``key`` (durably, audited with ``reason``) and returns its binding."""
        record = self.registry.current(key) or self.registry.load_key(key)
        if record is None:
            raise NotFound(f"no registered key {key!r}")
        if record.status == "active" and record.id is not None:
            now = self.wall()
            details = {"device_id": mask(record.device_id), "reason": reason[:500]}
            audit = (now, actor[:64], "device.revoke", key, _details(details))
            self._wait(self._submit([self.registry.revoke_step(record, now, audit)]), "revocation")
            record = self.registry.load_key(key) or record
        return self._view(record, unmask=True)

    # ------------------------------------------------------------------ lookups
    def get(
        self, device_id: str, *, account_id: str | None = None, unmask: bool = False, actor: str = "system"
    ) -> dict[str, Any]:
        """A device's bindings (and, with ``account_id``, that account's trust); account ids are masked
        unless ``unmask``, and an unmasked view is written to the audit log first."""
        records = self.registry.for_device(device_id)
        if not records:
            raise NotFound(f"no keys are registered for device {device_id!r}")
        if unmask:
            self.audit_view(actor, device_id, {"account_id": mask(account_id)} if account_id else {})
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

    def keys(
        self,
        *,
        account_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        unmask: bool = False,
        actor: str = "system",
    ) -> list[dict[str, Any]]:
        """Registered bindings, newest first, of one account or all, in one status or any; account and
        device ids masked unless ``unmask`` (audited)."""
        if status not in (None, "active", "ended", "revoked"):
            raise _invalid("status", "is one of active, ended, revoked")
        if limit < 1:
            raise _invalid("limit", "must be at least 1")
        if unmask:
            self.audit_view(actor, "devices", {"account_id": mask(account_id), "status": status, "limit": limit})
        found = [
            r
            for r in reversed(self.registry.records())
            if (account_id is None or r.account_id == account_id) and (status is None or r.status == status)
        ]
        return [self._view(r, unmask=unmask, device=unmask) for r in found[:limit]]

    def audit_view(self, actor: str, target: str, details: dict[str, Any]) -> None:
        """Records that ``actor`` saw unmasked account ids of ``target`` (waits until it is stored)."""
        row = (self.wall(), actor[:64], "device.view", target, _details(details))
        self._wait(self._submit([self.registry.audit_step(row)]), "audit entry")

    def _view(self, record: KeyRecord, *, unmask: bool, device: bool = True) -> dict[str, Any]:
        """A binding as shown: account ids masked unless ``unmask``, the device id unless ``device``."""
        view = record.view()
        if not unmask:
            view["account_id"] = mask(record.account_id)
            view["rebound_from"] = mask(record.rebound_from)
        if not device:
            view["device_id"] = mask(record.device_id)
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
        if record is None and self.writer is not None:
            record = registry.load_key(claim.key_id)  # registered on another worker since the last refresh
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
        reason = self.nonces.check(claim.nonce, digest, event.event_id, shared=not observe)
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
            reason, nonce_step = self._consume(claim.nonce, digest, event.event_id)
            if reason is not None:
                return record, reason, False
            fingerprint = (event.attributes or {}).get("device_fingerprint")
            changed = registry.mark_used(
                record,
                counter,
                event.event_id,
                event.occurred_at,
                fingerprint if isinstance(fingerprint, str) else None,
            )
            steps = [registry.counter_step(record, counter, event.event_id, event.occurred_at, changed)]
            self._writes = (event.event_id, [nonce_step, *steps] if nonce_step is not None else steps)
        return record, None, False


def load_secret(engine: Engine) -> bytes:
    """The installation's nonce key: made by the first process on this database, read by every other."""
    query = select(device_secrets.c.value).where(device_secrets.c.name == NONCE_KEY)
    with engine.begin() as connection:
        stored = connection.execute(query).scalar()
        if stored is None:
            insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
            value = b64(secrets.token_bytes(32))
            connection.execute(insert(device_secrets).values(name=NONCE_KEY, value=value).on_conflict_do_nothing())
            stored = connection.execute(query).scalar_one()
    return unb64(stored, field="nonce key")


def _details(values: dict[str, Any]) -> str:
    """An audit entry's details, as ``store.audit.record`` writes them."""
    return json.dumps(values, default=str, ensure_ascii=False, sort_keys=True)
