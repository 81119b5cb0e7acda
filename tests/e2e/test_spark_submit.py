"""`spark-submit jobs/<job>.py` works on the embedded default (driver JVM started by spark-submit)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakehouse.config import REPO_ROOT
from lakehouse.sources.kafka_admin import create_topics, produce

pytestmark = pytest.mark.e2e


def test_spark_submit_runs_a_job_end_to_end(broker, tmp_path):
    import pyspark

    topic = f"orders_submit_{uuid.uuid4().hex[:6]}"
    create_topics(broker.bootstrap, [topic], 2)
    produce(broker.bootstrap, topic, [(f"k{i}".encode(), f'{{"n":{i}}}'.encode()) for i in range(25)])
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    env = {**os.environ, "LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_KAFKA_BOOTSTRAP": broker.bootstrap,
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    result = subprocess.run(
        [str(spark_submit), str(REPO_ROOT / "jobs" / "bronze_orders.py"), "--topic", topic],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    table = DeltaTable(str(tmp_path / "tables" / "bronze" / "orders_raw"))
    assert table.to_pyarrow_table().num_rows == 25
    # the job registered the table in the catalog through the shim (format `delta`) loaded with ADD JAR
    assert (tmp_path / "metastore_db").is_dir()
    # its Kafka offsets live under the tables root (a cluster keeps them with the tables), not in $LAKEHOUSE_HOME
    assert (tmp_path / "tables" / "_checkpoints" / "bronze_orders" / "offsets").is_dir()
    assert not (tmp_path / "checkpoints").exists()


def test_lakehouse_submit_prints_the_spark_submit_command(tmp_path):
    from lakehouse.jars import spark_jars

    env = {**os.environ, "LAKEHOUSE_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "lakehouse.cli", "submit", "--print", "--master",
                             "spark://127.0.0.1:7077", "bronze_orders", "--topic", "t"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    argv = result.stdout.split()
    assert argv[1:5] == ["--master", "spark://127.0.0.1:7077", "--jars", ",".join(map(str, spark_jars()))]
    assert argv[-3:] == [str(REPO_ROOT / "jobs" / "bronze_orders.py"), "--topic", "t"]
