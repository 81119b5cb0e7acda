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
from lakehouse.jars import postgres_jdbc_jar
from lakehouse.services import metastore as hive
from lakehouse.services import postgres
from lakehouse.services.process import free_port
from lakehouse.sources.kafka_admin import create_topics, produce

pytestmark = pytest.mark.e2e


def test_spark_submit_runs_a_job_end_to_end(broker, tmp_path):
    import pyspark

    topic = f"orders_submit_{uuid.uuid4().hex[:6]}"
    create_topics(broker.bootstrap, [topic], 2)
    produce(broker.bootstrap, topic, [(f"k{i}".encode(), f'{{"n":{i}}}'.encode()) for i in range(25)])
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
            # the Hive client finds the metastore's JDBC driver on the driver JVM's class path only
            [str(spark_submit), "--driver-class-path", str(postgres_jdbc_jar()),
             str(REPO_ROOT / "jobs" / "bronze_orders.py"), "--topic", topic],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        table = DeltaTable(str(tmp_path / "tables" / "bronze" / "orders_raw"))
        assert table.to_pyarrow_table().num_rows == 25
        # the job registered the table in the Hive metastore (PostgreSQL) as a Delta table
        db = hive.MetastoreDb(cfg.host, cfg.port, postgres.METASTORE_DB, cfg.user)
        with psycopg.connect(db.dsn) as conn:
            rows = conn.execute(
                'SELECT d."NAME", t."TBL_NAME", p."PARAM_VALUE" FROM "TBLS" t JOIN "DBS" d ON d."DB_ID" = t."DB_ID" '
                'JOIN "TABLE_PARAMS" p ON p."TBL_ID" = t."TBL_ID" AND p."PARAM_KEY" = \'spark.sql.sources.provider\''
            ).fetchall()
        assert rows == [("bronze", "orders_raw", "delta")]
    finally:
        postgres.destroy(cfg)
