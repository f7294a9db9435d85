"""One decision per event id across worker processes: a claim in Redis taken before deciding.

On one worker the decision lock and the in-flight table make a repeated event id wait for the first
decision. Across workers nothing in process memory is shared, so before deciding, a worker takes the
event's claim — ``SET {ns}:claim:<event_id> <digest>:<worker> NX PX ttl``, one round trip. The worker that
sets it decides (and folds the event into the shared features); a worker that finds it set either refuses
(409, the claim holds another content digest: the id was reused for a different event) or becomes a
*follower*: it answers with the holder's decision once that is stored. Followers are watched by one
thread that looks each up in the store every few milliseconds; when the holder gives its claim back
(its commit failed) or the wait exceeds the commit timeout, the follower's caller gets 503 and retries
with the same event id — by then the claim is free or the decision is stored.

The claim expires after ``claim_ttl_s``: a worker that dies between claiming and committing blocks its
event id for at most that long. When Redis cannot be reached the claim fails open (the worker decides
anyway, as a lone worker would; the decisions table keeps the first decision stored) and
``riskguard_claim_errors`` counts it.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis
from prometheus_client import CollectorRegistry, Counter

from riskguard.errors import Conflict, Unavailable
from riskguard.store.writer import Ticket

log = logging.getLogger("riskguard.scale.claims")

# deletes the claim only while it is still this worker's (a late release must not free a successor's)
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(eq=False)
class Follower:
    """A caller waiting for another worker's decision: ``body`` is filled in before ``ticket`` finishes."""

    event_id: str
    deadline: float
    body: dict[str, Any] = field(default_factory=dict)
    ticket: Ticket = field(default_factory=Ticket)


class DecisionClaims:
    """Claims on event ids in Redis, shared by every worker of one installation (one namespace)."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        *,
        ttl_s: float,
        wait_s: float,
        stored: Any,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """``stored(event_id) -> str | None`` reads a stored decision body (EventRepository.decision_body)."""
        self.client = client
        self.prefix = "{" + namespace + "}:claim:"
        self.ttl_ms = int(ttl_s * 1000)
        self.wait_s = wait_s
        self.worker = secrets.token_hex(6)  # this process's mark in the claims it holds
        self._stored = stored
        self._release = client.register_script(_RELEASE)
        self._followers: list[Follower] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._last_error_log = 0.0
        self.errors = Counter(
            "riskguard_claim_errors",
            "Claims that could not be taken (Redis unreachable; decided anyway)",
            registry=registry,
        )
        self.followed = Counter(
            "riskguard_claim_followers",
            "Requests answered with another worker's decision of the same event id",
            registry=registry,
        )

    def _value(self, digest: str) -> str:
        return f"{digest}:{self.worker}"

    def claim(self, event_id: str, digest: str) -> Follower | None:
        """Takes the claim on ``event_id``: None when this worker now holds it (decide), a Follower when
        another worker is deciding the same event; raises Conflict when the claim holds another digest."""
        key = self.prefix + event_id
        held = None
        try:
            for _ in range(3):  # a claim that expires or is released between the two calls: try again
                if self.client.set(key, self._value(digest), nx=True, px=self.ttl_ms):
                    return None
                held = self.client.get(key)
                if held is not None:
                    break
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        if held is None:  # released three times in a row: decide; the store keeps one decision
            return None
        held_digest, _, holder = held.decode().partition(":")
        if held_digest != digest:
            raise Conflict(
                f"event_id {event_id!r} was already used for a different event; "
                "event ids are idempotency keys and must not be reused"
            )
        if holder == self.worker:  # ours from an earlier attempt whose records are settled: decide again
            return None
        self.followed.inc()
        follower = Follower(event_id, time.monotonic() + self.wait_s)
        with self._cond:
            self._followers.append(follower)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="riskguard-claim-followers", daemon=True)
                self._thread.start()
            self._cond.notify()
        return follower

    def release(self, event_id: str, digest: str) -> None:
        """Gives the claim back (this worker's decision could not be recorded), so a retry can decide."""
        try:
            self._release(keys=[self.prefix + event_id], args=[self._value(digest)])
        except redis.RedisError as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.errors.inc()
        now = time.monotonic()
        if now - self._last_error_log > 10:
            self._last_error_log = now
            log.warning("decision claims unavailable (%s); deciding without a claim", exc)

    def _watch(self) -> None:
        pause = 0.002
        while True:
            with self._cond:
                while not self._followers and not self._closed:
                    self._cond.wait()
                    pause = 0.002
                if self._closed:
                    waiting, self._followers = self._followers, []
                    for follower in waiting:
                        follower.ticket._finish(Unavailable("the service is shutting down; retry"))
                    return
                waiting = list(self._followers)
            settled = [follower for follower in waiting if self._settle(follower)]
            with self._cond:
                self._followers = [f for f in self._followers if f not in settled]
            time.sleep(pause)
            pause = min(pause * 2, 0.025)

    def _settle(self, follower: Follower) -> bool:
        """Finishes the follower when the decision is stored, the holder gave up, or time ran out."""
        try:
            stored = self._stored(follower.event_id)
        except Exception as exc:  # the store is failing: the caller retries
            follower.ticket._finish(Unavailable(f"the decision could not be read ({exc}); retry"))
            return True
        if stored is not None:
            follower.body.update(msgspec.json.decode(stored))
            follower.ticket._finish(None)
            return True
        if time.monotonic() > follower.deadline:
            follower.ticket._finish(Unavailable("another worker's decision was not recorded in time; retry"))
            return True
        try:
            gone = self.client.exists(self.prefix + follower.event_id) == 0
        except redis.RedisError:
            gone = False
        if gone and self._stored(follower.event_id) is None:  # released or expired without a decision
            follower.ticket._finish(Unavailable("the first attempt of this event failed; retry"))
            return True
        return False

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(2)


def open_claims(
    settings: Any, feature_client: redis.Redis | None, stored: Any, registry: CollectorRegistry | None = None
) -> DecisionClaims | None:
    """The claims ``RISKGUARD_DECISION_CLAIMS`` chooses: ``auto`` takes them wherever features live in Redis
    (state shared by workers means workers may share event ids too), ``redis`` always, ``off`` never."""
    mode = settings.decision_claims
    if mode == "off" or (mode == "auto" and settings.feature_backend != "redis"):
        return None
    client = feature_client or redis.Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    return DecisionClaims(
        client,
        settings.feature_namespace,
        ttl_s=settings.claim_ttl_s,
        wait_s=settings.commit_timeout_ms / 1000,
        stored=stored,
        registry=registry,
    )
