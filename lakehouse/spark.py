"""The one Spark session factory.

* On a cluster (Databricks, EMR) a session already exists or `spark-submit` configured one: it is used unchanged,
  with native Delta.
* Locally (the embedded default) a `local[*]` session is built: UTC, bound to 127.0.0.1, small shuffle, Hive
  metastore and warehouse under $LAKEHOUSE_HOME, workers on this venv's python. When the Delta Lake jars are not
  on the classpath, the JVM catalog shim (format `delta` backed by delta-rs) is loaded instead, and the Python
  Kafka source is registered under the name `kafka` when Spark's Kafka connector is absent.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.config import Settings, get_settings

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
KAFKA_PROVIDER_CLASS = "org.apache.spark.sql.kafka010.KafkaSourceProvider"
LOG4J_CONFIG = Path(__file__).resolve().parent.parent / "infra" / "log4j2.properties"


def _local_jars(pattern: str) -> list[str]:
    """Jars matching `pattern` already on this machine (pyspark's jars dir or the Ivy cache)."""
    from lakehouse.jvm import pyspark_jars_dir

    roots = [pyspark_jars_dir(), Path.home() / ".ivy2.5.2" / "jars", Path.home() / ".ivy2" / "jars"]
    return [jar for root in roots for jar in glob.glob(str(root / pattern))]


def _local_delta_jars() -> list[str]:
    return _local_jars("*delta-spark_*.jar") + _local_jars("*delta-storage-*.jar")


def _jvm_has_class(spark: SparkSession, class_name: str) -> bool:
    try:
        spark._jvm.java.lang.Class.forName(class_name, False, spark._jvm.Thread.currentThread().getContextClassLoader())
        return True
    except Exception:  # noqa: BLE001 - Py4J raises a generic error for ClassNotFoundException
        return False


def _wants_native_delta(settings: Settings) -> bool:
    if settings.delta_backend == "native":
        return True
    if settings.delta_backend == "deltars":
        return False
    return bool(_local_delta_jars())


def _local_builder(app_name: str, settings: Settings) -> SparkSession.Builder:
    settings.ensure_dirs()
    python = os.environ.get("PYSPARK_PYTHON") or sys.executable
    os.environ["PYSPARK_PYTHON"] = python
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", python)
    metastore_url = f"jdbc:derby:;databaseName={settings.metastore};create=true"
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", os.environ.get("LAKEHOUSE_SPARK_UI", "false"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, os.cpu_count() or 2)))
        .config("spark.sql.warehouse.dir", str(settings.warehouse))
        .config("spark.hadoop.javax.jdo.option.ConnectionURL", metastore_url)
        .config(
            "spark.driver.extraJavaOptions",
            f"-Dderby.system.home={settings.home} -Duser.timezone=UTC -Dlog4j.configurationFile={LOG4J_CONFIG}",
        )
        .config("spark.executorEnv.PYSPARK_PYTHON", python)
        .config("spark.python.daemon.module", "lakehouse.worker_daemon")  # workers fork with libraries loaded
        .config("spark.sql.python.filterPushdown.enabled", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
        .config("spark.driver.memory", os.environ.get("LAKEHOUSE_DRIVER_MEMORY", "4g"))
        .enableHiveSupport()
    )
    jars = []
    if not _local_jars("*spark-sql-kafka-0-10_*.jar"):
        from lakehouse.sources.kafka_source import ensure_kafka_provider_jar

        jars.append(str(ensure_kafka_provider_jar(settings)))
    if _wants_native_delta(settings):
        jars += _local_delta_jars()
        builder = builder.config("spark.sql.extensions", DELTA_EXTENSION).config(
            "spark.sql.catalog.spark_catalog", DELTA_CATALOG
        )
    else:
        from lakehouse.tables.shim import ensure_shim_jar

        shim = ensure_shim_jar(settings)
        if shim is not None:
            jars.append(str(shim))
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    return builder




def _on_cluster() -> bool:
    """Databricks, LAKEHOUSE_ENV=cluster, or spark-submit with a non-local master (YARN, k8s, standalone)."""
    if os.environ.get("DATABRICKS_RUNTIME_VERSION") or os.environ.get("LAKEHOUSE_ENV") == "cluster":
        return True
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not launched by spark-submit
        return False
    from pyspark import SparkConf

    master = SparkConf().get("spark.master", "local[*]") or "local[*]"
    return not master.startswith("local")


def get_spark(app_name: str = "lakehouse", settings: Settings | None = None) -> SparkSession:
    """Return the process's Spark session, building the embedded default when no session exists."""
    settings = settings or get_settings()
    active = SparkSession.getActiveSession()
    if active is not None:
        spark = active
    elif _on_cluster():
        spark = SparkSession.builder.appName(app_name).getOrCreate()  # configured by the cluster / spark-submit
    else:
        spark = _local_builder(app_name, settings).getOrCreate()
        spark.sparkContext.setLogLevel(os.environ.get("LAKEHOUSE_SPARK_LOG_LEVEL", "WARN"))
        _load_delta_shim(spark, settings)
    _register_python_sources(spark)
    return spark


def has_native_delta(spark: SparkSession) -> bool:
    """True when Delta Lake's own classes are loaded and configured in this session (Databricks, EMR, jars)."""
    if _jvm_has_class(spark, "com.databricks.sql.transaction.tahoe.DeltaLog"):
        return True
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    return "delta" in extensions.lower() and _jvm_has_class(spark, DELTA_EXTENSION)


SHIM_PROVIDER_CLASS = "lakehouse.shim.DeltaShimProvider"


def _load_delta_shim(spark: SparkSession, settings: Settings) -> None:
    """Make format `delta` resolve to the catalog shim when native Delta is absent.

    `spark.jars` covers a session this process starts; under a local `spark-submit` the driver JVM is already
    running, so the jar is added to the session's class loader instead (`ADD JAR`)."""
    if has_native_delta(spark) or _jvm_has_class(spark, SHIM_PROVIDER_CLASS):
        return
    from lakehouse.tables.shim import ensure_shim_jar

    jar = ensure_shim_jar(settings)
    if jar is not None:
        spark.sql(f"ADD JAR '{jar}'")


def has_native_kafka(spark: SparkSession) -> bool:
    return _jvm_has_class(spark, KAFKA_PROVIDER_CLASS)


_registered: set[int] = set()


def _register_python_sources(spark: SparkSession) -> None:
    """Serve format `kafka` with the Python Kafka source when Spark's own connector is absent (once per session)."""
    key = id(spark)
    if key in _registered:
        return
    if not has_native_kafka(spark):
        from lakehouse.sources.kafka_source import register_kafka_source

        register_kafka_source(spark)
    _registered.add(key)
