"""Run the dbt project (dbt_project/) in this process, on the platform's Spark session.

The pipeline runs the profile's `session` target (dbt-spark's `method: session`), whose connection calls
`SparkSession.builder.getOrCreate()`: running dbt in-process (`dbtRunner`) makes that return the session `get_spark`
already configured (the Hive metastore shared in PostgreSQL, lakehouse.services.metastore; Delta Lake for
`file_format: delta`). Analysts run the default `endpoint` target (`cd dbt_project && dbt build`) against the SQL
endpoint. dbt's target (docs included) and log directories live under `$LAKEHOUSE_HOME/dbt`, not in the source tree.

The project's databases (`DBT_DATABASES`) are created with a location under the tables root, so a model lands at
`<tables root>/<database>/<model>` whichever way it was built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from lakehouse.config import Settings, get_settings
from lakehouse.errors import LakehouseError
from lakehouse.resources import resource_path

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = resource_path("dbt_project")
DBT_DATABASES = ("staging", "intermediate", "marts", "snapshots")  # the `schema` configs of dbt_project.yml


def dbt_target_dir(settings: Settings) -> Path:
    """dbt's target directory (manifest, run results, the generated docs site): `$LAKEHOUSE_HOME/dbt/target`."""
    return settings.home / "dbt" / "target"


def ensure_dbt_databases(spark: SparkSession, settings: Settings) -> None:
    """Create the project's databases, each located at `<tables root>/<database>`."""
    from lakehouse.tables.catalog import ensure_layer_database

    for database in DBT_DATABASES:
        ensure_layer_database(spark, database, settings.tables_root)


def dbt_sources() -> list[str]:
    """The tables the project reads (`layer.table`), from its sources files (`models/staging/*/_*__sources.yml`;
    a source's name is its layer)."""
    import yaml

    names: list[str] = []
    for path in sorted((DBT_PROJECT_DIR / "models").rglob("_*__sources.yml")):
        for source in yaml.safe_load(path.read_text()).get("sources", []):
            names += [f"{source['name']}.{table['name']}" for table in source.get("tables", [])]
    return names


def _path_flags(settings: Settings, args: Sequence[str]) -> list[str]:
    """--project-dir/--profiles-dir/--target/--target-path/--log-path: those the command (`build`, `docs generate`)
    accepts and `args` lacks."""
    from dbt.cli.main import cli

    cmd = cli
    for word in args:  # down the command groups: `docs` -> `docs generate`
        sub = getattr(cmd, "commands", {}).get(word)
        if sub is None:
            break
        cmd = sub
    accepted = {p.name for p in cmd.params} if cmd is not cli else set()
    wanted = {
        "project_dir": ("--project-dir", str(DBT_PROJECT_DIR)),
        "profiles_dir": ("--profiles-dir", str(DBT_PROJECT_DIR)),
        "target": ("--target", "session"),
        "target_path": ("--target-path", str(dbt_target_dir(settings))),
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


def summarize(result: Any) -> str:
    """One line for a dbt run: node counts per resource type and status, e.g. `26 model success, 64 test pass`."""
    from collections import Counter

    counts = Counter(f"{node.node.resource_type} {node.status}"
                     for node in getattr(getattr(result, "result", None), "results", None) or [])
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "nothing ran"


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
    ensure_dbt_databases(spark, settings)
    full = [*args, *_path_flags(settings, args)]
    log.info("dbt %s", " ".join(full))
    result = dbtRunner().invoke(full)
    if check and not result.success:
        failures = _failures(result)
        if result.exception is not None:
            failures.insert(0, f"{type(result.exception).__name__}: {result.exception}")
        raise LakehouseError(f"dbt {args[0]} failed: " + ("; ".join(failures) or "see the dbt log"))
    return result
