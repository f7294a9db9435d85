"""The SparkSession a Spark test module shares (one per module, stopped at its end): ``local[2]``, few
shuffle partitions. Skips where PySpark or Java 17 is missing, unless RISKGUARD_REQUIRE_SERVICES=1 (CI),
where it fails instead."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from riskguard.config import Settings
from riskguard.errors import ConfigError


def module_spark(name: str, partitions: int) -> Iterator[Any]:
    from riskguard.spark.session import spark_session

    settings = Settings.from_env(environ={}, spark_master="local[2]", spark_shuffle_partitions=partitions)
    try:
        session = spark_session(settings, name)
    except ConfigError as exc:
        if os.environ.get("RISKGUARD_REQUIRE_SERVICES") == "1":
            raise
        pytest.skip(f"Spark is not available here: {exc}")
    yield session
    session.stop()
