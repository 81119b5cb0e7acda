"""Run the dbt project (dbt_project/) in this process, on the platform's Spark session.

The profile uses dbt-spark's `method: session`, whose connection calls `SparkSession.builder.getOrCreate()`:
running dbt in-process (`dbtRunner`) makes that return the session `get_spark` already configured (the Hive
metastore shared in PostgreSQL, lakehouse.services.metastore; Delta Lake for `file_format: delta`). dbt's
target and log directories live under `$LAKEHOUSE_HOME/dbt`, not in the source tree.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from pyspark.sql import SparkSession

from lakehouse.config import Settings, get_settings
from lakehouse.errors import LakehouseError
from lakehouse.resources import resource_path

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = resource_path("dbt_project")


def _path_flags(command: str, settings: Settings, args: Sequence[str]) -> list[str]:
    """--project-dir/--profiles-dir/--target-path/--log-path, for the ones `command` accepts and `args` lacks."""
    from dbt.cli.main import cli

    cmd = cli.commands.get(command)
    accepted = {p.name for p in cmd.params} if cmd is not None else set()
    wanted = {
        "project_dir": ("--project-dir", str(DBT_PROJECT_DIR)),
        "profiles_dir": ("--profiles-dir", str(DBT_PROJECT_DIR)),
        "target_path": ("--target-path", str(settings.home / "dbt" / "target")),
        "log_path": ("--log-path", str(settings.home / "dbt" / "logs")),
    }
    flags: list[str] = []
    for name, (flag, value) in wanted.items():
        if name in accepted and flag not in args:
            flags += [flag, value]
    return flags


def _failures(result: Any) -> list[str]:
    lines: list[str] = []
    for node_result in getattr(getattr(result, "result", None), "results", None) or []:
        status = str(getattr(node_result, "status", "")).lower()
        if status in ("error", "fail", "runtime error"):
            node = getattr(node_result, "node", None)
            name = getattr(node, "unique_id", None) or getattr(node, "name", "?")
            lines.append(f"{name}: {status}: {(getattr(node_result, 'message', '') or '').strip()[:500]}")
    return lines


def run_dbt(
    spark: SparkSession,
    args: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    check: bool = True,
) -> Any:
    """Run `dbt <args>` (default `build`) in-process on `spark`; returns dbt's `dbtRunnerResult`.

    With `check`, a run that did not succeed (model error, failed test, bad invocation) raises LakehouseError
    listing the failing nodes.
    """
    from dbt.cli.main import dbtRunner

    settings = settings or get_settings()
    args = list(args or ["build"])
    if spark.sparkContext._jsc is None:  # noqa: SLF001 - a stopped session: dbt would build a bare one
        raise LakehouseError("run_dbt needs a live Spark session (get_spark())")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ["LAKEHOUSE_MARTS_ROOT"] = f"{settings.tables_root.rstrip('/')}/marts"
    full = [*args, *_path_flags(args[0], settings, args)]
    log.info("dbt %s", " ".join(full))
    result = dbtRunner().invoke(full)
    if check and not result.success:
        failures = _failures(result)
        if result.exception is not None:
            failures.insert(0, f"{type(result.exception).__name__}: {result.exception}")
        raise LakehouseError(f"dbt {args[0]} failed: " + ("; ".join(failures) or "see the dbt log"))
    return result
