"""Prometheus metrics of one riskguard instance (its own registry, so instances never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "riskguard_decisions", "Decisions made, by outcome", ["decision"], registry=self.registry
        )
        self.latency = Histogram(
            "riskguard_decision_latency_seconds",
            "Time to decide and durably record an event",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.pipeline_latency = Histogram(
            "riskguard_pipeline_latency_seconds",
            "Time spent in the decision pipeline alone",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.degraded = Counter(
            "riskguard_degraded_decisions",
            "Decisions made with a failed or slow stage",
            ["stage"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "riskguard_duplicate_events", "Requests answered from a stored decision", registry=self.registry
        )
        self.ingested = Counter(
            "riskguard_ingested_events", "Events accepted for background decision", registry=self.registry
        )
        self.pending = Gauge("riskguard_pending_events", "Accepted events not yet decided", registry=self.registry)
        self.commit_failures = Counter("riskguard_commit_failures", "Group commits that failed", registry=self.registry)
        self.strategy_version = Gauge(
            "riskguard_live_strategy_version", "Version of the live strategy", ["name"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
