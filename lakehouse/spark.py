"""The one Spark session factory.

* On a cluster (Databricks, EMR, a standalone master) a session already exists or `spark-submit` configured
  one: it is used unchanged (Delta and Kafka come from the cluster or `--jars`).
* Locally (the embedded default) a `local[*]` session is built the way a cluster is configured: Delta Lake's SQL
  extension and catalog, Spark's own Kafka connector, the pinned jars from `make` (lakehouse.jars), UTC, bound to
  127.0.0.1, small shuffles, workers on this venv's python, and the Hive metastore shared by every local process
  in the home's PostgreSQL (lakehouse.services.metastore; `get_spark` starts that cluster when it is not running).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.config import Settings, get_settings
from lakehouse.services.metastore import MetastoreDb

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
LOG4J_CONFIG = Path(__file__).resolve().parent.parent / "infra" / "log4j2.properties"


def delta_conf() -> dict[str, str]:
    """What a cluster sets for Delta Lake (Databricks has it built in; EMR/standalone pass it to spark-submit)."""
    return {"spark.sql.extensions": DELTA_EXTENSION, "spark.sql.catalog.spark_catalog": DELTA_CATALOG}


def _local_builder(app_name: str, settings: Settings, metastore: MetastoreDb) -> SparkSession.Builder:
    from lakehouse.jars import spark_jars
    from lakehouse.services.metastore import spark_conf

    settings.ensure_dirs()
    python = os.environ.get("PYSPARK_PYTHON") or sys.executable
    os.environ["PYSPARK_PYTHON"] = python
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", python)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.jars", ",".join(str(p) for p in spark_jars()))
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", os.environ.get("LAKEHOUSE_SPARK_UI", "false"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, os.cpu_count() or 2)))
        # Delta's log replay uses this many partitions (default 50: one task per partition on 2 cores)
        .config("spark.databricks.delta.snapshotPartitions", str(settings.shuffle_partitions))
        # Delta's VACUUM lists files with this many tasks (default 10000: 150,000 tasks and ~150 s for a small
        # table on 2 cores, ~10 s with this)
        .config("spark.sql.sources.parallelPartitionDiscovery.parallelism", str(settings.shuffle_partitions))
        .config("spark.sql.warehouse.dir", str(settings.warehouse))
        # also on the JVM's class path: the Hive client's isolated loader finds the metastore's JDBC driver only
        # there, and the SQL endpoint's sessions load Delta's catalog from there (neither sees spark.jars)
        .config("spark.driver.extraClassPath", os.pathsep.join(str(p) for p in spark_jars()))
        .config("spark.driver.extraJavaOptions", f"-Duser.timezone=UTC -Dlog4j.configurationFile={LOG4J_CONFIG}")
        .config("spark.executorEnv.PYSPARK_PYTHON", python)
        .config("spark.python.daemon.module", "lakehouse.worker_daemon")  # workers fork with libraries loaded
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
        .config("spark.driver.memory", os.environ.get("LAKEHOUSE_DRIVER_MEMORY", "4g"))
        .enableHiveSupport()
    )
    for key, value in {**delta_conf(), **spark_conf(metastore)}.items():
        builder = builder.config(key, value)
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
        return active
    if _on_cluster():
        return SparkSession.builder.appName(app_name).getOrCreate()  # configured by the cluster / spark-submit
    from lakehouse.services import metastore

    db = metastore.ensure_running(settings)  # the shared Hive metastore in PostgreSQL
    spark = _local_builder(app_name, settings, db).getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("LAKEHOUSE_SPARK_LOG_LEVEL", "WARN"))
    metastore.ensure_schema(spark, db)
    return spark
