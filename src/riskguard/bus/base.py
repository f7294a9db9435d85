"""The one small interface every event bus implements, and the types that cross it.

A bus carries messages (an id — the event id — and bytes) from publishers to consumer groups. Delivery is
at least once: a group member fetches messages, processes them, and acknowledges them; a message that is
not acknowledged within ``redeliver_s`` is handed out again (to any member of the group); a message that
was handed out ``max_deliveries`` times without an acknowledgement goes to the group's dead-letter stream
instead of being handed out once more. ``lag`` says how far a group is behind.

Implementations: ``RedisStreamBus`` (Redis Streams, the default) and ``JetStreamBus`` (NATS JetStream,
for a replicated bus). Both are synchronous, so that the outbox relay and the consumers are plain
threads and processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from riskguard.errors import Unavailable


class BusUnavailable(Unavailable):
    """The bus server could not be reached or refused the operation; nothing was acknowledged."""


@dataclass
class Delivery:
    """One message handed to a group member: ``deliveries`` counts this hand-out (1 = first time)."""

    id: str
    body: bytes
    deliveries: int
    handle: Any = field(default=None, repr=False)  # what the implementation needs to acknowledge it


@dataclass(frozen=True)
class Lag:
    """How far a consumer group is behind: ``waiting`` messages not yet handed out, ``in_flight`` handed
    out but not acknowledged, ``dead`` in the dead-letter stream."""

    group: str
    waiting: int
    in_flight: int
    dead: int

    @property
    def total(self) -> int:
        return self.waiting + self.in_flight

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "waiting": self.waiting, "in_flight": self.in_flight, "dead": self.dead}


@dataclass(frozen=True)
class DeadLetter:
    id: str
    body: bytes
    deliveries: int
    reason: str


class Bus(Protocol):
    """What riskguard needs of a message bus; see the module docstring for the delivery contract."""

    name: str

    def publish(self, messages: list[tuple[str, bytes]]) -> None:
        """Appends ``(id, body)`` messages durably, in order; raises BusUnavailable if it could not."""

    def fetch(self, group: str, member: str, count: int, block_ms: int) -> list[Delivery]:
        """Up to ``count`` messages for ``member`` of ``group``: first those whose earlier hand-out timed
        out (messages that reached ``max_deliveries`` go to the dead-letter stream instead), then new ones,
        waiting up to ``block_ms`` when there are none. Creates the group (from the stream's start) when new."""

    def ack(self, group: str, deliveries: list[Delivery]) -> None:
        """Marks the deliveries processed: they are never handed out to the group again."""

    def dead_letter(self, group: str, delivery: Delivery, reason: str) -> None:
        """Moves one delivery to the group's dead-letter stream (with ``reason``) and acknowledges it."""

    def dead_letters(self, group: str, limit: int = 100) -> list[DeadLetter]:
        """The group's dead-lettered messages, oldest first."""

    def lag(self, group: str) -> Lag:
        """The group's backlog (zero waiting for a group that does not exist yet: it will start from the
        beginning of the stream, so ``waiting`` is then the stream's length)."""

    def groups(self) -> list[str]:
        """The consumer groups that exist on the stream."""

    def reset(self) -> None:
        """Deletes the stream, its groups and dead letters (tests and benchmarks only)."""

    def close(self) -> None: ...
