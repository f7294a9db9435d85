"""The Redis feature back end: bucketed window state in Redis, shared by every service worker.

Each event's reads and updates are ONE round trip: a server-side Lua script (features/redis_lua.py,
registered with redis-py's ``register_script`` and run by EVALSHA) receives all the event's feature keys,
buckets, kinds and contributions, decides late and duplicate against the shared watermark and duplicate
memory, reads every window aggregate, folds the event and evicts buckets too old to be read — atomically,
so that many workers folding at once keep the semantics of features/reference.py. Backfill pipelines a
fold-only script in batches; retraction is a script too.

Keys live under the namespace's hash tag (``{rg}:...``) so that one script may touch them all (on Redis
Cluster, a namespace therefore lives on one shard; partition by namespace to spread load). Every feature
key expires with its window: TTL = window + lateness + one bucket, renewed on each fold.

``distinct`` counts exactly (value, bucket) while a key holds at most ``distinct_exact_limit`` values; past
that it switches to one Redis HyperLogLog per bucket (PFADD), counted as the union of the window's buckets
(PFCOUNT over several keys): 0.81 % standard error.

Lua numbers are doubles: times (µs) and amounts (integer 1/10,000 units) are exact below 2^53, so a
window's sum must stay below 900,719,925,474 currency units.

A new feature's state is rebuilt from the event log by one worker only: ``backfill`` takes a SET NX lock
per signature (the others wait for it, then skip what it built); see docs/features.md ("The Redis back end").
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import msgspec
import redis

from riskguard.events.schema import Event
from riskguard.features.engine import (
    DEFAULT_DISTINCT_EXACT_LIMIT,
    KIND_CODES,
    Feature,
    FeatureEngine,
    Prepared,
)
from riskguard.features.published import PublishedIndex
from riskguard.features.redis_lua import BACKFILL, EXCHANGE, RELEASE, RETRACT
from riskguard.features.spec import FeatureSpec
from riskguard.rules.cel import Environment

log = logging.getLogger("riskguard")

NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: Events pipelined per round trip while backfilling.
BACKFILL_BATCH = 500
#: A backfill lock lives this long unless its holder renews it (each batch does): a crashed holder's lock
#: frees itself and a waiting worker takes over.
LOCK_MS = 60_000
LOCK_POLL_S = 0.05
#: A declared signature whose registry stamp trails the watermark by more than this (event time) was not
#: maintained for a while (retired, then declared again): its state is rebuilt from the log.
REBUILD_GAP_US = 300 * 1_000_000
SIGNATURE_ID_CHARS = 16
#: A process stamps its signatures in the registry when an event of a new minute (event time) folds.
STAMP_EVERY_US = 60 * 1_000_000
_pack = msgspec.msgpack.Encoder().encode


def signature_id(spec: FeatureSpec) -> str:
    """A short, stable id of what a feature computes (the same in every process and release)."""
    return hashlib.sha256(repr(spec.signature).encode()).hexdigest()[:SIGNATURE_ID_CHARS]


class _Plan(NamedTuple):
    """One declared feature, as the scripts receive it."""

    feature: Feature
    sid: str
    kind: int  # KIND_CODES
    g_us: int
    width: int
    ttl_ms: str
    hash_prefix: str
    zset_prefix: str | None  # distinct only
    sketch_prefix: str | None  # distinct only
    timed: bool  # first_seen / last_seen: the bucket value is the event's time


def _ceil_ms(us: int) -> int:
    return -(-us // 1000)


class RedisFeatureEngine(FeatureEngine):
    """Feature state in Redis (see the module docstring)."""

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        *,
        namespace: str = "rg",
        lateness_seconds: float = 3600.0,
        published: PublishedIndex | None = None,
        distinct_exact_limit: int = DEFAULT_DISTINCT_EXACT_LIMIT,
    ) -> None:
        super().__init__(
            lateness_seconds=lateness_seconds, published=published, distinct_exact_limit=distinct_exact_limit
        )
        if not NAMESPACE.match(namespace):
            raise ValueError(f"feature namespace {namespace!r}: use 1-64 letters, digits, '_', '.' or '-'")
        if isinstance(url_or_client, str):
            # a hung Redis stalls a decision at most this long (the features stage then fails open); a
            # ?socket_timeout= in the URL overrides it
            self.client = redis.Redis.from_url(url_or_client, socket_timeout=1.0, socket_connect_timeout=1.0)
            self._owns_client = True
        else:
            self.client = url_or_client
            self._owns_client = False
        self.namespace = namespace
        self.tag = "{" + namespace + "}"
        self._wm_key = self.tag + ":wm"
        self._seen_key = self.tag + ":seen"
        self._registry_key = self.tag + ":features"
        self._scratch_key = self.tag + ":scratch"
        self._exchange_script = self.client.register_script(EXCHANGE)
        self._backfill_script = self.client.register_script(BACKFILL)
        self._retract_script = self.client.register_script(RETRACT)
        self._release_script = self.client.register_script(RELEASE)
        self._plans: list[_Plan] = []
        self._sids: list[str] = []
        self._stamped = -1  # the event-time minute of this process's last registry stamp
        self._static = [str(self.lateness_us), "0", str(distinct_exact_limit)]
        #: Set while ``backfill`` waits for another worker's lock (operators and tests can watch it).
        self.backfill_waiting = threading.Event()

    # ------------------------------------------------------------------ declarations
    def _redeclare(self, features: list[Feature], previous: list[Feature | None]) -> None:
        """State lives in Redis under each signature's id: nothing to carry over, only the plan to build."""
        plans = []
        for feature in features:
            sid = signature_id(feature.spec)
            base = f"{self.tag}:{sid}:"
            distinct = feature.kind == "distinct"
            plans.append(
                _Plan(
                    feature=feature,
                    sid=sid,
                    kind=KIND_CODES[feature.kind],
                    g_us=feature.g_us,
                    width=feature.width,
                    ttl_ms=str(_ceil_ms((feature.width + 1) * feature.g_us + self.lateness_us)),
                    hash_prefix=base + "s:",
                    zset_prefix=base + "z:" if distinct else None,
                    sketch_prefix=base + "h:" if distinct else None,
                    timed=feature.kind in ("first_seen", "last_seen"),
                )
            )
        self._plans = plans
        self._sids = [p.sid for p in plans]
        self._stamped = -1
        namespace_ttl = max([int(p.ttl_ms) for p in plans] + [_ceil_ms(self.lateness_us) + 60_000])
        self._static[1] = str(namespace_ttl)

    def declare(self, specs: Iterable[FeatureSpec], event_env: Environment) -> list[FeatureSpec]:
        """As the base class; a feature new to this process is new only when Redis holds no maintained state
        for it (no registry stamp, or one trailing the watermark by more than REBUILD_GAP_US). Loads the
        scripts in the same round trip."""
        candidates = super().declare(specs, event_env)
        pipe = self.client.pipeline(transaction=False)
        for script in (self._exchange_script, self._backfill_script, self._retract_script, self._release_script):
            pipe.script_load(script.script)
        pipe.get(self._wm_key)
        sids = [signature_id(spec) for spec in candidates]
        if sids:
            pipe.hmget(self._registry_key, sids)
        replies = pipe.execute()
        if not sids:
            return []
        watermark = replies[4]
        stamps = replies[5]
        return [spec for spec, stamp in zip(candidates, stamps, strict=True) if not _fresh(stamp, watermark)]

    # ------------------------------------------------------------------ the per-event step
    def _exchange(self, prepared: Prepared, probes: list[Any], fold: bool) -> tuple[list[Any], bool]:
        t = str(prepared.t_us)
        t_us = prepared.t_us
        keys = [self._wm_key, self._seen_key, self._registry_key, self._scratch_key]
        entries: list[Any] = []
        entity_keys, items = prepared.keys, prepared.items
        sent: list[int] = []
        for plan in self._plans:
            feature = plan.feature
            key = entity_keys[feature.entity]
            if key is None:
                continue
            index = feature.index
            sent.append(index)
            keys.append(plan.hash_prefix + key)
            sketches = ""
            if plan.zset_prefix is not None:
                keys.append(plan.zset_prefix + key)
                sketches = f"{plan.sketch_prefix}{key}:"
            item = items[index]
            if item is None:
                flag, value = 0, ""
            else:
                flag = 1 if probes[index] is None else 2
                value = t if plan.timed else str(item)
            entries += (plan.kind, plan.g_us, plan.width, str(t_us // feature.g_us), flag, value, plan.ttl_ms, sketches)
        args = [t, prepared.event.event_id, "1" if fold else "0", *self._static, _pack(entries)]
        minute = t_us // STAMP_EVERY_US
        if fold and minute > self._stamped:
            args += self._sids
            self._stamped = minute
        reply = self._exchange_script(keys, args)
        duplicate, late = reply[0] == 1, reply[1] == 1
        aggregates: list[Any] = [None] * len(self.features)
        for index, value in zip(sent, reply[2:], strict=True):
            aggregates[index] = tuple(value) if isinstance(value, list) else value
        if late:
            self.late_events += 1
        elif duplicate:
            self.duplicate_events += 1
        return aggregates, duplicate

    @property
    def watermark(self) -> int | None:
        """The latest ``occurred_at`` folded by any worker of the namespace (µs), None before the first."""
        raw = self.client.get(self._wm_key)
        return None if raw is None else int(raw)

    # ------------------------------------------------------------------ retraction and rebuild
    def retract(self, event: Event, event_vars: dict[str, Any]) -> None:
        keys, entries = self._contributions(self.prepare(event, event_vars), self._plans, folding=False)
        self._retract_script([self._seen_key, *keys], [event.event_id, _pack(entries)])

    def backfill(self, specs: Iterable[FeatureSpec], events: Iterable[tuple[Event, dict[str, Any]]]) -> int:
        """Folds logged events into the given (new) features only, pipelined ``BACKFILL_BATCH`` events per
        round trip. One worker per signature does it: the others wait for its lock, then skip (returning 0
        when they built nothing). The builder first deletes whatever the namespace still held for the
        signature (a crashed builder's half, or state from before it was retired), so nothing counts twice.
        """
        wanted = {spec.signature for spec in specs}
        token = uuid.uuid4().hex
        owned = self._claim([p for p in self._plans if p.feature.spec.signature in wanted], token)
        if not owned:
            return 0
        locks = [self._lock_key(p.sid) for p in owned]
        try:
            self._delete_signatures({p.sid for p in owned})
            count = self._fold_history(owned, events, locks)
            watermark = self.client.get(self._wm_key)
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(self._registry_key, mapping={p.sid: watermark or b"0" for p in owned})
            pipe.pexpire(self._registry_key, int(self._static[1]))
            pipe.execute()
        finally:
            for lock in locks:
                self._release_script([lock], [token])
        return count

    def _fold_history(
        self, plans: list[_Plan], events: Iterable[tuple[Event, dict[str, Any]]], locks: list[str]
    ) -> int:
        limit = self._static[2]
        pipe = self.client.pipeline(transaction=False)
        pending = count = 0
        for event, event_vars in events:
            keys, entries = self._contributions(self.prepare(event, event_vars), plans, folding=True)
            count += 1
            if not entries:
                continue
            self._backfill_script(keys, [limit, _pack(entries)], client=pipe)
            pending += 1
            if pending >= BACKFILL_BATCH:
                for lock in locks:
                    pipe.pexpire(lock, LOCK_MS)
                pipe.execute()
                pending = 0
        if pending:
            pipe.execute()
        return count

    @staticmethod
    def _contributions(prepared: Prepared, plans: list[_Plan], *, folding: bool) -> tuple[list[str], list[Any]]:
        """The keys of every feature the event adds to, and per feature (kind, bucket, value), with the TTL
        and the sketch key prefix when ``folding``."""
        keys: list[str] = []
        entries: list[Any] = []
        t_us = prepared.t_us
        for plan in plans:
            feature = plan.feature
            key = prepared.keys[feature.entity]
            item = prepared.items[feature.index]
            if key is None or item is None:
                continue
            keys.append(plan.hash_prefix + key)
            sketches = ""
            if plan.zset_prefix is not None:
                keys.append(plan.zset_prefix + key)
                sketches = f"{plan.sketch_prefix}{key}:"
            entries += (plan.kind, str(t_us // feature.g_us), str(t_us) if plan.timed else str(item))
            if folding:
                entries += (plan.ttl_ms, sketches)
        return keys, entries

    def _lock_key(self, sid: str) -> str:
        return f"{self.tag}:lock:{sid}"

    def _claim(self, plans: list[_Plan], token: str) -> list[_Plan]:
        """Takes the backfill lock (valued ``token``) of each plan's signature, waiting while another worker
        holds one; returns the plans this worker must build (those not built meanwhile by another)."""
        owned: list[_Plan] = []
        waiting = plans
        while waiting:
            still = []
            for plan in waiting:
                if self._built(plan.sid):
                    continue
                if not self.client.set(self._lock_key(plan.sid), token, nx=True, px=LOCK_MS):
                    still.append(plan)
                elif self._built(plan.sid):  # finished between the check and the lock
                    self._release_script([self._lock_key(plan.sid)], [token])
                else:
                    owned.append(plan)
            waiting = still
            if waiting:
                if not self.backfill_waiting.is_set():
                    log.info("waiting for another worker's feature backfill of %d signature(s)", len(waiting))
                    self.backfill_waiting.set()
                time.sleep(LOCK_POLL_S)
        self.backfill_waiting.clear()
        return owned

    def _built(self, sid: str) -> bool:
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self._registry_key, sid)
        pipe.get(self._wm_key)
        stamp, watermark = pipe.execute()
        return _fresh(stamp, watermark)

    def _delete_signatures(self, sids: set[str]) -> int:
        """Deletes every key of these signatures in the namespace (one SCAN of the keyspace)."""
        start = len(self.tag) + 1
        doomed = [
            key
            for key in self.client.scan_iter(match=self.tag + ":*", count=1000)
            if key[start : start + SIGNATURE_ID_CHARS].decode() in sids
        ]
        for i in range(0, len(doomed), 500):
            self.client.unlink(*doomed[i : i + 500])
        return len(doomed)

    # ------------------------------------------------------------------ housekeeping
    def clear(self) -> int:
        """Deletes every key of this namespace (tests, decommissioning); returns how many."""
        return clear_namespace(self.client, self.namespace)

    def size(self) -> int:
        """Keys this namespace holds in Redis (one SCAN: for tests and benchmarks, not the hot path)."""
        return sum(1 for _ in self.client.scan_iter(match=self.tag + ":*", count=1000))

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


def _fresh(stamp: bytes | None, watermark: bytes | None) -> bool:
    """Whether a registry stamp says the signature's state is maintained up to the watermark."""
    if stamp is None:
        return False
    return watermark is None or int(watermark) - int(stamp) <= REBUILD_GAP_US


def clear_namespace(client: redis.Redis, namespace: str) -> int:
    """Deletes every key of a feature namespace; returns how many."""
    if not NAMESPACE.match(namespace):
        raise ValueError(f"feature namespace {namespace!r}: use 1-64 letters, digits, '_', '.' or '-'")
    keys = list(client.scan_iter(match="{" + namespace + "}:*", count=1000))
    for i in range(0, len(keys), 500):
        client.unlink(*keys[i : i + 500])
    return len(keys)


__all__: Sequence[str] = ["RedisFeatureEngine", "clear_namespace", "signature_id"]
