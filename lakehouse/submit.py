"""`spark-submit` of a job, configured in one place: the same entry points users run, on any master.

`submit_argv(job, args, master=...)` builds
`spark-submit --master M --jars <pinned jars> --driver-class-path <PostgreSQL JDBC jar> --conf ... jobs/<job>.py
args`:

* `--jars`: the pinned jars of `make jars` (Delta Lake, Spark's Kafka connector, PostgreSQL JDBC); executors
  fetch them from the driver. A cluster that ships Delta itself (Databricks) passes `jars=[]`.
* `--driver-class-path`: the PostgreSQL JDBC driver. The driver JVM is running before the job builds its
  session, and Spark's Hive client loads the metastore's JDBC driver from the JVM's class path only. On a master
  of this machine, every pinned jar, as a local session has them (lakehouse.spark.local_builder): the driver then
  maps the class archive `make` built for that class path (lakehouse.jvm_archive), which needs the same one.
* Delta's SQL extension and catalog (lakehouse.spark.delta_conf), UTC for Spark SQL and the JVMs, the settings'
  shuffle partitions, the platform's Python worker daemon and Arrow.
* `spark.pyspark.python`: the driver's and executors' interpreter (this venv by default), which must import
  `lakehouse`, `transformations` and `jobs` (the installed package: an editable checkout or the wheel).
* On a master of this machine (local[...], spark://127.0.0.1:...) the driver binds 127.0.0.1 and uses the
  home's Hive metastore (`spark.lakehouse.homeMetastore=true`, read by lakehouse.spark.get_spark), so a job
  on the local standalone cluster sees the same catalog as a local run.

The job file comes from the installed `jobs` package, so a wheel installed outside the checkout submits the
same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from lakehouse.config import Settings, get_settings
from lakehouse.errors import LakehouseError

LOCAL_MASTER_HOSTS = ("127.0.0.1", "localhost")
# the heap of a driver submitted here ($LAKEHOUSE_DRIVER_MEMORY overrides; spark-submit's default is 1g): the
# pipeline's six stage drivers run at once, and at 1g gold_commerce ran out of heap recomputing its tables over
# the silver of a 20-kill drill (500,000 events on a demo home)
SUBMITTED_DRIVER_MEMORY = "2g"


def job_file(job: str) -> Path:
    """jobs/<job>.py of the installed `jobs` package."""
    import jobs

    path = Path(jobs.__file__).resolve().parent / f"{job}.py"
    if job.startswith("_") or not path.is_file():
        from lakehouse.jobs_registry import job_names

        raise LakehouseError(f"unknown job {job!r}; jobs are: {', '.join(job_names())}")
    return path


def spark_submit() -> Path:
    """bin/spark-submit of the installed pyspark package."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "bin" / "spark-submit"


def is_local_master(master: str) -> bool:
    """local[...] or a standalone master on this machine: the driver runs here, next to the home's services."""
    return master.startswith("local") or any(f"://{h}:" in master for h in LOCAL_MASTER_HOSTS)


def submit_conf(settings: Settings, master: str, python: str | None = None) -> dict[str, str]:
    """The --conf pairs every submitted job gets."""
    from lakehouse.spark import (
        HOME_METASTORE_CONF,
        LOCAL_JVM_OPTIONS,
        LOCAL_SQL_CONF,
        delta_conf,
        driver_java_options,
        sizing_conf,
    )

    python = python or sys.executable
    local = is_local_master(master)
    here = f" {LOCAL_JVM_OPTIONS}" if local else ""  # a remote cluster's JVMs are its own business
    # a driver here: the local session's JVM options, with its class archive (mapped with the class path below)
    java_options = driver_java_options() if local else "-Duser.timezone=UTC"
    conf = {
        **delta_conf(),
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": java_options,
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC" + here,
        **sizing_conf(settings),
        "spark.pyspark.python": python,
        "spark.pyspark.driver.python": python,
        "spark.python.daemon.module": "lakehouse.worker_daemon",  # workers fork with libraries loaded
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": os.environ.get("LAKEHOUSE_SPARK_UI", "false"),
    }
    if local:
        conf |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                 HOME_METASTORE_CONF: "true", **LOCAL_SQL_CONF,
                 "spark.driver.memory": os.environ.get("LAKEHOUSE_DRIVER_MEMORY", SUBMITTED_DRIVER_MEMORY)}
    return conf


def submit_argv(job: str, args: Sequence[str] = (), *, master: str, settings: Settings | None = None,
                jars: Sequence[Path] | None = None, conf: Mapping[str, str] | None = None,
                python: str | None = None, options: Sequence[str] = ()) -> list[str]:
    """The spark-submit command line of `job` (a name in jobs/) with `args`; `jars` default to the pinned jars
    (`[]`: none, for a cluster that has them), `options` are extra spark-submit options (e.g.
    `--executor-memory 1g`), `conf` overrides the default --conf pairs."""
    from lakehouse.jars import spark_jars

    settings = settings or get_settings()
    jars = spark_jars() if jars is None else list(jars)
    argv = [str(spark_submit()), "--master", master]
    if jars:
        argv += ["--jars", ",".join(str(p) for p in jars)]
        # the Hive client of the driver loads the metastore's JDBC driver from the class path only; a driver here
        # gets every jar there, the class path of its class archive (see the module docstring)
        on_path = [str(p) for p in jars if is_local_master(master) or Path(p).name.startswith("postgresql-")]
        if on_path:
            argv += ["--driver-class-path", os.pathsep.join(on_path)]
    for key, value in {**submit_conf(settings, master, python), **(conf or {})}.items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, *options, str(job_file(job)), *args]


def submit_env(master: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of spark-submit: this one plus `env`; SPARK_LOCAL_IP=127.0.0.1 on a master of this
    machine (the driver's and the JVM's own addresses stay on the loopback)."""
    local = {"SPARK_LOCAL_IP": "127.0.0.1"} if is_local_master(master) else {}
    return {**os.environ, **local, **(env or {})}


def submit(job: str, args: Sequence[str] = (), *, master: str, env: Mapping[str, str] | None = None,
           cwd: str | Path | None = None, timeout: float | None = None, **kwargs: object
           ) -> subprocess.CompletedProcess[str]:
    """Run `submit_argv(...)` and return the finished process (output captured)."""
    argv = submit_argv(job, args, master=master, **kwargs)  # type: ignore[arg-type]
    return subprocess.run(argv, env=submit_env(master, env), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
