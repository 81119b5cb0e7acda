"""The Hive metastore in PostgreSQL: several Spark processes use one catalog at once, and a first start killed
while it creates the schema is completed by the next (concurrent) starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakehouse.config import REPO_ROOT
from lakehouse.services import metastore as hive
from lakehouse.tables.catalog import list_catalog_tables, normalize_location, table_location

# Hive 2.3's metastore model (DataNucleus SchemaTool), DataNucleus' id sequence table and the first start's mark
SCHEMA = [
    "BUCKETING_COLS", "CDS", "COLUMNS_V2", "DATABASE_PARAMS", "DBS", "DB_PRIVS", "DELEGATION_TOKENS", "FUNCS",
    "FUNC_RU", "GLOBAL_PRIVS", "IDXS", "INDEX_PARAMS", "KEY_CONSTRAINTS", "MASTER_KEYS", "NOTIFICATION_LOG",
    "NOTIFICATION_SEQUENCE", "PARTITIONS", "PARTITION_EVENTS", "PARTITION_KEYS", "PARTITION_KEY_VALS",
    "PARTITION_PARAMS", "PART_COL_PRIVS", "PART_COL_STATS", "PART_PRIVS", "ROLES", "ROLE_MAP", "SDS", "SD_PARAMS",
    "SEQUENCE_TABLE", "SERDES", "SERDE_PARAMS", "SKEWED_COL_NAMES", "SKEWED_COL_VALUE_LOC_MAP", "SKEWED_STRING_LIST",
    "SKEWED_STRING_LIST_VALUES", "SKEWED_VALUES", "SORT_COLS", "TABLE_PARAMS", "TAB_COL_STATS", "TBLS",
    "TBL_COL_PRIVS", "TBL_PRIVS", "TYPES", "TYPE_FIELDS", "VERSION", hive.READY_TABLE,
]

# A Spark process of its own: registers the Delta table at argv[2] as argv[1], then prints the tables it sees.
REGISTER = textwrap.dedent("""
    import sys
    from lakehouse.spark import get_spark
    from lakehouse.tables.catalog import register_table

    spark = get_spark("metastore-test")
    register_table(spark, sys.argv[1], sys.argv[2])
    print(",".join(sorted(t.name for t in spark.catalog.listTables(sys.argv[1].split(".")[0]))), flush=True)
""")


def _register(name: str, location: Path, home: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", REGISTER, name, str(location)], cwd=REPO_ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "LAKEHOUSE_HOME": str(home), **env},
    )


def _delta(path: Path, rows: int) -> Path:
    write_deltalake(str(path), pa.table({"id": pa.array(range(rows), pa.int64())}))
    return path


def _finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out.strip().splitlines()[-1]


def test_two_processes_and_this_session_share_one_catalog(spark, metastore: hive.MetastoreDb, tmp_path: Path) -> None:
    """Two jobs register tables at the same time while this test's session is open; everyone sees both."""
    tag = uuid.uuid4().hex[:8]
    names = [f"silver.a_{tag}", f"silver.b_{tag}"]
    a, b = _delta(tmp_path / "a", 3), _delta(tmp_path / "b", 5)
    spark.sql("CREATE DATABASE IF NOT EXISTS silver")
    procs = [_register(names[0], a, tmp_path / "home_a"), _register(names[1], b, tmp_path / "home_b")]
    outs = [_finish(p).split(",") for p in procs]
    assert f"a_{tag}" in outs[0] and f"b_{tag}" in outs[1]
    assert [t.name for t in list_catalog_tables(spark, ["silver"]) if t.name.endswith(tag)] == names
    assert normalize_location(table_location(spark, names[0])) == str(a.resolve())
    assert normalize_location(table_location(spark, names[1])) == str(b.resolve())
    assert spark.table(names[0]).count() == 3 and spark.table(names[1]).count() == 5
    assert hive.metastore_tables(metastore) == SCHEMA


def _wait_for_tables(db: hive.MetastoreDb, proc: subprocess.Popen, timeout: float = 600) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else ""
        tables = hive.metastore_tables(db)
        if tables:
            return tables
        time.sleep(0.1)
    raise AssertionError("the first start created no table")


def test_first_start_killed_while_creating_the_schema_is_completed_by_two_concurrent_starts(
    fresh_metastore: hive.MetastoreDb, tmp_path: Path
) -> None:
    import psycopg

    db = fresh_metastore
    env = {hive.URL_ENV: db.jdbc_url}
    first = _register("silver.first", _delta(tmp_path / "first", 1), tmp_path / "home_1", **env)
    seen = _wait_for_tables(db, first)
    os.killpg(first.pid, signal.SIGKILL)  # the driver, its JVM and DataNucleus' SchemaTool run
    first.wait(60)
    after_kill = hive.metastore_tables(db)
    assert hive.READY_TABLE not in after_kill and len(after_kill) >= len(seen) > 0

    procs = [_register("silver.second", _delta(tmp_path / "second", 2), tmp_path / "home_2", **env),
             _register("silver.third", _delta(tmp_path / "third", 3), tmp_path / "home_3", **env)]
    outs = [_finish(p) for p in procs]
    assert "second" in outs[0].split(",") and "third" in outs[1].split(",")
    assert hive.metastore_tables(db) == SCHEMA  # the complete schema, as after an undisturbed first start
    with psycopg.connect(db.dsn) as conn:
        names = conn.execute('SELECT "TBL_NAME" FROM "TBLS" ORDER BY 1').fetchall()
    assert [n[0] for n in names] == ["second", "third"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the placement for the `postgres` user applies when run as root")
def test_postgres_runs_for_a_home_inside_a_mode_700_folder(tmp_path: Path) -> None:
    """A clone in root's private home: the cluster lives where the `postgres` user reaches it, linked from there."""
    import dataclasses

    from lakehouse.config import Settings
    from lakehouse.services import postgres
    from lakehouse.services.process import free_port

    private = tmp_path / "root_home"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    settings = dataclasses.replace(Settings.from_env(), home=private / "clone" / ".lakehouse")
    cfg = postgres.pg_config(settings, port=free_port())
    try:
        postgres.start(cfg)
        with postgres.connect(cfg) as conn:
            assert conn.execute("SELECT current_database(), current_user").fetchone() == ("erp", "lakehouse")
        assert cfg.root.parent == postgres.runtime_root()
        assert (settings.home / "postgres").resolve() == cfg.root
        assert (cfg.root / "home").read_text() == str(settings.home)
        assert postgres.stop(cfg) is True
        assert postgres.server_pid(cfg) is None
    finally:
        postgres.destroy(cfg)
    assert not cfg.root.exists() and not (settings.home / "postgres").exists()
