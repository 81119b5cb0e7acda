"""Spark's Hive metastore in PostgreSQL, shared by every local process of a $LAKEHOUSE_HOME.

Spark's built-in Hive 2.3 client keeps the catalog (databases, tables by name, their locations) in the database
`metastore` of the home's private PostgreSQL cluster (lakehouse.services.postgres; the ERP is its neighbour
`erp`), through the PostgreSQL JDBC driver on the driver's classpath. Jobs, tests, the SQL endpoint, dbt and
notebooks all open it at once: there is no single-process lock as with embedded Derby.

`get_spark` calls `ensure_running` (starts the cluster when it does not run: `lakehouse services stop` stops it)
and, once the session exists, `ensure_schema`. The first start of a metastore creates its whole schema under a
PostgreSQL advisory lock: DataNucleus' SchemaTool (pyspark's own jars, Hive's `package.jdo`) creates every
table of the Hive model that is missing, then the session's Hive client starts (schema version, `default`
database, DataNucleus' sequence table), then the table `lakehouse_metastore_ready` records it. A second process
starting at the same time waits for the lock; a first start killed half-way (the lock dies with its connection)
is completed by the next start, which only creates what is missing. Later starts only check that table.
(`datanucleus.schema.autoCreateAll` stays on, but with every table made up front it has nothing to do: tables
it created lazily inside a metastore transaction could block on that transaction's own locks.)

`LAKEHOUSE_METASTORE_URL=jdbc:postgresql://host:port/db` points every session at another PostgreSQL metastore
(the test suite shares its session's one with the jobs it runs in other homes); then nothing is started.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError, ServiceNotRunning

log = logging.getLogger(__name__)

URL_ENV = "LAKEHOUSE_METASTORE_URL"
READY_TABLE = "lakehouse_metastore_ready"
LOCK_KEY = 7_264_815_390  # pg_advisory_lock key of the first start
_URL = re.compile(r"^jdbc:postgresql://(?P<host>[^:/]+):(?P<port>\d+)/(?P<db>\w+)$")


@dataclass(frozen=True)
class MetastoreDb:
    """Where the metastore database is and who connects (the cluster's trust-authenticated local user)."""

    host: str
    port: int
    dbname: str
    user: str

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.dbname}"

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"


def metastore_db(settings: Settings) -> MetastoreDb:
    """$LAKEHOUSE_METASTORE_URL when set, else the `metastore` database of the home's PostgreSQL cluster."""
    from lakehouse.services import postgres

    url = os.environ.get(URL_ENV)
    if url:
        match = _URL.match(url)
        if match is None:
            raise LakehouseError(f"{URL_ENV} must look like jdbc:postgresql://127.0.0.1:15432/metastore, got {url!r}")
        return MetastoreDb(match["host"], int(match["port"]), match["db"], postgres.USER)
    cfg = postgres.pg_config(settings)
    return MetastoreDb(cfg.host, cfg.port, postgres.METASTORE_DB, cfg.user)


def ensure_running(settings: Settings) -> MetastoreDb:
    """Start the home's PostgreSQL cluster unless it runs (or check $LAKEHOUSE_METASTORE_URL answers)."""
    from lakehouse.services import postgres

    db = metastore_db(settings)
    if os.environ.get(URL_ENV):
        _require(db)
        return db
    cfg = postgres.pg_config(settings)
    if postgres.server_pid(cfg) is None:
        log.warning("starting PostgreSQL for the Hive metastore on 127.0.0.1:%d (stop: `lakehouse services stop`)",
                    cfg.port)
    postgres.start(cfg)
    return db


def _require(db: MetastoreDb) -> None:
    import psycopg

    try:
        psycopg.connect(db.dsn, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        raise ServiceNotRunning(f"the Hive metastore at {db.jdbc_url} ({URL_ENV}) does not answer: "
                                f"{str(exc).strip().splitlines()[0]}") from None


def _hive_metastore_jar() -> Path:
    from lakehouse.jars import pyspark_jars_dir

    jar = next(iter(sorted(pyspark_jars_dir().glob("hive-metastore-*.jar"))), None)
    if jar is None:
        raise LakehouseError(f"hive-metastore-*.jar not found in {pyspark_jars_dir()}")
    return jar


def _datanucleus_props(db: MetastoreDb) -> dict[str, str]:
    """What Hive 2.3 gives DataNucleus (HiveConf defaults) plus the connection."""
    return {
        "javax.jdo.option.ConnectionURL": db.jdbc_url,
        "javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
        "javax.jdo.option.ConnectionUserName": db.user,
        "javax.jdo.option.ConnectionPassword": "",  # trust authentication on 127.0.0.1 (postgres.py)
        "datanucleus.schema.autoCreateAll": "true",
        "datanucleus.identifierFactory": "datanucleus1",
        "datanucleus.rdbms.useLegacyNativeValueStrategy": "true",
    }


def _die_with_parent() -> None:
    """In the child: be killed when the parent dies (its advisory lock is gone then; no orphan keeps creating)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def create_schema(db: MetastoreDb, timeout: float = 600.0) -> None:
    """Create every missing table of Hive's metastore model in `db` (DataNucleus SchemaTool, a short JVM run)."""
    from lakehouse.jars import postgres_jdbc_jar, pyspark_jars_dir

    with tempfile.TemporaryDirectory(prefix="lakehouse-metastore-") as tmp:
        with zipfile.ZipFile(_hive_metastore_jar()) as zf:
            jdo = Path(zf.extract("package.jdo", tmp))
        props = Path(tmp) / "datanucleus.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in _datanucleus_props(db).items()))
        argv = ["java", "-cp", f"{pyspark_jars_dir() / '*'}:{postgres_jdbc_jar()}",
                "org.datanucleus.store.schema.SchemaTool", "-create", "-api", "JDO", "-props", str(props), str(jdo)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                preexec_fn=_die_with_parent)
    if result.returncode != 0 or "completed successfully" not in result.stdout:
        tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise LakehouseError(f"could not create the Hive metastore schema in {db.jdbc_url}: {tail}")


def spark_conf(db: MetastoreDb) -> dict[str, str]:
    """The session settings that point Spark's Hive client at `db`."""
    hadoop = {
        **_datanucleus_props(db),
        "hive.metastore.schema.verification": "false",
        # Delta keeps a table's schema in its log; replacing a table (dbt's `create or replace`) changes the
        # column types Spark mirrors into the metastore, which Hive's check for its own formats refuses (logged as
        # an ERROR before Spark falls back to its own format). The check applies to Hive tables, not to Delta's.
        "hive.metastore.disallow.incompatible.col.type.changes": "false",
    }
    return {f"spark.hadoop.{key}": value for key, value in hadoop.items()}


def _is_ready(conn) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (READY_TABLE,)).fetchone()[0]


def ensure_schema(spark, db: MetastoreDb) -> None:
    """Create the metastore's tables once (first start, under an advisory lock); later starts only check."""
    import psycopg

    with psycopg.connect(db.dsn, autocommit=True, connect_timeout=10) as conn:
        if _is_ready(conn):
            return
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            if not _is_ready(conn):
                create_schema(db)
                spark.catalog.listDatabases()  # starts the Hive client: version row, `default`, sequence table
                conn.execute(f"CREATE TABLE IF NOT EXISTS {READY_TABLE} (created_at timestamptz DEFAULT now())")
                log.info("created the Hive metastore schema in %s", db.jdbc_url)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def metastore_tables(db: MetastoreDb) -> list[str]:
    """The tables of the metastore database (tests, diagnostics)."""
    import psycopg

    with psycopg.connect(db.dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
    return [r[0] for r in rows]
