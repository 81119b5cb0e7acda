"""The one Spark session factory.

* On a cluster (Databricks, EMR, a standalone master) a session already exists or `spark-submit` configured
  one: it is used unchanged (Delta and Kafka come from the cluster or `--jars`). One addition: a job that
  `lakehouse submit` sent to a master on this machine (conf `spark.lakehouse.homeMetastore=true`, see
  lakehouse.submit) has its driver here, and that driver uses the home's Hive metastore like a local session.
* Locally (the embedded default) a `local[*]` session is built the way a cluster is configured: Delta Lake's SQL
  extension and catalog, Spark's own Kafka connector, the pinned jars from `make` (lakehouse.jars), UTC, bound to
  127.0.0.1, small shuffles, workers on this venv's python, and the Hive metastore shared by every local process
  in the home's PostgreSQL (lakehouse.services.metastore; `get_spark` starts that cluster when it is not running).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.config import Settings, get_settings
from lakehouse.resources import resource_path
from lakehouse.services.metastore import MetastoreDb

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
HOME_METASTORE_CONF = "spark.lakehouse.homeMetastore"  # "true": a submitted driver uses the home's metastore
LOG4J_CONFIG = resource_path("infra/log4j2.properties")


def delta_conf() -> dict[str, str]:
    """What a cluster sets for Delta Lake (Databricks has it built in; EMR/standalone pass it to spark-submit)."""
    return {"spark.sql.extensions": DELTA_EXTENSION, "spark.sql.catalog.spark_catalog": DELTA_CATALOG}


# JVMs on this machine (the local driver; driver and executors of a master here), measured on the demo (2 cores):
# the parallel collector needs no concurrent marking threads next to the tasks (GC CPU 35 s -> 12 s), and a larger
# code cache leaves the JIT room for the classes Spark generates per query.
LOCAL_JVM_OPTIONS = "-XX:+UseParallelGC -XX:ReservedCodeCacheSize=512m"
# Spark SQL on masters of this machine. Its batches are small (a micro-batch, a demo run): whole-stage code
# generation compiles Java for every distinct plan (hundreds per job: log replays, GX metrics, MERGEs), which the
# JIT then compiles again in each JVM, and that costs more than the rows it speeds up. Measured without it (2
# cores, idle, one run each): the demo 400-414 s -> 339 s (silver_events 117 -> 94 s, gold 67 -> 52 s); the chaos
# drill's CPU 1,707 -> 1,526 s and its catch-up 777 -> 678 s. A cluster's own configuration decides there.
LOCAL_SQL_CONF = {
    "spark.sql.codegen.wholeStage": "false",
    # What a driver keeps about finished work for its status store (kept with the UI off as well). A pipeline
    # stage runs thousands of queries an hour; with the defaults (1,000 SQL executions, 1,000 jobs and stages,
    # 100,000 tasks) gold_commerce's 2 GB driver filled up during the chaos drill (old generation 0.1 -> 1.4 GB
    # in 5 min, mostly long arrays of finished jobs' and tasks' records) and died of GC overhead.
    "spark.sql.ui.retainedExecutions": "50",
    "spark.ui.retainedJobs": "100",
    "spark.ui.retainedStages": "100",
    "spark.ui.retainedTasks": "2000",
    "spark.ui.dagGraph.retainedRootRDDs": "100",
}


def sizing_conf(settings: Settings) -> dict[str, str]:
    """Task counts sized by the settings and the compiled-query cache, for a local session and a submitted job."""
    return {
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        # Delta's log replay (default 50 partitions). Every idempotent write (txnAppId) replays its table's log:
        # a 5-row append takes 0.76x the time with 2 partitions as with 4 on 2 cores (benchmarks/delta_commit.py)
        "spark.databricks.delta.snapshotPartitions": str(settings.snapshot_partitions),
        # Delta's VACUUM lists files with this many tasks (default 10000: 150,000 tasks and ~150 s for a small
        # table on 2 cores, ~10 s with this)
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(settings.shuffle_partitions),
        # compiled query classes a JVM keeps (default 100): a job runs hundreds of distinct plans (log replays,
        # GX metrics, MERGEs), and each one evicted is compiled again, then JIT-compiled again
        "spark.sql.codegen.cache.maxEntries": "1000",
    }


def driver_java_options(archive_dump: Path | None = None) -> str:
    """The local driver JVM's options: UTC, the log4j configuration, `LOCAL_JVM_OPTIONS` and the driver's class
    archive (lakehouse.jvm_archive) when built, or, with `archive_dump`, the file to dump one into at exit."""
    from lakehouse import jvm_archive

    archive = jvm_archive.dump_options(archive_dump) if archive_dump else \
        jvm_archive.share_options(jvm_archive.driver_archive())
    return " ".join([f"-Duser.timezone=UTC -Dlog4j.configurationFile={LOG4J_CONFIG}", LOCAL_JVM_OPTIONS, *archive])


def local_builder(app_name: str, settings: Settings, metastore: MetastoreDb, archive_dump: Path | None = None,
                  ) -> SparkSession.Builder:
    """The embedded default's session builder (`get_spark` uses it; `archive_dump`: lakehouse.jvm_archive)."""
    from lakehouse.jars import spark_jars

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
        .config("spark.default.parallelism", str(max(2, os.cpu_count() or 2)))
        # also on the JVM's class path: the Hive client's isolated loader finds the metastore's JDBC driver only
        # there, and the SQL endpoint's sessions load Delta's catalog from there (neither sees spark.jars)
        .config("spark.driver.extraClassPath", os.pathsep.join(str(p) for p in spark_jars()))
        .config("spark.driver.extraJavaOptions", driver_java_options(archive_dump))
        .config("spark.executorEnv.PYSPARK_PYTHON", python)
        .config("spark.python.daemon.module", "lakehouse.worker_daemon")  # workers fork with libraries loaded
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
        .config("spark.driver.memory", os.environ.get("LAKEHOUSE_DRIVER_MEMORY", "4g"))
    )
    for key, value in {**sizing_conf(settings), **LOCAL_SQL_CONF, **delta_conf()}.items():
        builder = builder.config(key, value)
    return _with_metastore(builder, settings, metastore)


def _with_metastore(builder: SparkSession.Builder, settings: Settings, metastore: MetastoreDb
                    ) -> SparkSession.Builder:
    """Hive support on the home's metastore database (the JDBC driver must be on the driver's class path)."""
    from lakehouse.services.metastore import spark_conf

    builder = builder.config("spark.sql.warehouse.dir", str(settings.warehouse)).enableHiveSupport()
    for key, value in spark_conf(metastore).items():
        builder = builder.config(key, value)
    return builder


def _on_cluster() -> bool:
    """Databricks, LAKEHOUSE_ENV=cluster, or spark-submit with a non-local master (YARN, k8s, standalone)."""
    if os.environ.get("DATABRICKS_RUNTIME_VERSION") or os.environ.get("LAKEHOUSE_ENV") == "cluster":
        return True
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not launched by spark-submit
        return False
    from pyspark import SparkConf, SparkContext

    # connect to spark-submit's JVM first: before that, SparkConf() holds no spark.* system properties and
    # every submitted job would look local (and the local builder would override --master)
    SparkContext._ensure_initialized()
    master = SparkConf().get("spark.master", "local[*]") or "local[*]"
    return not master.startswith("local")


def _uses_home_metastore() -> bool:
    """True for a driver submitted with `spark.lakehouse.homeMetastore=true` (lakehouse.submit, for a master on
    this machine): its catalog is the home's Hive metastore, as in a local session."""
    from pyspark import SparkConf

    return (SparkConf().get(HOME_METASTORE_CONF, "false") or "false").lower() == "true"


def get_spark(app_name: str = "lakehouse", settings: Settings | None = None,
              conf: Mapping[str, str] | None = None) -> SparkSession:
    """Return the process's Spark session, building the embedded default when no session exists (`conf`: settings
    of this process's session on top of the platform's, e.g. the SQL endpoint's)."""
    settings = settings or get_settings()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    from lakehouse.services import metastore

    if _on_cluster():
        builder = SparkSession.builder.appName(app_name)  # configured by the cluster / spark-submit
        for key, value in (conf or {}).items():
            builder = builder.config(key, value)
        if not _uses_home_metastore():
            return builder.getOrCreate()
        settings.ensure_dirs()
        db = metastore.ensure_running(settings)
        spark = _with_metastore(builder, settings, db).getOrCreate()
        spark.sparkContext.setLogLevel(os.environ.get("LAKEHOUSE_SPARK_LOG_LEVEL", "WARN"))
        metastore.ensure_schema(spark, db)
        return spark
    db = metastore.ensure_running(settings)  # the shared Hive metastore in PostgreSQL
    builder = local_builder(app_name, settings, db)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("LAKEHOUSE_SPARK_LOG_LEVEL", "WARN"))
    metastore.ensure_schema(spark, db)
    return spark


def stop_spark(timeout: float = 60.0) -> bool:
    """Stop this process's Spark session and, when this process launched the driver JVM, end that JVM (its heap is
    not returned by `SparkSession.stop()`: the JVM lives as long as the Python process). A later `get_spark`
    launches a new one. Returns True when a JVM was ended."""
    from pyspark import SparkContext

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)  # None when the JVM was not launched by this process (spark-submit)
    if gateway is None or proc is None:
        return False
    gateway.shutdown()
    proc.stdin.close()  # the gateway server exits at EOF on its stdin
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:  # shutdown hooks still running: this process's own child, ended
        log.warning("the Spark driver JVM (pid %s) did not exit within %.0f s; killed", proc.pid, timeout)
        proc.kill()
        proc.wait()
    SparkContext._gateway = None
    SparkContext._jvm = None
    return True
