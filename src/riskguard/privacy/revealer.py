"""Audited reveal of unmasked personal data, with insider-access detection.

Every call of ``reveal`` / ``reveal_many`` writes one audit entry (action ``pii.reveal``: actor, kind(s),
target, purpose, how many values, their keyed tokens and the result) — never a value itself. Before
anything is revealed:

- the role must hold ``pii.reveal`` (console roles) or be ``API_ROLE`` (an API key with the ``reveal``
  scope): else Forbidden;
- an actor under a throttle is refused (429) until the cool-down ends or a lead/admin lifts it;
- **bulk**: one request for ``reveal_bulk_threshold`` values or more is refused, alerted and throttled;
- **volume**: the actor's reveals this hour (UTC) may not exceed ``max(floor, factor × baseline)``, where
  the baseline is the mean count of the actor's active hours (hours with any reveal) over the last
  ``reveal_baseline_days`` days, this hour excluded — an analyst is compared with their own habit, and a
  new one starts at the floor;
- **off-hours**: outside the working hours (in ``reveal_timezone``) at most ``reveal_offhours_limit``
  reveals in the trailing hour.
A refusal for anomaly raises an alert (``privacy_alerts``, the store/alerts.py shape the cases inbox reads)
and throttles the actor for ``reveal_cooldown_minutes``. Opening a canary (a fake identifier or account
made by ``riskguard privacy canary``) raises an alert at once; it is not refused, so the tripwire stays
silent to whoever tripped it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, func, insert, select, update

from riskguard.console.roles import can
from riskguard.errors import Forbidden, RiskguardError, ValidationFailed
from riskguard.privacy.cipher import FieldCipher, is_sealed
from riskguard.privacy.settings import working_hours
from riskguard.privacy.tables import privacy_alerts, privacy_canaries, privacy_reveal_counts, privacy_throttles
from riskguard.store import audit
from riskguard.store.tables import utcnow

#: the role an API client reveals under (the HTTP layer grants it to keys with the ``reveal`` scope)
API_ROLE = "api:reveal"
#: roles that may lift another actor's throttle
LIFT_ROLES = ("lead", "admin")
PURPOSE_MAX = 200


class Throttled(RiskguardError):
    """The actor's reveals are suspended after anomalous access (HTTP 429)."""

    status = 429
    code = "reveal_throttled"


@dataclass(frozen=True)
class RevealPolicy:
    hourly_floor: int = 30
    baseline_factor: float = 4.0
    baseline_days: int = 14
    bulk_threshold: int = 100
    offhours_limit: int = 10
    working_hours: str = "08:00-20:00"
    timezone: str = "UTC"
    cooldown_minutes: float = 60.0

    @classmethod
    def from_settings(cls, settings: Any) -> RevealPolicy:
        return cls(
            hourly_floor=settings.reveal_hourly_floor,
            baseline_factor=settings.reveal_baseline_factor,
            baseline_days=settings.reveal_baseline_days,
            bulk_threshold=settings.reveal_bulk_threshold,
            offhours_limit=settings.reveal_offhours_limit,
            working_hours=settings.reveal_working_hours,
            timezone=settings.reveal_timezone,
            cooldown_minutes=settings.reveal_cooldown_minutes,
        )


def may_reveal(role: str | None) -> bool:
    return role == API_ROLE or can(role, "pii.reveal")


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _key(*parts: str) -> str:
    return parts[0] + ":" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


class Revealer:
    def __init__(
        self,
        engine: Engine,
        cipher: FieldCipher,
        policy: RevealPolicy | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._cipher = cipher
        self.policy = policy or RevealPolicy()
        self._clock = clock
        self._zone = ZoneInfo(self.policy.timezone)
        self._hours = working_hours(self.policy.working_hours)
        from riskguard.store.alerts import AlertRepository  # store/alerts.py seals evidence through this package

        self.alerts = AlertRepository(engine, privacy_alerts, noun="privacy alert", audit_action="privacy_alert.status")

    # ------------------------------------------------------------------ the reveal itself
    def reveal(self, actor: str, role: str | None, kind: str, value: str, *, purpose: str, target: str) -> str:
        """The plaintext of ``value`` (sealed or already opened by the store) for ``actor`` in ``role``."""
        return self.reveal_many(actor, role, [(kind, value)], purpose=purpose, target=target)[0]

    def reveal_many(
        self, actor: str, role: str | None, items: Sequence[tuple[str, str]], *, purpose: str, target: str
    ) -> list[str]:
        """Plaintexts of ``items`` ((kind, value) pairs) in one audited request (an export, a case view)."""
        purpose = (purpose or "").strip()
        if not purpose:
            raise ValidationFailed([{"loc": ["purpose"], "type": "missing", "msg": "a reveal needs a purpose"}])
        purpose = purpose[:PURPOSE_MAX]
        plain = [self._cipher.open(value) if is_sealed(value) else value for _, value in items]
        tokens = [self._cipher.token(kind, text) for (kind, _), text in zip(items, plain, strict=True)]
        kinds = sorted({kind for kind, _ in items})
        details: dict[str, Any] = {"kinds": kinds, "count": len(items), "purpose": purpose, "role": role}
        details["tokens"] = tokens[:100]
        now = self._clock()
        with self._engine.begin() as connection:
            if not may_reveal(role):
                self._audit(connection, actor, target, details, "forbidden", now)
                refused: Exception = Forbidden(f"role {role!r} may not reveal personal data")
            else:
                refused = self._check(connection, actor, role, target, details, len(items), now)
        if refused is not None:
            raise refused
        return plain

    def _check(
        self,
        connection: Connection,
        actor: str,
        role: str | None,
        target: str,
        details: dict[str, Any],
        n: int,
        now: datetime,
    ) -> Exception | None:
        """Refusal (throttle, bulk, volume, off-hours) or None; records the reveal when allowed."""
        throttle = self._active_throttle(connection, actor, now)
        if throttle is not None:
            self._audit(connection, actor, target, details, "throttled", now)
            return Throttled(
                f"reveals by {actor!r} are suspended until {throttle['until']:%Y-%m-%d %H:%M} UTC "
                f"({throttle['reason']})"
            )
        hour = _hour(now)
        this_hour = self._count(connection, actor, hour)
        trailing = this_hour + self._count(connection, actor, hour - timedelta(hours=1))
        limit, baseline = self._limit(connection, actor, hour)
        anomaly: tuple[str, dict[str, Any]] | None = None
        if n >= self.policy.bulk_threshold:
            anomaly = ("bulk", {"requested": n, "threshold": self.policy.bulk_threshold})
        elif this_hour + n > limit:
            anomaly = ("volume", {"this_hour": this_hour + n, "limit": limit, "baseline": baseline})
        elif not self._working(now) and trailing + n > self.policy.offhours_limit:
            local = now.astimezone(self._zone)
            anomaly = (
                "off_hours",
                {
                    "last_hour": trailing + n,
                    "limit": self.policy.offhours_limit,
                    "local_time": f"{local:%H:%M} {self.policy.timezone}",
                },
            )
        if anomaly is not None:
            kind, facts = anomaly
            alert_id = self._alert(connection, actor, role, kind, target, details, facts, hour, now)
            until = now + timedelta(minutes=self.policy.cooldown_minutes)
            connection.execute(
                insert(privacy_throttles).values(actor=actor, reason=kind, since=now, until=until, alert_id=alert_id)
            )
            self._audit(connection, actor, target, {**details, "anomaly": kind}, "refused", now)
            return Throttled(
                f"reveal refused: {kind.replace('_', '-')} access by {actor!r}; a lead or admin may lift the throttle"
            )
        self._bump(connection, actor, hour, n)
        canaries = self._canaries(connection, details["tokens"], target)
        if canaries:
            self._alert(
                connection, actor, role, "canary", target, details, {"canaries": canaries}, hour, now, accounts=canaries
            )
        self._audit(connection, actor, target, details, "revealed", now)
        return None

    # ------------------------------------------------------------------ throttles
    def throttled(self, actor: str) -> dict[str, Any] | None:
        with self._engine.connect() as connection:
            return self._active_throttle(connection, actor, self._clock())

    def lift(self, actor: str, *, by: str, role: str | None) -> int:
        """Ends ``actor``'s active throttles (lead/admin only, audited); returns how many."""
        if role not in LIFT_ROLES:
            raise Forbidden(f"role {role!r} may not lift reveal throttles (lead or admin)")
        now = self._clock()
        with self._engine.begin() as connection:
            lifted = connection.execute(
                update(privacy_throttles)
                .where(
                    privacy_throttles.c.actor == actor,
                    privacy_throttles.c.until > now,
                    privacy_throttles.c.lifted_at.is_(None),
                )
                .values(lifted_at=now, lifted_by=by)
            ).rowcount
            audit.record(connection, by, "pii.throttle_lift", actor, {"lifted": lifted, "role": role})
        return int(lifted or 0)

    @staticmethod
    def _active_throttle(connection: Connection, actor: str, now: datetime) -> dict[str, Any] | None:
        row = connection.execute(
            select(privacy_throttles)
            .where(
                privacy_throttles.c.actor == actor,
                privacy_throttles.c.until > now,
                privacy_throttles.c.lifted_at.is_(None),
            )
            .order_by(privacy_throttles.c.until.desc())
            .limit(1)
        ).first()
        return None if row is None else row._asdict()

    # ------------------------------------------------------------------ counting
    @staticmethod
    def _count(connection: Connection, actor: str, hour: datetime) -> int:
        found = connection.execute(
            select(privacy_reveal_counts.c.count).where(
                privacy_reveal_counts.c.actor == actor, privacy_reveal_counts.c.hour == hour
            )
        ).scalar()
        return int(found or 0)

    def _limit(self, connection: Connection, actor: str, hour: datetime) -> tuple[int, float]:
        since = hour - timedelta(days=self.policy.baseline_days)
        baseline = connection.execute(
            select(func.avg(privacy_reveal_counts.c.count)).where(
                privacy_reveal_counts.c.actor == actor,
                privacy_reveal_counts.c.hour >= since,
                privacy_reveal_counts.c.hour < hour,
            )
        ).scalar()
        mean = float(baseline or 0.0)
        return max(self.policy.hourly_floor, int(self.policy.baseline_factor * mean)), round(mean, 2)

    @staticmethod
    def _bump(connection: Connection, actor: str, hour: datetime, n: int) -> None:
        changed = connection.execute(
            update(privacy_reveal_counts)
            .where(privacy_reveal_counts.c.actor == actor, privacy_reveal_counts.c.hour == hour)
            .values(count=privacy_reveal_counts.c.count + n)
        ).rowcount
        if not changed:
            connection.execute(insert(privacy_reveal_counts).values(actor=actor, hour=hour, count=n))

    def _working(self, now: datetime) -> bool:
        local = now.astimezone(self._zone).time()
        start, end = self._hours
        return start <= local < end if start <= end else (local >= start or local < end)

    # ------------------------------------------------------------------ canaries, alerts, audit
    @staticmethod
    def _canaries(connection: Connection, tokens: list[str], target: str) -> list[str]:
        """Canary accounts among the revealed tokens and the target (``account:<id>`` or a bare id)."""
        account = target.split(":", 1)[1] if target.startswith("account:") else target
        rows = connection.execute(
            select(privacy_canaries.c.account_id).where(
                (privacy_canaries.c.token.in_(tokens)) | (privacy_canaries.c.account_id == account)
            )
        ).scalars()
        return sorted(set(rows))

    def _alert(
        self,
        connection: Connection,
        actor: str,
        role: str | None,
        kind: str,
        target: str,
        details: dict[str, Any],
        facts: dict[str, Any],
        hour: datetime,
        now: datetime,
        accounts: list[str] | None = None,
    ) -> int:
        evidence = {
            "actor": actor,
            "role": role,
            "target": target,
            "purpose": details["purpose"],
            "kinds": details["kinds"],
            "at": now.isoformat(),
            **facts,
        }
        score = {"canary": 1.0, "bulk": 0.9, "volume": 0.8, "off_hours": 0.7}[kind]
        key = _key(kind, actor, hour.isoformat(), target if kind == "canary" else "")
        self.alerts.upsert_in(
            connection,
            [{"key": key, "kind": kind, "score": score, "accounts": accounts or [], "evidence": evidence}],
            now,
        )
        return int(connection.execute(select(privacy_alerts.c.id).where(privacy_alerts.c.key == key)).scalar_one())

    @staticmethod
    def _audit(
        connection: Connection, actor: str, target: str, details: dict[str, Any], result: str, now: datetime
    ) -> None:
        audit.record(connection, actor, "pii.reveal", target, {**details, "result": result})
