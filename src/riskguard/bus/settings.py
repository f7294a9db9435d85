"""Checks of the ``RISKGUARD_BUS_*`` settings (called from ``Settings.validate``)."""

from __future__ import annotations

import re
from typing import Any

from riskguard.errors import ConfigError


def check_bus_settings(settings: Any) -> None:
    if settings.bus_backend not in ("redis", "nats"):
        raise ConfigError("RISKGUARD_BUS_BACKEND must be redis or nats")
    if settings.bus_redis_url and not re.match(r"^rediss?://|^unix://", settings.bus_redis_url):
        raise ConfigError("RISKGUARD_BUS_REDIS_URL must be empty (use RISKGUARD_REDIS_URL) or a redis:// URL")
    if not re.match(r"^(nats|tls)://", settings.bus_nats_url):
        raise ConfigError("RISKGUARD_BUS_NATS_URL must be a nats:// or tls:// URL")
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", settings.bus_prefix):
        raise ConfigError("RISKGUARD_BUS_PREFIX must be 1-64 letters, digits, '_' or '-'")
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", settings.bus_nats_stream):
        raise ConfigError("RISKGUARD_BUS_NATS_STREAM must be 1-64 letters, digits, '_' or '-'")
    if settings.bus_nats_replicas not in (1, 3, 5):
        raise ConfigError("RISKGUARD_BUS_NATS_REPLICAS must be 1, 3 or 5")
    if settings.bus_max_messages < 1000:
        raise ConfigError("RISKGUARD_BUS_MAX_MESSAGES must be at least 1000")
    if settings.bus_redeliver_s <= 0:
        raise ConfigError("RISKGUARD_BUS_REDELIVER_S must be positive")
    if not (1 <= settings.bus_max_deliveries <= 100):
        raise ConfigError("RISKGUARD_BUS_MAX_DELIVERIES must be 1..100")
    if not (1 <= settings.bus_relay_batch <= 10_000):
        raise ConfigError("RISKGUARD_BUS_RELAY_BATCH must be 1..10000")
    if settings.bus_relay_poll_ms < 10:
        raise ConfigError("RISKGUARD_BUS_RELAY_POLL_MS must be at least 10")
