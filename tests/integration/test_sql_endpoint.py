"""The SQL endpoint (Spark Thrift server) serves catalog tables to JDBC clients (BeeLine) with exact rows, while
other Spark processes write the same tables through the shared Hive metastore (PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import uuid
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakehouse.config import REPO_ROOT, Settings
from lakehouse.governance.accounts import credentials
from lakehouse.services.process import free_port
from lakehouse.services.sql_endpoint import beeline_query, start_sql_endpoint, stop_sql_endpoint


@pytest.fixture()
def endpoint_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metastore) -> Settings:
    """A home of its own (tables root, logs) on the test session's shared metastore."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAKEHOUSE_SQL_PORT", str(free_port()))
    monkeypatch.delenv("LAKEHOUSE_TABLES_ROOT", raising=False)
    settings = Settings.from_env()
    settings.ensure_dirs()
    return settings


def _sales(dates: list[dt.date], channels: list[str], orders: list[int]) -> pa.Table:
    return pa.table({
        "order_date": pa.array(dates),
        "channel": channels,
        "currency": ["EUR"] * len(dates),
        "orders": pa.array(orders, pa.int64()),
        "revenue": pa.array([Decimal(f"{10 * n}.50") for n in orders], pa.decimal128(18, 2)),
    })


def test_beeline_reads_exact_rows(endpoint_settings: Settings) -> None:
    settings = endpoint_settings
    name = f"sales_daily_{uuid.uuid4().hex[:8]}"
    write_deltalake(
        f"{settings.tables_root}/gold/{name}",
        pa.table(
            {
                "order_date": pa.array([dt.date(2026, 1, 1), dt.date(2026, 1, 1), dt.date(2026, 1, 2)]),
                "channel": ["web", "ebay", "web"],
                "currency": ["EUR", "EUR", "USD"],
                "orders": pa.array([3, 1, 2], pa.int64()),
                "units": pa.array([5, 1, 4], pa.int64()),
                "revenue": pa.array(
                    [Decimal("100.50"), Decimal("9.99"), Decimal("42.00")], pa.decimal128(18, 2)
                ),
            }
        ),
    )
    start_sql_endpoint(settings, timeout=300)
    try:
        out = beeline_query(
            settings,
            f"SELECT order_date, channel, currency, orders, units, revenue FROM gold.{name} "
            "ORDER BY order_date, channel",
        )
        assert out.strip().splitlines() == [
            "2026-01-01,ebay,EUR,1,1,9.99",
            "2026-01-01,web,EUR,3,5,100.50",
            "2026-01-02,web,USD,2,4,42.00",
        ]
        # answered from Delta's statistics elsewhere; here that path failed on the Thrift server's java.time dates
        out = beeline_query(settings, f"SELECT min(order_date), max(order_date), count(*) FROM gold.{name}")
        assert out.strip() == "2026-01-01,2026-01-02,3"
        # Python DB-API (PyHive, what dbt's `endpoint` target and notebooks use): typed rows by table name
        from pyhive import hive

        login = credentials(settings, "ana")  # an analyst (lakehouse.governance)
        with closing(hive.connect(host="127.0.0.1", port=settings.sql_port, username=login.user,
                                  password=login.password, auth="CUSTOM")) as conn:
            cursor = conn.cursor()
            cursor.execute(f"SELECT channel, sum(orders), sum(revenue) FROM gold.{name} GROUP BY channel "
                           "ORDER BY channel")
            assert cursor.fetchall() == [("ebay", 1, Decimal("9.99")), ("web", 5, Decimal("142.50"))]
        # writes through JDBC work too (for a data engineer): a managed Delta table created by CTAS, then read back
        beeline_query(
            settings,
            f"CREATE TABLE gold.{name}_totals USING delta AS "
            f"SELECT channel, sum(revenue) AS revenue FROM gold.{name} GROUP BY channel",
            user="dee",
        )
        out = beeline_query(settings, f"SELECT channel, revenue FROM gold.{name}_totals ORDER BY channel")
        assert out.strip().splitlines() == ["ebay,9.99", "web,142.50"]
    finally:
        assert stop_sql_endpoint(settings)


# A writer in its own process: opens its Spark session (on the shared metastore), reads the table by name, says
# "ready", waits for "go", MERGEs 2 new rows and updates 1 by name, says "committed", waits for "exit".
WRITER = textwrap.dedent("""
    import sys
    from lakehouse.spark import get_spark
    from lakehouse.tables.catalog import table_location

    name = sys.argv[1]
    spark = get_spark("endpoint-test-writer")
    print("ready", spark.table(name).count(), table_location(spark, name), flush=True)
    assert sys.stdin.readline().strip() == "go"
    spark.sql(f'''
        MERGE INTO {name} AS t
        USING (SELECT * FROM VALUES
                 (DATE'2026-01-01', 'web', 'EUR', 7L, 70.50BD),
                 (DATE'2026-01-03', 'web', 'EUR', 4L, 40.50BD),
                 (DATE'2026-01-03', 'ebay', 'EUR', 1L, 10.50BD)
               AS s(order_date, channel, currency, orders, revenue))
        ON t.order_date = s.order_date AND t.channel = s.channel
        WHEN MATCHED THEN UPDATE SET orders = s.orders, revenue = s.revenue
        WHEN NOT MATCHED THEN INSERT *''')
    print("committed", spark.table(name).count(), flush=True)
    assert sys.stdin.readline().strip() == "exit"
    spark.stop()
""")


def _say(proc: subprocess.Popen, line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _hear(proc: subprocess.Popen) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, f"the writer exited ({proc.poll()}) without answering; see its stderr"
    return line


def test_endpoint_answers_while_another_process_merges_into_the_table(endpoint_settings: Settings) -> None:
    """The endpoint and a writer process use the metastore at once; the endpoint's exact answers change from the
    state before the writer's commit to the state after it."""
    settings = endpoint_settings
    name = f"gold.sales_live_{uuid.uuid4().hex[:8]}"
    location = f"{settings.tables_root}/{name.replace('.', '/')}"
    write_deltalake(location, _sales([dt.date(2026, 1, 1), dt.date(2026, 1, 1), dt.date(2026, 1, 2)],
                                     ["web", "ebay", "web"], [3, 1, 2]))
    start_sql_endpoint(settings, timeout=300)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, name], cwd=REPO_ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    query = f"SELECT count(*), sum(orders), sum(revenue) FROM {name}"
    try:
        assert _hear(writer) == f"ready 3 file:{location}"  # the writer's session resolved the name too
        assert beeline_query(settings, query).strip() == "3,6,61.50"
        _say(writer, "go")
        assert _hear(writer) == "committed 5"
        assert beeline_query(settings, query).strip() == "5,15,152.50"
        assert beeline_query(settings, f"SELECT orders FROM {name} WHERE order_date = '2026-01-01' "
                                       "AND channel = 'web'").strip() == "7"
        _say(writer, "exit")
        assert writer.wait(120) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
        assert stop_sql_endpoint(settings)


def test_analysts_dbt_build_runs_through_the_endpoint(endpoint_settings: Settings, spark, tmp_path: Path) -> None:
    """`cd dbt_project && dbt build` (the profile's default `endpoint` target, dbt-spark over Thrift, logged in as a
    data engineer) builds the marts inside the endpoint and runs their tests there; BeeLine then reads the mart."""
    import json
    import os

    from dbt_sources import write_sources

    settings = endpoint_settings
    dbt_vars = write_sources(spark)  # the hand-made gold and silver of test_dbt, in private databases
    start_sql_endpoint(settings, timeout=300)
    try:
        login = credentials(settings, "dee")  # a data engineer builds the marts (`lakehouse sql-endpoint login`)
        env = {**os.environ, "DBT_TARGET_PATH": str(tmp_path / "target"), "DBT_LOG_PATH": str(tmp_path / "logs"),
               "LAKEHOUSE_SQL_USER": login.user, "LAKEHOUSE_SQL_PASSWORD": login.password}
        done = subprocess.run(
            [str(Path(sys.executable).parent / "dbt"), "build", "--select", "+fct_sales_weekly",
             "--indirect-selection", "cautious", "--vars", json.dumps(dbt_vars)],  # tests of unbuilt models skipped
            cwd=REPO_ROOT / "dbt_project", env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, "\n".join(line for line in done.stdout.splitlines()
                                                if "ERROR" in line or "Error" in line or "Exception:" in line)
        assert "Concurrency: 2 threads (target='endpoint')" in done.stdout
        assert "ERROR=0" in done.stdout and "PASS=" in done.stdout
        out = beeline_query(settings, "SELECT sales_key, units, net_revenue FROM marts.fct_sales_weekly "
                                      "ORDER BY sales_key")
        assert out.strip().splitlines() == [
            "2026-03-02|web|EU|bags,1,0.00",
            "2026-03-02|web|EU|shoes,3,10.00",
            "2026-03-09|amazon|NA|bags,4,9.00",
            "2026-03-30|web|EU|shoes,1,10.00",
        ]
    finally:
        assert stop_sql_endpoint(settings)
