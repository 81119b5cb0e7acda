"""SQL endpoint for BI tools: the Spark Thrift server (HiveServer2 protocol, JDBC `jdbc:hive2://`).

`python -m lakehouse.services.sql_endpoint` builds a session with the platform's factory (Delta Lake's
extension and catalog), registers every Delta table found under the tables root
(`gold.sales`, ...), then starts `HiveThriftServer2.startWithContext` on 127.0.0.1:`settings.sql_port`
and serves until SIGTERM/SIGINT. `start_sql_endpoint` / `stop_sql_endpoint` run it as a managed background
process (PID file under `$LAKEHOUSE_HOME/run`).

Clients log in with a password (accounts: lakehouse.governance.accounts) and every statement is authorized
against the governance policies, with column masks and row filters applied for its user
(lakehouse.governance.endpoint; infra/governance/policies.yaml); each one is recorded in `ops.audit_log`.

The catalog is the Hive metastore in the home's PostgreSQL (lakehouse.services.metastore), shared with every
other Spark process: jobs write and register tables while the endpoint serves them, and each query reads the
newest commit of a Delta table.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from lakehouse.config import Settings, get_settings
from lakehouse.errors import LakehouseError, ServiceNotRunning

log = logging.getLogger(__name__)

SERVICE_NAME = "sql-endpoint"
BIND_HOST = "127.0.0.1"
BEELINE_CLASS = "org.apache.hive.beeline.BeeLine"
# The Thrift server answers with java.time dates (spark.sql.datetime.java8API.enabled), which Delta's metadata-only
# answers to min/max/count (OptimizeMetadataOnlyDeltaQuery) do not expect: `SELECT min(order_date) FROM gold.sales`
# failed with "ClassCastException: java.time.LocalDate cannot be cast to java.sql.Date". Those queries scan instead.
ENDPOINT_CONF = {"spark.databricks.delta.optimizeMetadataQuery.enabled": "false"}


def jdbc_url(settings: Settings, database: str = "default") -> str:
    return f"jdbc:hive2://{BIND_HOST}:{settings.sql_port}/{database}"


def serve(settings: Settings, register: bool = True, stop_event: threading.Event | None = None) -> None:
    """Start the Thrift server in this process and block until `stop_event` is set (or SIGTERM/SIGINT)."""
    # Read by Hive's ThriftCLIService before its HiveConf: set before the JVM starts so they always apply.
    os.environ["HIVE_SERVER2_THRIFT_PORT"] = str(settings.sql_port)
    os.environ["HIVE_SERVER2_THRIFT_BIND_HOST"] = BIND_HOST
    from lakehouse.governance.endpoint import GovernanceUpkeep, governed_conf
    from lakehouse.spark import get_spark

    governed = governed_conf(settings)
    spark = get_spark("lakehouse-sql-endpoint", settings, conf={**ENDPOINT_CONF, **governed})
    for key, value in (
        ("hive.server2.thrift.port", str(settings.sql_port)),
        ("hive.server2.thrift.bind.host", BIND_HOST),
        ("hive.server2.transport.mode", "binary"),
        *((k.removeprefix("spark.hadoop."), v) for k, v in governed.items() if k.startswith("spark.hadoop.")),
    ):
        spark.conf.set(key, value)
        spark.sparkContext._jsc.hadoopConfiguration().set(key, value)
        if key.startswith("hive.server2."):  # also where each login reads it: a fresh HiveConf (system properties)
            spark._jvm.java.lang.System.setProperty(key, value)
    if register:
        from lakehouse.tables.catalog import register_all_tables

        names = register_all_tables(spark, settings.tables_root)
        log.info("registered %d tables: %s", len(names), ", ".join(names))
    from lakehouse.dbt import ensure_dbt_databases

    ensure_dbt_databases(spark, settings)  # what analysts' `dbt build` writes lands under the tables root
    jvm = spark._jvm
    server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithContext(
        spark._jsparkSession.sqlContext()
    )
    print(f"SQL endpoint listening on {jdbc_url(settings)}", flush=True)
    upkeep = GovernanceUpkeep(spark, settings)
    stop_event = stop_event or threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping the SQL endpoint", signum)
        stop_event.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    try:
        while not stop_event.wait(1.0):
            upkeep.tick()
    finally:
        try:
            server.stop()
            upkeep.tick(force=True)  # the last statements' audit lines
        finally:
            spark.stop()


def _port_ready(settings: Settings) -> bool:
    from lakehouse.services.process import port_in_use

    return port_in_use(settings.sql_port, BIND_HOST)


def start_sql_endpoint(settings: Settings | None = None, timeout: float = 180.0, register: bool = True):
    """Run the endpoint as a managed background process; returns its `ProcessStatus` once the port answers."""
    from lakehouse.services import process

    settings = settings or get_settings()
    settings.ensure_dirs()
    argv = [sys.executable, "-m", "lakehouse.services.sql_endpoint"]
    if not register:
        argv.append("--no-register")
    env = {
        "LAKEHOUSE_HOME": str(settings.home),
        "LAKEHOUSE_SQL_PORT": str(settings.sql_port),
        "LAKEHOUSE_TABLES_ROOT": settings.tables_root,
    }
    return process.start(
        SERVICE_NAME,
        argv,
        settings.logs / f"{SERVICE_NAME}.log",
        ready_check=lambda: _port_ready(settings),
        timeout=timeout,
        port=settings.sql_port,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        settings=settings,
        extra={"jdbc_url": jdbc_url(settings)},
    )


def stop_sql_endpoint(settings: Settings | None = None, timeout: float = 30.0) -> bool:
    """Stop the managed endpoint (SIGTERM, then SIGKILL after `timeout`); False if it was not running."""
    from lakehouse.services import process

    return process.stop(SERVICE_NAME, timeout=timeout, settings=settings or get_settings())


def sql_endpoint_status(settings: Settings | None = None):
    from lakehouse.services import process

    return process.status(SERVICE_NAME, settings or get_settings())


def beeline_query(
    settings: Settings,
    sql: str,
    *,
    database: str = "default",
    output_format: str = "csv2",
    header: bool = False,
    timeout: float = 300.0,
    user: str | None = None,
) -> str:
    """Run `sql` through Hive's BeeLine JDBC client against the endpoint as `user` (lakehouse.governance.accounts);
    returns BeeLine's stdout.

    With the defaults, each result row is one comma-separated line without a header (`csv2`). Raises
    ServiceNotRunning when nothing listens on the port and LakehouseError when BeeLine reports an error.
    """
    import tempfile

    from lakehouse.governance.accounts import credentials, secrets_dir
    from lakehouse.jars import pyspark_jars_dir

    if not _port_ready(settings):
        raise ServiceNotRunning(
            f"no SQL endpoint on {BIND_HOST}:{settings.sql_port}: start it with `lakehouse services start`"
        )
    login = credentials(settings, user)
    with tempfile.NamedTemporaryFile("w", dir=secrets_dir(settings), prefix="beeline-") as password_file:
        password_file.write(login.password)  # -w: the password stays off the command line (ps)
        password_file.flush()
        cmd = [
            "java",
            "-Xmx256m",
            "-cp",
            str(pyspark_jars_dir() / "*"),
            BEELINE_CLASS,
            "-u",
            jdbc_url(settings, database),
            "-n",
            login.user,
            "-w",
            password_file.name,
            "--silent=true",
            f"--outputformat={output_format}",
            f"--showHeader={'true' if header else 'false'}",
            "-e",
            sql,
        ]
        proc = _run_beeline(cmd, sql, timeout)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    if proc.returncode != 0 or errors:
        detail = "\n".join(errors) or proc.stderr.strip()[-2000:]
        raise LakehouseError(f"beeline failed (exit {proc.returncode}): {detail}")
    return _strip_prompts(proc.stdout)


def _run_beeline(cmd: list[str], sql: str, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise LakehouseError("java is not on PATH (needed for the BeeLine client)") from None
    except subprocess.TimeoutExpired:
        raise LakehouseError(f"beeline query timed out after {timeout:.0f}s: {sql[:200]}") from None


_PROMPT = re.compile(r"^\d+: jdbc:hive2://[^>]*> ?")


def _strip_prompts(output: str) -> str:
    """Remove the `0: jdbc:hive2://...> ` prompts BeeLine echoes even with --silent and `-e`."""
    lines: list[str] = []
    for line in output.splitlines():
        stripped = _PROMPT.sub("", line)
        if stripped == "" and line != "":
            continue  # a prompt alone on its line
        lines.append(stripped)
    return "\n".join(lines) + ("\n" if lines else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve Spark SQL over JDBC/ODBC (HiveServer2 protocol)")
    parser.add_argument("--port", type=int, help="override LAKEHOUSE_SQL_PORT")
    parser.add_argument("--no-register", action="store_true", help="do not register tables under the root")
    args = parser.parse_args(argv)
    if args.port:
        os.environ["LAKEHOUSE_SQL_PORT"] = str(args.port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    try:
        serve(settings, register=not args.no_register)
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
