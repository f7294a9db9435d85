"""Validation of the privacy settings (field encryption keys, reveal thresholds, working hours)."""

from __future__ import annotations

import re
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from riskguard.errors import ConfigError

_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def working_hours(text: str) -> tuple[time, time]:
    """``08:00-20:00`` → (08:00, 20:00); a range that wraps midnight (``22:00-06:00``) is allowed."""
    match = _HOURS.match(text.strip())
    if not match:
        raise ConfigError(f"RISKGUARD_REVEAL_WORKING_HOURS must look like 08:00-20:00, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ConfigError(f"RISKGUARD_REVEAL_WORKING_HOURS has an impossible time: {text!r}")
    return time(h1, m1), (time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2))


def check_privacy_settings(settings: Any) -> None:
    if settings.reveal_hourly_floor < 1:
        raise ConfigError("RISKGUARD_REVEAL_HOURLY_FLOOR must be at least 1")
    if settings.reveal_baseline_factor < 1:
        raise ConfigError("RISKGUARD_REVEAL_BASELINE_FACTOR must be at least 1")
    if not (1 <= settings.reveal_baseline_days <= 365):
        raise ConfigError("RISKGUARD_REVEAL_BASELINE_DAYS must be 1..365")
    if settings.reveal_bulk_threshold < 2:
        raise ConfigError("RISKGUARD_REVEAL_BULK_THRESHOLD must be at least 2")
    if settings.reveal_offhours_limit < 1:
        raise ConfigError("RISKGUARD_REVEAL_OFFHOURS_LIMIT must be at least 1")
    if settings.reveal_cooldown_minutes <= 0:
        raise ConfigError("RISKGUARD_REVEAL_COOLDOWN_MINUTES must be positive")
    working_hours(settings.reveal_working_hours)
    try:
        ZoneInfo(settings.reveal_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"RISKGUARD_REVEAL_TIMEZONE is not a time zone: {settings.reveal_timezone!r}") from None
    if not settings.keyring_file.strip():
        raise ConfigError("RISKGUARD_KEYRING_FILE must not be empty (auto, or a path)")
