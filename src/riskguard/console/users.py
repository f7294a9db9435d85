"""Console users: password hashes, lockout after repeated failures, server-side sessions.

Passwords are hashed with ``hashlib.scrypt`` (RFC 7914) from the standard library: memory-hard like
argon2id, so guessing on GPUs is expensive, and it adds no dependency (argon2 needs a C extension). The
parameters (n=2^14, r=8, p=1: 16 MiB and ~50 ms a check) are stored in each hash, so they can be raised
later without invalidating existing passwords.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from riskguard.console.roles import check_role
from riskguard.console.tables import console_sessions, console_users
from riskguard.errors import Conflict, NotFound, ValidationFailed
from riskguard.store import audit
from riskguard.store.tables import utcnow

USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")
MIN_PASSWORD = 10
_N, _R, _P = 2**14, 8, 1
# checked against when the user does not exist, so a wrong name costs as long as a wrong password
_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + base64.b64encode(bytes(32)).decode()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def new_password() -> str:
    """A random password for first runs and resets: 16 URL-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


def check_username(name: str) -> str:
    if not USERNAME.match(name):
        raise ValidationFailed(
            [
                {
                    "loc": ["body", "username"],
                    "type": "value_error",
                    "msg": "user names are 2-64 lower-case letters, digits, '_', '.' or '-', starting with a letter",
                }
            ]
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            [{"loc": ["body", "password"], "type": "too_short", "msg": f"at least {MIN_PASSWORD} characters"}]
        )
    return password


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    csrf: str
    locale: str | None
    expires_at: datetime


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: ``token`` on success, else ``reason`` (bad, locked, disabled)."""

    token: str | None = None
    reason: str | None = None
    locked_until: datetime | None = None


class UserRepository:
    def __init__(
        self,
        engine: Engine,
        *,
        idle: timedelta = timedelta(minutes=30),
        max_age: timedelta = timedelta(hours=12),
        lockout_failures: int = 5,
        lockout: timedelta = timedelta(minutes=15),
    ) -> None:
        self._engine = engine
        self.idle, self.max_age = idle, max_age
        self.lockout_failures, self.lockout = lockout_failures, lockout

    @classmethod
    def for_settings(cls, engine: Engine, settings: Any) -> UserRepository:
        return cls(
            engine,
            idle=timedelta(minutes=settings.console_session_idle_minutes),
            max_age=timedelta(hours=settings.console_session_max_hours),
            lockout_failures=settings.console_lockout_failures,
            lockout=timedelta(minutes=settings.console_lockout_minutes),
        )

    # ------------------------------------------------------------------ users
    def count(self) -> int:
        with self._engine.connect() as connection:
            return len(connection.execute(select(console_users.c.username)).all())

    def add(self, username: str, role: str, password: str, *, actor: str) -> None:
        check_username(username)
        check_password(password)
        check_role(role)
        now = utcnow()
        with self._engine.begin() as connection:
            if connection.execute(select(console_users.c.username).where(console_users.c.username == username)).first():
                raise Conflict(f"console user {username!r} already exists")
            connection.execute(
                insert(console_users).values(
                    username=username,
                    role=role,
                    password_hash=hash_password(password),
                    disabled=False,
                    failed_logins=0,
                    locked_until=None,
                    locale=None,
                    created_at=now,
                    created_by=actor,
                    password_changed_at=now,
                    last_login_at=None,
                )
            )
            audit.record(connection, actor, "console.user.add", username, {"role": role})

    def ensure_admin(self) -> str | None:
        """On an installation with no console user, creates ``admin`` with a random password and returns
        the password (shown once); None when users exist."""
        if self.count():
            return None
        password = new_password()
        self.add("admin", "admin", password, actor="system")
        return password

    def get(self, username: str) -> dict[str, Any]:
        with self._engine.connect() as connection:
            row = connection.execute(select(console_users).where(console_users.c.username == username)).first()
        if row is None:
            raise NotFound(f"no console user {username!r}")
        return {k: v for k, v in row._asdict().items() if k != "password_hash"}

    def all(self) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(console_users).order_by(console_users.c.username)).all()
        return [{k: v for k, v in row._asdict().items() if k != "password_hash"} for row in rows]

    def _change(self, username: str, values: dict[str, Any], action: str, details: dict[str, Any], actor: str) -> None:
        with self._engine.begin() as connection:
            result = connection.execute(
                update(console_users).where(console_users.c.username == username).values(**values)
            )
            if not result.rowcount:
                raise NotFound(f"no console user {username!r}")
            if "disabled" in values or "password_hash" in values or "role" in values:
                connection.execute(delete(console_sessions).where(console_sessions.c.username == username))
            audit.record(connection, actor, action, username, details)

    def set_disabled(self, username: str, disabled: bool, *, actor: str) -> None:
        """Disabling ends the user's sessions at once."""
        self._change(
            username,
            {"disabled": disabled},
            "console.user.disable" if disabled else "console.user.enable",
            {},
            actor,
        )

    def set_password(self, username: str, password: str, *, actor: str) -> None:
        """A new password also clears a lockout and ends the user's sessions."""
        check_password(password)
        self._change(
            username,
            {
                "password_hash": hash_password(password),
                "password_changed_at": utcnow(),
                "failed_logins": 0,
                "locked_until": None,
            },
            "console.user.password",
            {},
            actor,
        )

    def set_role(self, username: str, role: str, *, actor: str) -> None:
        check_role(role)
        self._change(username, {"role": role}, "console.user.role", {"role": role}, actor)

    def set_locale(self, username: str, locale: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(update(console_users).where(console_users.c.username == username).values(locale=locale))

    # ------------------------------------------------------------------ sign-in and sessions
    def sign_in(self, username: str, password: str, *, source: str = "") -> SignIn:
        """Checks a password; after ``lockout_failures`` wrong ones in a row the user is locked for
        ``lockout`` (even the right password is refused then). Every attempt is audited."""
        now = utcnow()
        with self._engine.connect() as connection:
            row = connection.execute(select(console_users).where(console_users.c.username == username)).first()
        if row is None:
            verify_password(password, _DUMMY)
            self._audit("console.signin.failed", username, {"reason": "unknown", "source": source})
            return SignIn(reason="bad")
        if row.locked_until is not None and row.locked_until > now:
            self._audit("console.signin.locked", username, {"source": source})
            return SignIn(reason="locked", locked_until=row.locked_until)
        good = verify_password(password, row.password_hash)
        if not good:
            failures = (0 if row.locked_until is not None else row.failed_logins) + 1
            locked = now + self.lockout if failures >= self.lockout_failures else None
            with self._engine.begin() as connection:
                connection.execute(
                    update(console_users)
                    .where(console_users.c.username == username)
                    .values(failed_logins=0 if locked else failures, locked_until=locked)
                )
                audit.record(
                    connection,
                    username,
                    "console.signin.failed",
                    username,
                    {"failures": failures, "locked_until": locked, "source": source},
                )
            return SignIn(reason="locked" if locked else "bad", locked_until=locked)
        if row.disabled:
            self._audit("console.signin.disabled", username, {"source": source})
            return SignIn(reason="disabled")
        token = secrets.token_urlsafe(32)
        with self._engine.begin() as connection:
            connection.execute(
                update(console_users)
                .where(console_users.c.username == username)
                .values(failed_logins=0, locked_until=None, last_login_at=now)
            )
            connection.execute(
                insert(console_sessions).values(
                    token_hash=_hash_token(token),
                    username=username,
                    csrf=secrets.token_urlsafe(32),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self.max_age,
                )
            )
            connection.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
            audit.record(connection, username, "console.signin", username, {"source": source})
        return SignIn(token=token)

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie's token, or None (unknown, expired, idle too long, user disabled).
        A found session's idle clock restarts."""
        if not token:
            return None
        now = utcnow()
        key = _hash_token(token)
        with self._engine.connect() as connection:
            row = connection.execute(
                select(console_sessions, console_users.c.role, console_users.c.disabled, console_users.c.locale)
                .join(console_users, console_users.c.username == console_sessions.c.username)
                .where(console_sessions.c.token_hash == key)
            ).first()
        if row is None:
            return None
        if row.disabled or row.expires_at <= now or row.last_seen_at + self.idle <= now:
            self.sign_out(token)
            return None
        if now - row.last_seen_at > timedelta(seconds=30):  # one write a half-minute, not one per page
            with self._engine.begin() as connection:
                connection.execute(
                    update(console_sessions).where(console_sessions.c.token_hash == key).values(last_seen_at=now)
                )
        return Session(row.username, row.role, row.csrf, row.locale, row.expires_at)

    def sign_out(self, token: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(delete(console_sessions).where(console_sessions.c.token_hash == _hash_token(token)))

    def _audit(self, action: str, target: str, details: dict[str, Any]) -> None:
        with self._engine.begin() as connection:
            audit.record(connection, "console:anonymous", action, target, details)
