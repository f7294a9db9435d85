"""Builds one riskguard instance — store, group-commit writer, feature engine, lists, strategies,
pipeline — and holds the decision path's bookkeeping: idempotency, durability, background ingest.

This is the in-process library (``RiskGuard(...).decide(event)``) and what the HTTP and CLI adapters
call. Nothing else in the package holds global state.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from riskguard.accountsec.service import AccountSecurity
from riskguard.bus.service import attach as attach_bus
from riskguard.config import Settings
from riskguard.decision.pipeline import Pipeline, expand_rules, explain
from riskguard.decision.stages import FeatureStage, ListIndex, ListStage
from riskguard.decision.warnings import WarningCatalogue
from riskguard.device.service import DeviceService
from riskguard.errors import Conflict, NotFound, Unavailable, ValidationFailed
from riskguard.events.schema import Event, from_stored, to_json
from riskguard.events.validate import check_event, parse_event_obj
from riskguard.features.backends import open_feature_engine
from riskguard.features.snapshots import SNAPSHOT_OVERLAP, FeatureSnapshots
from riskguard.metrics import Metrics
from riskguard.models.registry import ModelRegistry
from riskguard.models.stage import ModelReasonStage, ModelStage, check_model
from riskguard.privacy import PrivacyService
from riskguard.rules.activation import EVENT_DECLARATIONS, event_variables
from riskguard.rules.cel import Environment
from riskguard.rules.strategy import CompiledStrategy, compile_strategy, load_strategy
from riskguard.scale.claims import open_claims
from riskguard.scale.notices import open_notices
from riskguard.store.apikeys import ApiKeyRepository
from riskguard.store.audit import AuditRepository
from riskguard.store.db import migrate, open_engine
from riskguard.store.events import EventRepository
from riskguard.store.labels import LabelRepository
from riskguard.store.lists import ListRepository
from riskguard.store.published import PublishedRepository
from riskguard.store.strategies import StrategyRepository
from riskguard.store.tables import utcnow
from riskguard.store.writer import GroupCommitWriter, Ticket, WriteRequest

log = logging.getLogger("riskguard")
_encode = msgspec.json.Encoder(decimal_format="string").encode
_FINISHED = Ticket()
_FINISHED._finish(None)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


@dataclass
class Submission:
    """A decision handed to the writer: ``body`` is final, ``ticket`` says when it is durable."""

    body: dict[str, Any]
    ticket: Ticket
    duplicate: bool


def digest_of(event: Event) -> str:
    """A fingerprint of what an event says, not how it was written: ``6000.0`` and ``6000.00``, or the
    same instant given in ``+08:00`` and in ``Z``, are the same event (idempotent retries must match)."""
    canonical = msgspec.structs.replace(
        event,
        occurred_at=event.occurred_at.astimezone(UTC),
        amount=None if event.amount is None else event.amount.normalize(),
    )
    return hashlib.sha256(to_json(canonical)).hexdigest()[:32]


class RiskGuard:
    """One riskguard instance. Thread-safe; decisions are serialised through one lock (CPU-bound)."""

    def __init__(
        self, settings: Settings | None = None, *, background: bool = True, warm_features: bool = True
    ) -> None:
        """``background`` starts the ingest worker and the strategy/list poller (the server wants both);
        ``warm_features=False`` skips rebuilding feature state from the log, for processes that only
        administer (publish, lists, keys) and never decide."""
        self.settings = settings or Settings.from_env()
        self._warm_features = warm_features
        self.engine = open_engine(self.settings.database_url, sqlite_synchronous=self.settings.sqlite_synchronous)
        migrate(self.engine)
        self.privacy = PrivacyService(self.engine, self.settings)  # field keys: seal on write, open on read
        self.events = EventRepository(self.engine)
        self.lists = ListRepository(self.engine)
        self.labels = LabelRepository(self.engine)
        self.strategies = StrategyRepository(self.engine)
        self.api_keys = ApiKeyRepository(self.engine)
        self.audit = AuditRepository(self.engine)
        self.writer = GroupCommitWriter(self.engine, max_batch=self.settings.commit_max_batch)
        self.warnings = WarningCatalogue.from_file(self.settings.warnings_file)
        self.metrics = Metrics()
        self.published = PublishedRepository(self.engine)
        self.feature_engine = open_feature_engine(self.settings)  # memory, or Redis shared by every worker
        self._snapshots = FeatureSnapshots(self.feature_engine, self.settings.feature_snapshot)
        self.feature_restore: dict[str, Any] | None = None  # what the last start restored, for operators
        self.list_index = ListIndex()
        self.pipeline = Pipeline.standard(
            FeatureStage(self.feature_engine),
            ListStage(self.list_index),
            self.settings.stage_policies,
            self.warnings,
            closed_action=self.settings.closed_action,
            default_locale=self.settings.default_locale,
        )
        self.devices = DeviceService(  # device keys, challenges and the `device` stage (before rules)
            self.engine, settings=self.settings, writer=self.writer
        )
        self.pipeline.stages.insert([s.name for s in self.pipeline.stages].index("rules"), self.devices.stage)
        self.accountsec = AccountSecurity(self, warm=warm_features)  # takeover sequence, leak watch: before rules
        self.pipeline.stages.insert([s.name for s in self.pipeline.stages].index("rules"), self.accountsec.stage)
        self.models = ModelRegistry(self.engine)  # model.* before the rules, the model's reason codes after
        rules_at = [s.name for s in self.pipeline.stages].index("rules")
        rules = self.pipeline.stages[rules_at]
        self.pipeline.stages[rules_at : rules_at + 1] = [ModelStage(self.models), rules, ModelReasonStage()]
        self._event_env = Environment(EVENT_DECLARATIONS)
        # scale-out (riskguard.scale): one decision per event id across workers; changes announced to all
        shared_redis = getattr(self.feature_engine, "client", None)
        self.claims = open_claims(self.settings, shared_redis, self.events.decision_body, self.metrics.registry)
        self.notices = open_notices(self.settings, self.engine, self.metrics.registry)
        self._lock = threading.RLock()
        # decisions handed to the writer and not yet committed; a lock of its own, so that the writer
        # thread settling a batch never waits for the decision lock
        self._inflight: dict[str, Submission] = {}
        self._inflight_lock = threading.Lock()
        self._pending: dict[str, str] = {}  # accepted, not yet decided: event_id → digest
        self._rule_lists: dict[tuple[str, int], list[tuple[str, str]]] = {}
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._seen_deployment = -1
        self._seen_audit = -1
        self.live: CompiledStrategy | None = None
        self.shadow: CompiledStrategy | None = None
        self._ensure_live_strategy()
        self.refresh()
        self._threads: list[threading.Thread] = []
        self.bus_relay = attach_bus(self, background=background)  # riskguard.bus: outbox, relay (when enabled)
        self._recover_pending()
        if background:
            self._start(self._poll_loop, "riskguard-poll")
            self._start(self._ingest_loop, "riskguard-ingest")
            if self.notices is not None:
                self.notices.listen(lambda _what: self.refresh())

    # ------------------------------------------------------------------ lifecycle
    def _start(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        self._queue.put(None)
        for thread in self._threads:
            thread.join(5)
        if self.notices is not None:
            self.notices.close()
        if self.claims is not None:
            self.claims.close()
        if self.bus_relay is not None:
            self.bus_relay.close()
        self.writer.close()
        self.devices.close()
        self.accountsec.close()
        if self._warm_features and self._snapshots.path is not None and self.feature_engine.watermark is not None:
            try:
                self._snapshots.wait()
                with self._lock:
                    self._snapshots.write(utcnow(), background=False)
            except Exception:
                log.exception("writing the feature snapshot at shutdown failed; the next start replays more")
        self.events.close()
        self.engine.dispose()

    def __enter__(self) -> RiskGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ensure_admin_key(self) -> str | None:
        """On an installation with no API key at all, creates an admin key and returns it (shown once)."""
        if self.api_keys.count():
            return None
        _, token = self.api_keys.create(["admin"], "bootstrap admin key", actor="system")
        return token

    # ------------------------------------------------------------------ strategies and lists
    def compile(self, source: str) -> CompiledStrategy:
        return compile_strategy(source, warning_keys=self.warnings.keys())

    def publish(self, source: str, *, actor: str, role: str = "live", note: str = "") -> CompiledStrategy:
        """Validates, stores and deploys a strategy; running instances pick it up within a poll interval."""
        compiled = self.compile(source)
        check_model(self.models, compiled)  # a referenced model must be registered and fit the features
        self.strategies.save(compiled.name, compiled.version, source, actor)
        self.strategies.deploy(role, compiled.name, compiled.version, actor, note)
        self.refresh()
        self._announce("strategy")
        return compiled

    def rollback(self, *, actor: str, version: int | None = None, name: str | None = None) -> tuple[str, int]:
        """Redeploys an earlier version: by default the live strategy's previously deployed version;
        ``version`` of the live strategy's name; or ``name`` at ``version`` (another strategy)."""
        history = self.strategies.history("live", limit=1000)
        if not history:
            raise NotFound("no live strategy to roll back")
        current_name, current_version = history[0]["name"], history[0]["version"]
        if name is None:
            name = current_name
        if version is None:
            earlier = [h for h in history[1:] if (h["name"], h["version"]) != (current_name, current_version)]
            if name != current_name:
                earlier = [h for h in earlier if h["name"] == name]
            if not earlier:
                raise NotFound("no earlier deployed version to roll back to")
            name, version = earlier[0]["name"], earlier[0]["version"]
        self.strategies.deploy("live", name, version, actor, note="rollback")
        self.refresh()
        self._announce("strategy")
        return name, version

    def _ensure_live_strategy(self) -> None:
        if self.strategies.current("live") is not None:
            return
        source = Path(self.settings.starter_strategy).read_text(encoding="utf-8")
        compiled = self.compile(source)
        self.strategies.save(compiled.name, compiled.version, source, "system")
        self.strategies.deploy("live", compiled.name, compiled.version, "system", note="starter strategy")

    def refresh(self) -> None:
        """Picks up strategy deployments and list changes made by this or another process."""
        deployment = self.strategies.last_deployment_id()
        if deployment != self._seen_deployment:
            self._load_strategies()
            self._seen_deployment = deployment
        audit_id = self._last_audit_id()
        if audit_id != self._seen_audit:
            self.list_index.replace(self.lists.all_live())
            self.feature_engine.published.refresh(self.published)
            self._seen_audit = audit_id
        self.devices.refresh()  # other workers' device registrations and revocations
        self.accountsec.refresh()  # leak watch flags imported by this or another process

    def _announce(self, what: str) -> None:
        """Tells every other worker of a change now (they would otherwise see it at their next poll)."""
        if self.notices is not None:
            self.notices.announce(what)

    def _last_audit_id(self) -> int:
        from sqlalchemy import func, select

        from riskguard.store.tables import audit_log

        with self.engine.connect() as connection:
            return int(connection.execute(select(func.coalesce(func.max(audit_log.c.id), 0))).scalar_one())

    def _load_strategies(self) -> None:
        compiled: dict[str, CompiledStrategy | None] = {}
        for role in ("live", "shadow"):
            deployment = self.strategies.current(role)
            if deployment is None:
                compiled[role] = None
                continue
            row = self.strategies.get(deployment.name or "", deployment.version)
            compiled[role] = self.compile(row["document"])
        live = compiled["live"]
        if live is None:
            raise NotFound("no live strategy is deployed")
        specs = list(live.features) + (list(compiled["shadow"].features) if compiled["shadow"] else [])
        with self._lock:
            first = not self.feature_engine.features
            new = self.feature_engine.declare(specs, self._event_env)
            if first and self._warm_features and self._snapshots.available():
                new = self._restore_features(new)
            if new and self._warm_features:
                self._backfill(new)
            self.live, self.shadow = live, compiled["shadow"]
        self.metrics.strategy_version.clear()
        self.metrics.strategy_version.labels(live.name).set(live.version)
        log.info(
            "live strategy %s v%s%s",
            live.name,
            live.version,
            f", shadow {self.shadow.name} v{self.shadow.version}" if self.shadow else "",
        )

    def _backfill(self, specs: list[Any]) -> None:
        """Rebuilds the state of newly declared features from the durable event log."""
        window = max(s.window_seconds for s in specs) + self.feature_engine.lateness
        from sqlalchemy import func, select

        from riskguard.store.tables import events as events_table

        with self.engine.connect() as connection:
            latest = connection.execute(select(func.max(events_table.c.occurred_at))).scalar()
        if latest is None:
            return
        if latest.tzinfo is None:
            latest = latest.replace(tzinfo=UTC)
        since = latest - timedelta(seconds=window)
        started = time.perf_counter()

        def replay() -> Any:
            from riskguard.replay.labels_online import counts_labels, label_events

            for _type, payload in self.events.stream_since(since):
                event = from_stored(payload)
                yield event, event_variables(event)
            if counts_labels(self):  # label-aware features: each label from its labelled_at
                rows = self.labels.since("labelled_at", since)
                for event in label_events(self, rows, [row["id"] for row in rows]):
                    yield event, event_variables(event)
            for outcome in self.events.outcomes_since(since):
                event = self._outcome_event(
                    from_stored(outcome["payload"]), outcome["result"], outcome["method"], outcome["reported_at"]
                )
                yield event, event_variables(event)

        count = self.feature_engine.backfill(specs, replay())
        log.info("feature state rebuilt from %d logged events in %.2fs", count, time.perf_counter() - started)

    def _restore_features(self, new: list[Any]) -> list[Any]:
        """Loads the feature snapshot and replays what was decided since; returns the features it held
        no state for (to be backfilled). A snapshot that cannot be read is set aside, not fatal."""
        started = time.perf_counter()
        restored = self._snapshots.restore()
        if restored is None:
            return new
        position, missing = restored
        since = position - SNAPSHOT_OVERLAP
        replayed = 0
        engine = self.feature_engine
        for payload in self.events.decided_since(since):
            event = from_stored(payload)
            engine.observe(engine.prepare(event, event_variables(event)))
            replayed += 1
        from riskguard.replay.labels_online import counts_labels, label_events

        if counts_labels(self):  # labels recorded since the snapshot
            rows = self.labels.since("recorded_at", since)
            for event in label_events(self, rows, [row["id"] for row in rows]):
                engine.observe(engine.prepare(event, event_variables(event)))
                replayed += 1
        for outcome in self.events.outcomes_recorded_since(since):
            event = self._outcome_event(
                from_stored(outcome["payload"]), outcome["result"], outcome["method"], outcome["reported_at"]
            )
            engine.observe(engine.prepare(event, event_variables(event)))
            replayed += 1
        self.feature_restore = {"snapshot_at": position, "replayed": replayed}
        log.info(
            "feature state restored from its snapshot of %s and %d events decided since, in %.2fs",
            position.isoformat(),
            replayed,
            time.perf_counter() - started,
        )
        return missing

    def snapshot_features(self) -> bool:
        """Writes the feature snapshot now (in a forked child where the platform allows, so decisions
        wait only for the fork); returns whether one was started."""
        with self._lock:
            return self._snapshots.write(utcnow())

    def add_to_list(
        self, name: str, values: list[str], *, reason: str | None, expires_at: datetime | None, actor: str
    ) -> int:
        count = self.lists.add(name, values, reason=reason, expires_at=expires_at, actor=actor)
        self.refresh()
        self._announce("lists")
        return count

    def publish_features(
        self, source: str, values: Mapping[str, float | int | bool], *, replace: bool = False, actor: str = "system"
    ) -> int:
        """Stores per-entity values that batch jobs computed (``source`` is ``<namespace>.<name>``, values
        keyed by identifier); strategies read them as ``aggregate: published`` features. ``replace``
        drops the source's earlier values first (a full refresh). Every process sees them at its next
        refresh; this one at once."""
        count = self.published.publish(source, values, replace=replace, actor=actor)
        self.refresh()
        self._announce("published")
        return count

    def remove_from_list(self, name: str, values: list[str], *, actor: str) -> int:
        count = self.lists.remove(name, values, actor=actor)
        self.refresh()
        self._announce("lists")
        return count

    # ------------------------------------------------------------------ deciding
    def _lookup(self, event_id: str) -> Submission | None:
        """A decision already made for ``event_id``: in flight to the store, or stored (every new event
        asks, so the store lookup is a bare driver call of a few µs; no cache is needed in front of it)."""
        with self._inflight_lock:
            inflight = self._inflight.get(event_id)
        if inflight is not None:
            return Submission(inflight.body, inflight.ticket, True)
        stored = self.events.decision_body(event_id)
        if stored is not None:
            return Submission(msgspec.json.decode(stored), _FINISHED, True)
        return None

    def submit(self, event: Event, *, source: str = "sync") -> Submission:
        """Decides ``event`` (or finds its stored decision) and hands the records to the writer."""
        digest = digest_of(event)
        with self._lock:
            found = self._lookup(event.event_id)
            if found is not None:
                if found.body.get("_digest") not in (None, digest):
                    raise Conflict(
                        f"event_id {event.event_id!r} was already used for a different event; "
                        "event ids are idempotency keys and must not be reused"
                    )
                self.metrics.duplicates.inc()
                return found
            pending = self._pending.get(event.event_id)
            if pending is not None and pending != digest:
                raise Conflict(f"event_id {event.event_id!r} was accepted earlier with different content")
            if self.claims is not None:  # another worker may be deciding this event id right now
                follower = self.claims.claim(event.event_id, digest)
                if follower is not None:
                    self._pending.pop(event.event_id, None)
                    self.metrics.duplicates.inc()
                    return Submission(follower.body, follower.ticket, True)
            self._pending.pop(event.event_id, None)
            live, shadow = self.live, self.shadow
            assert live is not None
            try:
                body, ctx = self.pipeline.run(event, live, shadow)
            except BaseException:
                if self.claims is not None:
                    self.claims.release(event.event_id, digest)
                raise
            body["explain"] = explain(ctx)
            body["_digest"] = digest
            now = utcnow()
            request = WriteRequest(steps=self.devices.writes_for(event.event_id))  # nonce use, key counter
            if source == "sync":
                request.event_rows.append(
                    {
                        "event_id": event.event_id,
                        "type": event.type,
                        "occurred_at": event.occurred_at,
                        "account_id": event.account_id,
                        "received_at": now,
                        "source": source,
                        "payload": self.privacy.sealed_event_json(event),
                    }
                )
            request.decision_rows.append(
                {
                    "event_id": event.event_id,
                    "decision": body["decision"],
                    "score": body["score"],
                    "strategy_name": live.name,
                    "strategy_version": live.version,
                    "degraded": body["degraded"],
                    "latency_ms": body["latency_ms"],
                    "decided_at": now,
                    "body": self.privacy.seal_document(_encode(body).decode()),
                }
            )
            submission = Submission(body, request.ticket, False)
            with self._inflight_lock:
                self._inflight[event.event_id] = submission
        self.metrics.pipeline_latency.observe(body["latency_ms"] / 1000)
        self.metrics.decisions.labels(body["decision"]).inc()
        for item in body["degradations"]:
            self.metrics.degraded.labels(item["stage"]).inc()
        request.ticket.on_done(lambda ticket: self._settle(event, ctx.event_vars, submission, ticket))
        self.writer.submit(request)
        return submission

    def _settle(self, event: Event, event_vars: dict[str, Any], submission: Submission, ticket: Ticket) -> None:
        with self._inflight_lock:
            self._inflight.pop(event.event_id, None)
        if ticket.error is not None:
            # not recorded, so not acknowledged: take the event back out of feature state, so that the
            # client's retry (same event_id) counts it once
            self.metrics.commit_failures.inc()
            with self._lock:
                self.feature_engine.retract(event, event_vars)
            if self.claims is not None:  # after the retraction, so that another worker's retry folds it again
                self.claims.release(event.event_id, submission.body["_digest"])

    def public(self, body: dict[str, Any], *, with_explain: bool = False) -> dict[str, Any]:
        """A stored decision as the API shows it; with ``with_explain``, every rule's outcome too."""
        out = {k: v for k, v in body.items() if not k.startswith("_") and k != "explain"}
        if with_explain and "explain" in body:
            strategy = body["strategy"]
            out["explain"] = expand_rules(body["explain"], self._rules_of(strategy["name"], strategy["version"]))
        return out

    def _rules_of(self, name: str, version: int) -> list[tuple[str, str]]:
        """(rule id, mode) of a strategy version, in document order (versions never change: cached)."""
        key = (name, version)
        rules = self._rule_lists.get(key)
        if rules is None:
            document = load_strategy(self.strategies.get(name, version)["document"])
            rules = self._rule_lists[key] = [(rule.id, rule.mode) for rule in document.rules]
        return rules

    def decide(self, event: Event | dict[str, Any], *, with_explain: bool = False) -> dict[str, Any]:
        """Decides one event and returns once the event and its decision are durably recorded."""
        started = time.perf_counter()
        if isinstance(event, dict):
            event = parse_event_obj(event, **self.settings.event_limits)
        else:
            self._check(event)
        submission = self.submit(event)
        if not submission.ticket.wait(self.settings.commit_timeout_ms / 1000):
            raise Unavailable("the decision could not be recorded in time; retry with the same event_id")
        if submission.ticket.error is not None:
            raise Unavailable("the decision could not be recorded; retry with the same event_id")
        if not submission.duplicate:
            self.metrics.latency.observe(time.perf_counter() - started)
        return self.public(submission.body, with_explain=with_explain)

    async def decide_async(self, event: Event, *, with_explain: bool = False) -> dict[str, Any]:
        """The same, for an asyncio server: the event loop is free while the group commit runs."""
        started = time.perf_counter()
        submission = self.submit(event)
        if not submission.ticket.done:
            loop = asyncio.get_running_loop()
            future = submission.ticket.bind_future(loop)
            deadline = loop.call_later(self.settings.commit_timeout_ms / 1000, _expire, future)
            try:
                await future
            except TimeoutError:
                raise Unavailable("the decision could not be recorded in time; retry with the same event_id") from None
            finally:
                deadline.cancel()
        if submission.ticket.error is not None:
            raise Unavailable("the decision could not be recorded; retry with the same event_id")
        if not submission.duplicate:
            self.metrics.latency.observe(time.perf_counter() - started)
        return self.public(submission.body, with_explain=with_explain)

    def _check(self, event: Event) -> None:
        errors = check_event(event, prefix=["event"], **self.settings.event_limits)
        if errors:
            raise ValidationFailed(errors)

    def get_decision(self, event_id: str, *, with_explain: bool = False) -> dict[str, Any]:
        """The stored decision; ``{"status": "pending"}`` for an accepted event not yet decided."""
        body = None
        with self._inflight_lock:
            inflight = self._inflight.get(event_id)
        if inflight is not None and inflight.ticket.done and inflight.ticket.error is None:
            body = inflight.body
        if body is None:
            stored = self.events.decision_body(event_id)
            if stored is not None:
                body = msgspec.json.decode(stored)
        if body is not None:
            return {"status": "decided", **self.public(body, with_explain=with_explain)}
        if event_id in self._pending or self.events.event_exists(event_id):
            return {"status": "pending", "event_id": event_id}
        raise NotFound(f"no event {event_id!r}")

    # ------------------------------------------------------------------ asynchronous ingest
    def ingest(self, events: list[Event]) -> dict[str, Any]:
        """Durably accepts events for decision in the background; returns once they are stored.

        An event_id already known with the same content is a duplicate (ignored); with other content it
        is a conflict (refused, listed in ``conflicts``). The rest of the batch is accepted.
        """
        for event in events:
            self._check(event)
        now = utcnow()
        digests: dict[str, str] = {}
        conflicts: set[str] = set()
        unique: list[Event] = []
        for event in events:
            digest = digest_of(event)
            earlier = digests.get(event.event_id)
            if earlier is None:
                digests[event.event_id] = digest
                unique.append(event)
            elif earlier != digest:
                conflicts.add(event.event_id)
        rows = [
            {
                "event_id": e.event_id,
                "type": e.type,
                "occurred_at": e.occurred_at,
                "account_id": e.account_id,
                "received_at": now,
                "source": "async",
                "payload": self.privacy.sealed_event_json(e),
            }
            for e in unique
            if e.event_id not in conflicts
        ]
        existing = self.events.insert_events(rows)
        for event_id, payload in self.events.payloads(sorted(existing)).items():
            if digest_of(from_stored(payload)) != digests[event_id]:
                conflicts.add(event_id)
        accepted: list[str] = []
        for event in unique:
            if event.event_id in existing or event.event_id in conflicts:
                continue
            accepted.append(event.event_id)
            with self._lock:
                self._pending[event.event_id] = digests[event.event_id]
            self._queue.put(event)
        self.metrics.ingested.inc(len(accepted))
        self.metrics.pending.set(len(self._pending))
        return {
            "accepted": len(accepted),
            "event_ids": accepted,
            "duplicates": sorted(set(digests) - set(accepted) - conflicts),
            "conflicts": sorted(conflicts),
        }

    def _recover_pending(self) -> None:
        """Events accepted before a crash but not decided are queued again, in arrival order."""
        for event_id, payload in self.events.pending():
            event = from_stored(payload)
            self._pending[event_id] = digest_of(event)
            self._queue.put(event)
        if self._pending:
            log.info("%d accepted events were waiting for a decision; queued", len(self._pending))

    def _decide_pending(self, event: Event) -> bool:
        """Decides one accepted event; False when it could not be recorded (it stays queued)."""
        with self._lock:
            digest = self._pending.get(event.event_id)
            if digest is None:
                return True  # decided synchronously in the meantime
        submission = self.submit(event, source="async")
        recorded = submission.ticket.wait(self.settings.commit_timeout_ms / 1000) and submission.ticket.error is None
        if not recorded:
            with self._lock:
                self._pending[event.event_id] = digest
            self._queue.put(event)
            log.warning("an accepted event could not be decided and recorded; it will be retried")
        self.metrics.pending.set(len(self._pending))
        return recorded

    def drain(self, timeout: float = 30.0) -> None:
        """Decides every queued event now, in this thread (tests and the CLI; the server has a worker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return
            if event is not None:
                self._decide_pending(event)

    def _ingest_loop(self) -> None:
        while not self._stop.is_set():
            event = self._queue.get()
            if event is None:
                return
            try:
                recorded = self._decide_pending(event)
            except Exception:
                log.exception("background decision of an accepted event failed; it stays pending")
                recorded = False
            if not recorded:
                self._stop.wait(0.5)  # the store is failing: back off instead of spinning

    def _poll_loop(self) -> None:
        last_snapshot = time.monotonic()
        while not self._stop.wait(self.settings.strategy_poll_ms / 1000):
            try:
                self.refresh()
            except Exception:
                log.exception("refreshing strategies and lists failed; keeping the current ones")
            self._snapshots.reap()
            if time.monotonic() - last_snapshot >= self.settings.feature_snapshot_interval_s:
                last_snapshot = time.monotonic()
                try:
                    self.snapshot_features()
                except Exception:
                    log.exception("writing the feature snapshot failed; the next interval tries again")

    # ------------------------------------------------------------------ feedback
    def report_outcome(
        self,
        event_id: str,
        result: str,
        method: str,
        reported_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Stores a challenge's result and folds it into features (e.g. failed challenges per account)."""
        if result not in ("passed", "failed", "abandoned"):
            raise ValidationFailed(
                [{"loc": ["body", "result"], "type": "value_error", "msg": "must be passed, failed or abandoned"}]
            )
        when = reported_at or utcnow()
        stored = self.events.record_outcome(event_id, result, method, when)
        if not stored["duplicate"]:
            event = self._outcome_event(from_stored(stored["payload"]), result, method, when)
            with self._lock:
                self.feature_engine.observe(self.feature_engine.prepare(event, event_variables(event)))
        return {k: v for k, v in stored.items() if k != "payload"}

    @staticmethod
    def _outcome_event(original: Event, result: str, method: str, reported_at: datetime) -> Event:
        """The internal ``challenge_outcome`` event that features count (never decided, never sent)."""
        return msgspec.structs.replace(
            original,
            event_id=original.event_id + "#outcome",
            type="challenge_outcome",  # type: ignore[arg-type]
            occurred_at=reported_at,
            amount=None if original.amount is None else original.amount,
            attributes={
                "result": result,
                "method": method,
                "challenged_event_id": original.event_id,
                "challenged_type": original.type,
            },
        )

    def add_labels(self, items: list[dict[str, Any]]) -> list[int]:
        from riskguard.replay.labels_online import fold_labels

        ids = self.labels.add(items)
        fold_labels(self, items, ids)  # label-aware features count each label from its labelled_at
        return ids
