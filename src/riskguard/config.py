"""Every setting of riskguard in one place.

Settings come from ``RISKGUARD_*`` environment variables (or keyword arguments, for tests and the
in-process library). Each one is documented in ``docs/configuration.md``; keep the two in step.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from riskguard.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
STARTER_STRATEGY = PACKAGE_DIR / "strategies" / "starter.yaml"
WARNINGS_CATALOGUE = PACKAGE_DIR / "strategies" / "warnings.yaml"

STAGE_NAMES = ("features", "lists", "device", "rules", "shadow")


@dataclass(frozen=True)
class StagePolicy:
    """How one pipeline stage behaves when it fails or overruns its time budget."""

    budget_ms: float
    failure: str  # "open": decide without the stage; "closed": floor the decision at `closed_action`


DEFAULT_STAGE_POLICIES: dict[str, StagePolicy] = {
    "features": StagePolicy(budget_ms=20.0, failure="open"),
    "lists": StagePolicy(budget_ms=10.0, failure="closed"),
    "device": StagePolicy(budget_ms=10.0, failure="closed"),
    "rules": StagePolicy(budget_ms=20.0, failure="closed"),
    "shadow": StagePolicy(budget_ms=20.0, failure="open"),
}


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./var/riskguard.db"
    host: str = "127.0.0.1"
    port: int = 8000
    auth: bool = True
    max_body_bytes: int = 65536
    max_batch_body_bytes: int = 8 * 1024 * 1024
    max_future_skew_s: float = 300.0
    max_attributes_bytes: int = 16384
    max_attributes_depth: int = 5
    max_batch_events: int = 1000
    default_locale: str = "en"
    starter_strategy: str = str(STARTER_STRATEGY)
    warnings_file: str = str(WARNINGS_CATALOGUE)
    sqlite_synchronous: str = "FULL"
    commit_max_batch: int = 1000
    commit_timeout_ms: float = 5000.0
    strategy_poll_ms: float = 1000.0
    closed_action: str = "review"
    log_level: str = "INFO"
    log_json: bool = True
    feature_lateness_s: float = 3600.0
    feature_distinct_exact_limit: int = 1024
    feature_snapshot_path: str = "auto"
    feature_snapshot_interval_s: float = 300.0
    feature_backend: str = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    feature_namespace: str = "rg"
    workers: int = 1
    decision_claims: str = "auto"
    claim_ttl_s: float = 30.0
    change_notices: str = "auto"
    device_config: str = ""
    console_session_idle_minutes: float = 30.0
    console_session_max_hours: float = 12.0
    console_lockout_failures: int = 5
    console_lockout_minutes: float = 15.0
    console_secure_cookie: bool = False
    console_reports_dir: str = "var/reports"
    case_merge_window_hours: float = 168.0
    case_sla: str = "10000:4,1000:24,0:72"
    keyring: str = ""
    keyring_file: str = "auto"
    field_encryption: bool = True
    reveal_hourly_floor: int = 30
    reveal_baseline_factor: float = 4.0
    reveal_baseline_days: int = 14
    reveal_bulk_threshold: int = 100
    reveal_offhours_limit: int = 10
    reveal_working_hours: str = "08:00-20:00"
    reveal_timezone: str = "UTC"
    reveal_cooldown_minutes: float = 60.0
    bus_enabled: bool = False
    bus_backend: str = "redis"
    bus_redis_url: str = ""
    bus_nats_url: str = "nats://127.0.0.1:4222"
    bus_prefix: str = "riskguard"
    bus_nats_stream: str = "RISKGUARD"
    bus_nats_replicas: int = 1
    bus_max_messages: int = 1_000_000
    bus_redeliver_s: float = 30.0
    bus_max_deliveries: int = 5
    bus_relay: bool = True
    bus_relay_batch: int = 500
    bus_relay_poll_ms: float = 200.0
    takeover_window_minutes: float = 180.0
    takeover_device_memory_days: float = 30.0
    leak_watch_days: float = 90.0
    breach_padding_lines: int = 1000
    batch_engine: str = "local"  # graph refresh and replay: in-process ("local") or on Spark (docs/spark.md)
    spark_master: str = "local[2]"
    spark_driver_memory: str = "1g"
    spark_shuffle_partitions: int = 8
    stage_policies: dict[str, StagePolicy] = field(default_factory=lambda: dict(DEFAULT_STAGE_POLICIES))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "stage_policies":
                continue
            key = "RISKGUARD_" + f.name.upper()
            if key in env:
                values[f.name] = _parse(key, env[key], f.type)
        policies = dict(DEFAULT_STAGE_POLICIES)
        for stage in STAGE_NAMES:
            base = policies[stage]
            budget_key = f"RISKGUARD_STAGE_{stage.upper()}_BUDGET_MS"
            failure_key = f"RISKGUARD_STAGE_{stage.upper()}_FAILURE"
            budget = _parse(budget_key, env[budget_key], "float") if budget_key in env else base.budget_ms
            failure = env.get(failure_key, base.failure).strip().lower()
            policies[stage] = StagePolicy(budget_ms=budget, failure=failure)
        values["stage_policies"] = policies
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def with_(self, **changes: Any) -> Settings:
        settings = replace(self, **changes)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.database_url:
            raise ConfigError("RISKGUARD_DATABASE_URL must not be empty")
        if not (0 < self.port < 65536):
            raise ConfigError(f"RISKGUARD_PORT must be 1..65535, got {self.port}")
        if self.max_body_bytes < 1024:
            raise ConfigError("RISKGUARD_MAX_BODY_BYTES must be at least 1024")
        if self.max_batch_body_bytes < self.max_body_bytes:
            raise ConfigError("RISKGUARD_MAX_BATCH_BODY_BYTES must be at least RISKGUARD_MAX_BODY_BYTES")
        if self.max_future_skew_s < 0:
            raise ConfigError("RISKGUARD_MAX_FUTURE_SKEW_S must not be negative")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError("RISKGUARD_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        if self.strategy_poll_ms < 100:
            raise ConfigError("RISKGUARD_STRATEGY_POLL_MS must be at least 100")
        if self.commit_timeout_ms <= 0 or self.commit_max_batch < 1:
            raise ConfigError("RISKGUARD_COMMIT_TIMEOUT_MS and RISKGUARD_COMMIT_MAX_BATCH must be positive")
        if self.max_attributes_depth < 1:
            raise ConfigError("RISKGUARD_MAX_ATTRIBUTES_DEPTH must be at least 1")
        if not (1 <= self.max_batch_events <= 100_000):
            raise ConfigError("RISKGUARD_MAX_BATCH_EVENTS must be 1..100000")
        if self.sqlite_synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ConfigError("RISKGUARD_SQLITE_SYNCHRONOUS must be FULL, EXTRA or NORMAL")
        if self.closed_action not in ("challenge", "review", "block"):
            raise ConfigError("RISKGUARD_CLOSED_ACTION must be challenge, review or block")
        if self.default_locale not in ("en", "zh-CN"):
            raise ConfigError("RISKGUARD_DEFAULT_LOCALE must be en or zh-CN")
        if self.feature_lateness_s < 0:
            raise ConfigError("RISKGUARD_FEATURE_LATENESS_S must not be negative")
        if self.feature_distinct_exact_limit < 1:
            raise ConfigError("RISKGUARD_FEATURE_DISTINCT_EXACT_LIMIT must be at least 1")
        if self.feature_snapshot_interval_s < 1:
            raise ConfigError("RISKGUARD_FEATURE_SNAPSHOT_INTERVAL_S must be at least 1")
        if self.feature_backend not in ("memory", "redis"):
            raise ConfigError("RISKGUARD_FEATURE_BACKEND must be memory or redis")
        if not re.match(r"^rediss?://|^unix://", self.redis_url):
            raise ConfigError("RISKGUARD_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", self.feature_namespace):
            raise ConfigError("RISKGUARD_FEATURE_NAMESPACE must be 1-64 letters, digits, '_', '.' or '-'")
        if not (1 <= self.workers <= 64):
            raise ConfigError("RISKGUARD_WORKERS must be 1..64")
        if self.decision_claims not in ("auto", "redis", "off"):
            raise ConfigError("RISKGUARD_DECISION_CLAIMS must be auto, redis or off")
        if self.claim_ttl_s * 1000 <= self.commit_timeout_ms:
            raise ConfigError("RISKGUARD_CLAIM_TTL_S must be longer than RISKGUARD_COMMIT_TIMEOUT_MS")
        if self.change_notices not in ("auto", "postgres", "redis", "off"):
            raise ConfigError("RISKGUARD_CHANGE_NOTICES must be auto, postgres, redis or off")
        if self.console_session_idle_minutes <= 0 or self.console_session_max_hours <= 0:
            raise ConfigError("RISKGUARD_CONSOLE_SESSION_IDLE_MINUTES and _MAX_HOURS must be positive")
        if self.console_lockout_failures < 1 or self.console_lockout_minutes <= 0:
            raise ConfigError("RISKGUARD_CONSOLE_LOCKOUT_FAILURES must be at least 1, _MINUTES positive")
        if not 0 < self.case_merge_window_hours <= 24 * 366:
            raise ConfigError("RISKGUARD_CASE_MERGE_WINDOW_HOURS must be more than 0 and at most 8784 (a year)")
        from riskguard.cases.priority import parse_sla

        parse_sla(self.case_sla)  # raises ConfigError naming RISKGUARD_CASE_SLA
        from riskguard.privacy.settings import check_privacy_settings

        check_privacy_settings(self)
        from riskguard.bus.settings import check_bus_settings

        check_bus_settings(self)
        from riskguard.accountsec.settings import check_accountsec_settings

        check_accountsec_settings(self)
        if self.batch_engine not in ("local", "spark"):
            raise ConfigError("RISKGUARD_BATCH_ENGINE must be local or spark")
        if not re.match(r"^(local(\[(\d+|\*)\])?|spark://[A-Za-z0-9_.:,-]+|yarn|k8s://\S+)$", self.spark_master):
            raise ConfigError("RISKGUARD_SPARK_MASTER must be local[N], local[*], spark://HOST:PORT, yarn or k8s://URL")
        if not re.match(r"^\d+[kmgt]?$", self.spark_driver_memory, re.IGNORECASE):
            raise ConfigError("RISKGUARD_SPARK_DRIVER_MEMORY must be a JVM size such as 1g or 512m")
        if not (1 <= self.spark_shuffle_partitions <= 100_000):
            raise ConfigError("RISKGUARD_SPARK_SHUFFLE_PARTITIONS must be 1..100000")
        for stage, policy in self.stage_policies.items():
            if policy.failure not in ("open", "closed"):
                raise ConfigError(f"RISKGUARD_STAGE_{stage.upper()}_FAILURE must be open or closed")
            if policy.budget_ms <= 0:
                raise ConfigError(f"RISKGUARD_STAGE_{stage.upper()}_BUDGET_MS must be positive")

    @property
    def event_limits(self) -> dict[str, Any]:
        """The validation limits every event passes, as keyword arguments of events.validate."""
        return {
            "max_attributes_bytes": self.max_attributes_bytes,
            "max_attributes_depth": self.max_attributes_depth,
            "max_future_skew_s": self.max_future_skew_s,
        }

    def redacted(self) -> dict[str, Any]:
        """The settings for display, with any password in the database URL hidden."""
        from dataclasses import asdict

        values = asdict(self)
        values["database_url"] = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", self.database_url)
        values["redis_url"] = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", self.redis_url)
        values["bus_redis_url"] = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", self.bus_redis_url)
        values["bus_nats_url"] = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", self.bus_nats_url)
        values["keyring"] = "***" if self.keyring else ""
        return values

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def feature_snapshot(self) -> Path | None:
        """Where the memory feature engine keeps its snapshot: ``auto`` puts it beside a SQLite database
        file (and turns snapshots off for other databases, whose installations share no directory);
        ``off`` or an empty value turns them off; anything else is the path. None with the Redis back end,
        whose state outlives the process in Redis."""
        value = self.feature_snapshot_path.strip()
        if value.lower() in ("", "off", "none") or self.feature_backend != "memory":
            return None
        if value.lower() != "auto":
            return Path(value)
        match = re.match(r"^sqlite(?:\+\w+)?:///(.+)$", self.database_url)
        if not match or match.group(1) == ":memory:":
            return None
        return Path(match.group(1)).with_suffix(".features")


def _parse(key: str, raw: str, type_name: Any) -> Any:
    type_name = str(type_name)
    text = raw.strip()
    try:
        if type_name == "bool":
            lowered = text.lower()
            if lowered in ("1", "true", "on", "yes"):
                return True
            if lowered in ("0", "false", "off", "no"):
                return False
            raise ValueError(text)
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a valid {type_name}") from None
    return text
