"""Wiring: the bus a configuration names, its metrics, and the hook into a RiskGuard instance."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from riskguard.bus.base import Bus
from riskguard.bus.outbox import OutboxRelay, outbox_hook

log = logging.getLogger("riskguard.bus")


def open_bus(settings: Any) -> Bus:
    """The bus of ``RISKGUARD_BUS_BACKEND`` (Redis Streams or NATS JetStream) with its settings."""
    if settings.bus_backend == "nats":
        from riskguard.bus.jetstream import JetStreamBus

        return JetStreamBus(
            settings.bus_nats_url,
            prefix=settings.bus_prefix,
            stream=settings.bus_nats_stream,
            replicas=settings.bus_nats_replicas,
            max_msgs=settings.bus_max_messages,
            redeliver_s=settings.bus_redeliver_s,
            max_deliveries=settings.bus_max_deliveries,
        )
    from riskguard.bus.redis_streams import RedisStreamBus

    return RedisStreamBus(
        settings.bus_redis_url or settings.redis_url,
        prefix=settings.bus_prefix,
        maxlen=settings.bus_max_messages,
        redeliver_s=settings.bus_redeliver_s,
        max_deliveries=settings.bus_max_deliveries,
    )


class _LazyBus:
    """Connects on first use and again after a failed connection, so a service starts (and keeps
    accepting decisions into the outbox) while the bus server is down."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._bus: Bus | None = None
        self.name = settings.bus_backend

    def get(self) -> Bus:
        if self._bus is None:
            self._bus = open_bus(self._settings)
        return self._bus

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.get(), attribute)

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()


class BusMetrics:
    """Counters of the relay, and, read from the bus at each scrape, every consumer group's lag and the
    outbox backlog."""

    def __init__(self, registry: Any, relay: OutboxRelay) -> None:
        self._relay = relay
        self.published = Counter("riskguard_bus_published", "Events published to the bus", registry=registry)
        self.publish_failures = Counter(
            "riskguard_bus_publish_failures",
            "Relay rounds that could not publish (bus or database down)",
            registry=registry,
        )
        registry.register(self)

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        backlog = GaugeMetricFamily("riskguard_bus_outbox_backlog", "Committed decisions not yet published")
        up = GaugeMetricFamily("riskguard_bus_up", "Whether the bus answered this scrape")
        lag = GaugeMetricFamily(
            "riskguard_bus_consumer_lag",
            "Messages of each consumer group: waiting (not handed out), in_flight (not acknowledged), dead",
            labels=["group", "state"],
        )
        try:
            backlog.add_metric([], self._relay.backlog())
        except Exception as exc:
            log.warning("outbox backlog unavailable: %s", exc)
        try:
            for group in self._relay.bus.groups():
                current = self._relay.bus.lag(group)
                for state in ("waiting", "in_flight", "dead"):
                    lag.add_metric([group, state], getattr(current, state))
            up.add_metric([], 1)
        except Exception as exc:
            log.warning("bus lag unavailable: %s", exc)
            up.add_metric([], 0)
        yield backlog
        yield up
        yield lag


def attach(guard: Any, *, background: bool) -> OutboxRelay | None:
    """With ``RISKGUARD_BUS_ENABLED``: outbox rows written with every decision, lag in ``/metrics``, and
    (with ``RISKGUARD_BUS_RELAY`` and ``background``) the relay thread publishing them."""
    settings = guard.settings
    if not settings.bus_enabled:
        return None
    relay = OutboxRelay(
        guard.engine, _LazyBus(settings), batch=settings.bus_relay_batch, poll_s=settings.bus_relay_poll_ms / 1000
    )
    relay.metrics = BusMetrics(guard.metrics.registry, relay)
    guard.writer.batch_hooks.append(outbox_hook)
    guard.writer.batch_hooks.append(relay.notify)
    if background and settings.bus_relay:
        relay.start()
    return relay
