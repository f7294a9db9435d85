"""The feature back end a service runs, chosen by ``RISKGUARD_FEATURE_BACKEND``: ``memory`` (embedded, the
default) or ``redis`` (state shared by every worker in Redis, at ``RISKGUARD_REDIS_URL`` under
``RISKGUARD_FEATURE_NAMESPACE``)."""

from __future__ import annotations

from riskguard.config import Settings
from riskguard.features.memory import MemoryFeatureEngine
from riskguard.features.redis_backend import RedisFeatureEngine


def open_feature_engine(settings: Settings) -> MemoryFeatureEngine | RedisFeatureEngine:
    if settings.feature_backend == "redis":
        return RedisFeatureEngine(
            settings.redis_url,
            namespace=settings.feature_namespace,
            lateness_seconds=settings.feature_lateness_s,
            distinct_exact_limit=settings.feature_distinct_exact_limit,
        )
    return MemoryFeatureEngine(
        lateness_seconds=settings.feature_lateness_s,
        distinct_exact_limit=settings.feature_distinct_exact_limit,
    )
