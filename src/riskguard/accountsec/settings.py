"""Validation of the account-security settings (called from ``Settings.validate``)."""

from __future__ import annotations

from typing import Any

from riskguard.errors import ConfigError


def check_accountsec_settings(settings: Any) -> None:
    if not (1 <= settings.takeover_window_minutes <= 7 * 24 * 60):
        raise ConfigError("RISKGUARD_TAKEOVER_WINDOW_MINUTES must be 1..10080 (a week)")
    if not (1 <= settings.takeover_device_memory_days <= 365):
        raise ConfigError("RISKGUARD_TAKEOVER_DEVICE_MEMORY_DAYS must be 1..365")
    if settings.takeover_device_memory_days * 1440 < settings.takeover_window_minutes:
        raise ConfigError("RISKGUARD_TAKEOVER_DEVICE_MEMORY_DAYS must cover RISKGUARD_TAKEOVER_WINDOW_MINUTES")
    if not (0 < settings.leak_watch_days <= 3650):
        raise ConfigError("RISKGUARD_LEAK_WATCH_DAYS must be more than 0 and at most 3650")
    if not (1 <= settings.breach_padding_lines <= 10_000):
        raise ConfigError("RISKGUARD_BREACH_PADDING_LINES must be 1..10000")
