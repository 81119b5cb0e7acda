"""`spark-submit jobs/<job>.py` works on the embedded default (driver JVM started by spark-submit)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from deltalake import DeltaTable

from lakehouse.config import REPO_ROOT, Settings
from lakehouse.jars import postgres_jdbc_jar, spark_jars
from lakehouse.services import metastore as hive
from lakehouse.services import postgres
from lakehouse.services.process import free_port
from lakehouse.sources.kafka_admin import create_topics, produce

pytestmark = pytest.mark.e2e


def test_spark_submit_runs_a_job_end_to_end(broker, tmp_path):
    import pyspark

    prefix = f"submit_{uuid.uuid4().hex[:6]}_"
    create_topics(broker.bootstrap, [f"{prefix}orders"], 2)
    good = [(f"k{i}".encode(), f'{{"n":{i}}}'.encode()) for i in range(22)]
    bad = [(b"b1", b"{not json"), (b"b2", b""), (b"b3", b"\xff\xfe")]  # dead letters, each with its reason
    produce(broker.bootstrap, f"{prefix}orders", good + bad)
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    pg_port = free_port()  # a metastore of its own: its home's PostgreSQL cluster, started by the job's get_spark
    env = {**os.environ, "LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_KAFKA_BOOTSTRAP": broker.bootstrap,
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "LAKEHOUSE_PG_PORT": str(pg_port)}
    env.pop(hive.URL_ENV, None)
    settings = dataclasses.replace(Settings.from_env(), home=tmp_path)
    cfg = postgres.pg_config(settings, port=pg_port)
    try:
        result = subprocess.run(
            # as on a cluster: the platform's jars passed to spark-submit (the driver JVM is already running when
            # the job builds its session); the Hive client finds the JDBC driver on the driver's class path only
            [str(spark_submit), "--jars", ",".join(map(str, spark_jars())),
             "--driver-class-path", str(postgres_jdbc_jar()),
             str(REPO_ROOT / "jobs" / "bronze_events.py"), "--family", "orders", "--topic-prefix", prefix],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )
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
    finally:
        postgres.destroy(cfg)
