"""The ordered takeover sequence: a new device, then a password / phone / e-mail change, then money out.

Window features count co-occurrence ("a password change in the last day"); this detector follows the
order in event time, per account, so a transfer is stage 3 only when a device the account had not used
came first, a credential change came after it, and the transfer came after that — all inside
``window``. It is written by hand because it is a small state machine over riskguard's own events; no
maintained library does complex-event detection over this envelope without a stream processor.

Per account the state holds the devices seen within ``memory`` (last use, at most ``MAX_DEVICES``), the
open sequence (when the new device appeared, when and what was changed) and the variables given to the
last ``MAX_RECENT`` event ids, so that the same event id is never folded twice and gets the same
variables again (idempotent on event id, across retries and workers).

Two stores share :func:`step`: :class:`MemorySequenceStore` (one process; rebuilt from the event log on
start) and :class:`RedisSequenceStore` (one key per account, updated under WATCH/MULTI so that workers
sharing a Redis fold each event exactly once and in a consistent order).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from riskguard.events.schema import Event

MAX_DEVICES = 16
MAX_RECENT = 8
#: Event types that move money out of the account: stage 3 of the sequence.
MONEY_OUT = frozenset({"transfer", "withdrawal", "payment"})
#: profile_change ``attributes.field`` values that are credentials (who gets the one-time codes).
CREDENTIAL_FIELDS = {"phone": "phone", "mobile": "phone", "email": "email"}


class AccountState(msgspec.Struct, array_like=True):
    devices: dict[str, list[int]] = {}  # device id → [first use, last use (ms, event time), 1 if first seen at sign-up]
    new_device_ms: int = -1  # when the open sequence's new device was first used
    change_ms: int = -1  # the latest credential change after it
    changed: list[str] = []
    recent: list[tuple[str, list[Any]]] = []  # (event id, the variables it was given)


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(AccountState).decode
_NAMES = (
    "takeover.new_device",
    "takeover.sequence_stage",
    "takeover.seconds_since_new_device",
    "takeover.seconds_since_change",
    "takeover.changed",
)
QUIET: dict[str, Any] = dict(zip(_NAMES, (False, 0, -1, -1, []), strict=True))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def credential_change(event: Event) -> str | None:
    """What this event changes that an attacker needs to keep the account: a password, or the phone or
    e-mail address one-time codes go to (``profile_change`` with ``attributes.field``)."""
    if event.type == "password_change":
        return "password"
    if event.type == "profile_change":
        field = event.attributes.get("field")
        if isinstance(field, str):
            return CREDENTIAL_FIELDS.get(field.lower())
    return None


def _failed_login(event: Event) -> bool:
    return event.type == "login" and event.attributes.get("success") is False


def step(
    state: AccountState | None, event: Event, *, window_ms: int, memory_ms: int
) -> tuple[dict[str, Any], AccountState | None]:
    """The variables of ``event`` and the account's state after it (None: nothing to store).

    A device is *new* while its first use by the account is less than ``window`` old, unless it was the
    sign-up device, when the account had used another device before it — or, for an account with no
    device history yet, once it is bound (``device_bind``). The sequence opens at the new device's first
    use; a credential change counts only after that, and money out only after the change (event time,
    so a late-arriving event never advances it). A failed login proves no access: it neither introduces
    a device nor advances the sequence.
    """
    state = state if state is not None else AccountState()
    for event_id, values in state.recent:
        if event_id == event.event_id:
            return dict(zip(_NAMES, values, strict=True)), None
    t = _ms(event.occurred_at)
    devices = {d: list(v) for d, v in state.devices.items() if t - v[1] <= memory_ms}
    device = event.device_id
    counts = not _failed_login(event)
    new_device = False
    first = t
    if counts and device is not None:
        entry = devices.get(device)
        first = min(entry[0], t) if entry else t
        at_signup = entry[2] if entry else int(event.type == "signup")
        history = any(v[0] < first for d, v in devices.items() if d != device)
        new_device = bool(0 <= t - first <= window_ms and not at_signup and (history or event.type == "device_bind"))
        devices[device] = [first, max(t, entry[1]) if entry else t, at_signup]
        if len(devices) > MAX_DEVICES:
            devices = dict(sorted(devices.items(), key=lambda item: item[1][1])[-MAX_DEVICES:])
    start = state.new_device_ms if state.new_device_ms >= 0 and 0 <= t - state.new_device_ms <= window_ms else -1
    change_ms = state.change_ms if start >= 0 and state.change_ms >= start else -1
    changed = list(state.changed) if change_ms >= 0 else []
    if start < 0 and new_device:
        start = first
    kind = credential_change(event) if counts else None
    if kind is not None and start >= 0 and t >= start:
        change_ms = max(change_ms, t)
        if kind not in changed:
            changed.append(kind)
    if start < 0:
        stage = 0
    elif change_ms < 0:
        stage = 1
    elif event.type in MONEY_OUT and kind is None and t >= change_ms:
        stage = 3
    else:
        stage = 2
    values = [
        new_device,
        stage,
        (t - start) // 1000 if start >= 0 else -1,
        (t - change_ms) // 1000 if change_ms >= 0 else -1,
        list(changed),
    ]
    recent = [*state.recent[-(MAX_RECENT - 1) :], (event.event_id, values)]
    if 0 <= t < state.new_device_ms:  # a late event from before the open sequence leaves it as it is
        after = AccountState(devices, state.new_device_ms, state.change_ms, list(state.changed), recent)
    else:
        after = AccountState(devices, start, change_ms if start >= 0 else -1, changed, recent)
    return dict(zip(_NAMES, values, strict=True)), after


class MemorySequenceStore:
    """Sequence state in this process (the memory feature back end's companion)."""

    def __init__(self, *, window_s: float, memory_s: float) -> None:
        self.window_ms = int(window_s * 1000)
        self.memory_ms = int(memory_s * 1000)
        self._states: dict[str, AccountState] = {}
        self._lock = threading.Lock()

    def evaluate(self, event: Event, *, observe: bool = True) -> dict[str, Any]:
        with self._lock:
            values, after = step(
                self._states.get(event.account_id), event, window_ms=self.window_ms, memory_ms=self.memory_ms
            )
            if observe and after is not None:
                self._states[event.account_id] = after
        return values

    def rebuild(self, events: Iterable[Event]) -> int:
        """Folds logged events (in event time) into the state; returns how many."""
        count = 0
        for event in events:
            self.evaluate(event)
            count += 1
        return count

    def accounts(self) -> int:
        return len(self._states)

    def close(self) -> None:
        self._states.clear()


class RedisSequenceStore:
    """Sequence state in Redis, one msgpack value per account under ``{namespace}:ats:<account>``, kept
    ``memory`` after the account's last event. Each event is folded under WATCH/MULTI: a worker whose
    account key changed meanwhile reads it again, so concurrent workers never lose each other's steps."""

    RETRIES = 20

    def __init__(self, client: Any, *, namespace: str, window_s: float, memory_s: float) -> None:
        self.client = client
        self.prefix = "{" + namespace + "}:ats:"
        self.window_ms = int(window_s * 1000)
        self.memory_ms = int(memory_s * 1000)

    def evaluate(self, event: Event, *, observe: bool = True) -> dict[str, Any]:
        import redis

        key = self.prefix + event.account_id
        if not observe:
            raw = self.client.get(key)
            values, _ = step(_decode(raw) if raw else None, event, window_ms=self.window_ms, memory_ms=self.memory_ms)
            return values
        for _ in range(self.RETRIES):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    values, after = step(
                        _decode(raw) if raw else None, event, window_ms=self.window_ms, memory_ms=self.memory_ms
                    )
                    if after is None:
                        pipe.unwatch()
                        return values
                    pipe.multi()
                    pipe.set(key, _encode(after), px=self.memory_ms)
                    pipe.execute()
                    return values
                except redis.WatchError:
                    continue
        raise RuntimeError(f"takeover state of one account changed {self.RETRIES} times during one event")

    def rebuild(self, events: Iterable[Event]) -> int:
        return 0  # the state outlives the process in Redis

    def accounts(self) -> int:
        return sum(1 for _ in self.client.scan_iter(match=self.prefix + "*", count=1000))

    def clear(self) -> int:
        keys = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
        return int(self.client.delete(*keys)) if keys else 0

    def close(self) -> None:
        pass
