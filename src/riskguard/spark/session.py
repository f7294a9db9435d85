"""The SparkSession every Spark job of riskguard runs in, built from the settings.

Nothing is fetched at run time: no ``spark.jars.packages``, only the jars PySpark ships. The Spark UI is
off, the driver loopback-bound unless ``SPARK_LOCAL_IP`` says otherwise, and the shuffle partition count
small (``RISKGUARD_SPARK_SHUFFLE_PARTITIONS``): the default of 200 is made for clusters, and on two cores
it spends most of a small job scheduling empty tasks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

from riskguard.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from riskguard.config import Settings


def java_major() -> int | None:
    """The major version of the ``java`` on the PATH (or under JAVA_HOME), None when there is none."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def spark_session(settings: Settings, app_name: str = "riskguard") -> SparkSession:
    """A SparkSession for ``settings.spark_master`` (validated by ``Settings``; getOrCreate: a running one
    is reused).

    Raises ConfigError, with what to install, when PySpark or Java 17 is missing."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("the Spark engine needs PySpark: pip install 'riskguard[spark]'") from None
    major = java_major()
    if major is None or major < 17:
        found = "no java" if major is None else f"Java {major}"
        raise ConfigError(
            f"the Spark engine needs Java 17 or later ({found} found): apt-get install openjdk-17-jre-headless"
        )
    local = settings.spark_master.startswith("local")
    if local:  # one machine: bind the driver to loopback (a cluster's executors must reach the driver instead)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Python workers (the replay's partitions) run this interpreter, whose environment has riskguard
        # (PySpark reads the variable when the context starts; its default is whatever "python3" is)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.default.parallelism", str(settings.spark_shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if local:
        address = os.environ["SPARK_LOCAL_IP"]
        builder = builder.config("spark.driver.host", address).config("spark.driver.bindAddress", address)
        # few partitions, set by RISKGUARD_SPARK_SHUFFLE_PARTITIONS: re-planning every stage of the iterative
        # jobs (adaptive execution) costs more on one machine than it saves
        builder = builder.config("spark.sql.adaptive.enabled", "false")
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
