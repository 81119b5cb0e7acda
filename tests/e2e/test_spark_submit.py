"""`spark-submit jobs/<job>.py` works on the embedded default (driver JVM started by spark-submit), with the
command line `lakehouse submit` builds (lakehouse.submit), so the command users run is the one tested."""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
import uuid

import psycopg
import pytest
from deltalake import DeltaTable

from lakehouse import jvm_archive
from lakehouse.config import REPO_ROOT, Settings
from lakehouse.jars import postgres_jdbc_jar, spark_jars
from lakehouse.services import metastore as hive
from lakehouse.services import postgres
from lakehouse.services.process import free_port
from lakehouse.sources.kafka_admin import create_topics, produce
from lakehouse.submit import submit_argv, submit_conf, submit_env

pytestmark = pytest.mark.e2e


def test_spark_submit_runs_a_job_end_to_end(broker, tmp_path):
    prefix = f"submit_{uuid.uuid4().hex[:6]}_"
    create_topics(broker.bootstrap, [f"{prefix}orders"], 2)
    good = [(f"k{i}".encode(), f'{{"n":{i}}}'.encode()) for i in range(22)]
    bad = [(b"b1", b"{not json"), (b"b2", b""), (b"b3", b"\xff\xfe")]  # dead letters, each with its reason
    produce(broker.bootstrap, f"{prefix}orders", good + bad)
    pg_port = free_port()  # a metastore of its own: its home's PostgreSQL cluster, started by the job's get_spark
    env = {"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_KAFKA_BOOTSTRAP": broker.bootstrap,
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "LAKEHOUSE_PG_PORT": str(pg_port), hive.URL_ENV: ""}
    settings = dataclasses.replace(Settings.from_env(), home=tmp_path)
    cfg = postgres.pg_config(settings, port=pg_port)
    # as on a cluster: the platform's jars passed to spark-submit (the driver JVM is already running when the job
    # builds its session); the Hive client finds the JDBC driver on the driver's class path only. A driver on this
    # machine has every jar there and maps the class archive `make` built: -Xshare:on makes a driver that
    # cannot map it (another class path, a stale archive) exit at once instead of starting without it
    archive = jvm_archive.driver_archive()
    assert archive.is_file(), f"{archive} is missing: `make test` builds it (python -m lakehouse.jvm_archive)"
    driver = submit_conf(settings, "local[*]")["spark.driver.extraJavaOptions"]
    assert driver.endswith(f"-XX:SharedArchiveFile={archive}"), driver
    argv = submit_argv("bronze_events", ["--family", "orders", "--topic-prefix", prefix], master="local[*]",
                       settings=settings, conf={"spark.driver.extraJavaOptions": f"{driver} -Xshare:on"})
    assert argv[1:7] == ["--master", "local[*]", "--jars", ",".join(map(str, spark_jars())),
                         "--driver-class-path", ":".join(map(str, spark_jars()))]
    try:
        result = subprocess.run(argv, cwd=tmp_path, env=submit_env("local[*]", env), capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        events = DeltaTable(str(tmp_path / "tables" / "bronze" / "orders_events")).to_pyarrow_table()
        assert sorted(events.column("value").to_pylist()) == sorted(v for _, v in good)
        dead = DeltaTable(str(tmp_path / "tables" / "bronze" / "dead_letter")).to_pyarrow_table().to_pylist()
        assert sorted((r["key"], r["reason"]) for r in dead) == [
            (b"b1", "not_json"), (b"b2", "empty"), (b"b3", "not_utf8")]
        # the job registered its tables in the Hive metastore (PostgreSQL) as Delta tables
        db = hive.MetastoreDb(cfg.host, cfg.port, postgres.METASTORE_DB, cfg.user)
        with psycopg.connect(db.dsn) as conn:
            rows = conn.execute(
                'SELECT d."NAME", t."TBL_NAME", p."PARAM_VALUE" FROM "TBLS" t JOIN "DBS" d ON d."DB_ID" = t."DB_ID" '
                'JOIN "TABLE_PARAMS" p ON p."TBL_ID" = t."TBL_ID" AND p."PARAM_KEY" = \'spark.sql.sources.provider\''
            ).fetchall()
        assert sorted(rows) == [("bronze", "dead_letter", "delta"), ("bronze", "orders_events", "delta")]
        # its Kafka offsets live under the tables root (a cluster keeps them with the tables), not in the home
        assert (tmp_path / "tables" / "_checkpoints" / "bronze_events_orders" / "offsets").is_dir()
        assert not (tmp_path / "checkpoints").exists()
    finally:
        postgres.destroy(cfg)


def test_lakehouse_submit_prints_the_spark_submit_command(tmp_path):
    env = {**os.environ, "LAKEHOUSE_HOME": str(tmp_path)}
    master = "spark://127.0.0.1:7077"
    result = subprocess.run([sys.executable, "-m", "lakehouse.cli", "submit", "--print", "--master", master,
                             "bronze_events", "--family", "orders", "--topic-prefix", "p_"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    argv = shlex.split(result.stdout)
    # exactly the command the tests submit (lakehouse.submit): the pinned jars, also on the driver's class path
    assert argv == submit_argv("bronze_events", ["--family", "orders", "--topic-prefix", "p_"], master=master,
                               settings=dataclasses.replace(Settings.from_env(), home=tmp_path))
    assert argv[1:7] == ["--master", master, "--jars", ",".join(map(str, spark_jars())),
                         "--driver-class-path", ":".join(map(str, spark_jars()))]
    assert str(postgres_jdbc_jar()) in argv[6].split(":")
    confs = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--conf")
    assert {k: confs[k] for k in ("spark.sql.extensions", "spark.sql.catalog.spark_catalog",
                                  "spark.lakehouse.homeMetastore", "spark.driver.host", "spark.pyspark.python")} == {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.lakehouse.homeMetastore": "true", "spark.driver.host": "127.0.0.1",
        "spark.pyspark.python": sys.executable}
    assert argv[-5:] == [str(REPO_ROOT / "jobs" / "bronze_events.py"), "--family", "orders", "--topic-prefix", "p_"]
