"""Catalog tables `USING delta` (native Delta or the JVM shim over the delta-rs Python source), in Spark SQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse.errors import LakehouseError
from lakehouse.tables.catalog import list_catalog_tables, normalize_location, register_table, table_location

REPO = Path(__file__).resolve().parents[2]


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _rows(spark, sql: str) -> list[tuple]:
    return [tuple(r) for r in spark.sql(sql).collect()]


def test_shim_jar_is_built_once(settings) -> None:
    from lakehouse.tables.shim import ensure_shim_jar

    jar = ensure_shim_jar(settings)
    if jar is None:
        pytest.skip("no shim sources")
    mtime = jar.stat().st_mtime
    started = time.perf_counter()
    assert ensure_shim_jar(settings) == jar
    assert time.perf_counter() - started < 0.5
    assert jar.stat().st_mtime == mtime
    import zipfile

    with zipfile.ZipFile(jar) as zf:
        names = set(zf.namelist())
    assert "META-INF/services/org.apache.spark.sql.sources.DataSourceRegister" in names
    assert "lakehouse/shim/DeltaShimProvider.class" in names


def test_shim_build_without_javac_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse import jvm
    from lakehouse.tables.shim import SHIM_ROOT

    monkeypatch.setattr(jvm, "javac", lambda: None)
    with pytest.raises(LakehouseError, match="javac"):
        jvm.build_jar(SHIM_ROOT, tmp_path / "build" / "shim.jar", "Delta catalog shim")
    assert not (tmp_path / "build" / "shim.jar").exists()


def test_register_existing_table_by_location(spark, settings) -> None:
    table = _name("ext")
    location = f"{settings.tables_root}/gold/{table}"
    data = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "channel": ["web", "web", "ebay"],
            "revenue": pa.array([Decimal("1.50"), Decimal("2.25"), Decimal("10.00")], pa.decimal128(18, 2)),
        }
    )
    write_deltalake(location, data, partition_by=["channel"])

    register_table(spark, f"gold.{table}", location)
    register_table(spark, f"gold.{table}", location)  # idempotent
    assert _rows(spark, f"SELECT id, channel, revenue FROM gold.{table} ORDER BY id") == [
        (1, "web", Decimal("1.50")),
        (2, "web", Decimal("2.25")),
        (3, "ebay", Decimal("10.00")),
    ]
    schema = spark.table(f"gold.{table}").schema
    assert [(f.name, f.dataType.simpleString()) for f in schema] == [
        ("id", "bigint"),
        ("channel", "string"),
        ("revenue", "decimal(18,2)"),
    ]
    assert normalize_location(table_location(spark, f"gold.{table}")) == normalize_location(location)
    listed = {t.name: t for t in list_catalog_tables(spark, ["gold"])}
    assert listed[f"gold.{table}"].table_type == "EXTERNAL"

    spark.sql(f"INSERT INTO gold.{table} VALUES (4, 'amazon', 3.00)")
    assert _rows(spark, f"SELECT count(*), sum(revenue) FROM gold.{table}") == [(4, Decimal("16.75"))]
    assert DeltaTable(location).version() == 1  # one Delta commit for the INSERT

    with pytest.raises(LakehouseError, match="already registered"):
        register_table(spark, f"gold.{table}", f"{settings.tables_root}/gold/elsewhere")

    spark.sql(f"DROP TABLE gold.{table}")  # external: the data stays
    assert DeltaTable(location).to_pyarrow_table().num_rows == 4


def test_ctas_insert_and_overwrite_managed(spark, settings) -> None:
    table = _name("ctas")
    spark.sql("CREATE DATABASE IF NOT EXISTS silver")
    # As for Hive tables, partition columns must come last in the SELECT (Spark's V2 session catalog checks it).
    spark.sql(
        f"""CREATE TABLE silver.{table} USING delta PARTITIONED BY (channel) AS
            SELECT * FROM VALUES (1, 2L, 'web'), (2, 3L, 'store') AS t(id, units, channel)"""
    )
    location = normalize_location(table_location(spark, f"silver.{table}"))
    assert location.startswith(str(settings.warehouse))  # managed: under the warehouse dir
    assert DeltaTable(location).metadata().partition_columns == ["channel"]

    spark.sql(f"INSERT INTO silver.{table} VALUES (3, 5, 'web')")
    assert _rows(spark, f"SELECT id, channel, units FROM silver.{table} ORDER BY id") == [
        (1, "web", 2),
        (2, "store", 3),
        (3, "web", 5),
    ]
    spark.sql(f"INSERT OVERWRITE silver.{table} SELECT 9, 1L, 'ebay'")
    assert _rows(spark, f"SELECT * FROM silver.{table}") == [(9, 1, "ebay")]
    assert DeltaTable(location).version() == 2  # CTAS, INSERT, INSERT OVERWRITE: one commit each

    spark.sql(f"DROP TABLE silver.{table}")  # managed: the data goes too
    assert not Path(location).exists()


def test_save_as_table_modes(spark) -> None:
    name = f"gold.{_name('sat')}"
    df = spark.range(5).selectExpr("id", "CAST(id * 2 AS INT) AS doubled")
    df.write.format("delta").saveAsTable(name)
    with pytest.raises(Exception, match="(?i)already exists"):
        df.write.format("delta").saveAsTable(name)
    df.write.format("delta").mode("append").saveAsTable(name)
    assert _rows(spark, f"SELECT count(*), sum(doubled) FROM {name}") == [(10, 40)]
    df.limit(2).write.format("delta").mode("overwrite").saveAsTable(name)
    assert sorted(tuple(r) for r in spark.table(name).collect()) == [(0, 0), (1, 2)]
    spark.sql(f"CREATE OR REPLACE TABLE {name} USING delta AS SELECT 'x' AS s")
    assert _rows(spark, f"SELECT * FROM {name}") == [("x",)]
    spark.sql(f"DROP TABLE {name}")


def test_dynamic_partition_overwrite(spark) -> None:
    """dbt's insert_overwrite sets partitionOverwriteMode=dynamic: fine unpartitioned, refused when partitioned."""
    flat, parted = f"gold.{_name('dyn')}", f"gold.{_name('dynp')}"
    spark.sql(f"CREATE TABLE {flat} USING delta AS SELECT 1 AS id")
    spark.sql(f"CREATE TABLE {parted} USING delta PARTITIONED BY (p) AS SELECT 1 AS id, 'a' AS p")
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    try:
        spark.sql(f"INSERT OVERWRITE {flat} SELECT 2 AS id")
        assert _rows(spark, f"SELECT * FROM {flat}") == [(2,)]
        with pytest.raises(Exception, match="dynamic overwrite"):
            spark.sql(f"INSERT OVERWRITE {parted} SELECT 2 AS id, 'b' AS p")
        assert _rows(spark, f"SELECT * FROM {parted}") == [(1, "a")]
    finally:
        spark.conf.unset("spark.sql.sources.partitionOverwriteMode")
    spark.sql(f"DROP TABLE {flat}")
    spark.sql(f"DROP TABLE {parted}")


_CROSS_PROCESS = textwrap.dedent(
    """
    import json, sys
    from lakehouse.spark import get_spark
    from lakehouse.tables.catalog import register_table
    spark = get_spark("cross-process")
    if sys.argv[1] == "write":
        spark.sql("CREATE DATABASE IF NOT EXISTS gold")
        spark.sql("CREATE TABLE gold.managed USING delta AS SELECT * FROM VALUES (1, 'a'), (2, 'b') AS t(id, s)")
        register_table(spark, "gold.external", sys.argv[2])
    else:
        out = {t: [list(r) for r in spark.sql(f"SELECT * FROM gold.{t} ORDER BY 1").collect()]
               for t in ("managed", "external")}
        print("RESULT " + json.dumps(out))
    spark.stop()
    """
)


def test_new_process_reads_tables_by_name(tmp_path: Path) -> None:
    """Tables created in one Spark process are readable by name in the next (same $LAKEHOUSE_HOME).

    Uses its own home: the embedded Derby metastore admits one process at a time, and this test process's
    shared session holds the shared home's metastore.
    """
    home = tmp_path / "home"
    external = tmp_path / "external"
    write_deltalake(str(external), pa.table({"k": ["x", "y"], "v": pa.array([1.5, 2.5])}))
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "PYSPARK_PYTHON": sys.executable}
    env.pop("LAKEHOUSE_TABLES_ROOT", None)
    for step in ("write", "read"):
        proc = subprocess.run(
            [sys.executable, "-c", _CROSS_PROCESS, step, str(external)],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result == {"managed": [[1, "a"], [2, "b"]], "external": [["x", 1.5], ["y", 2.5]]}
