"""A `lakehouse demo` home for an e2e module: its own $LAKEHOUSE_HOME and free ports (broker, PostgreSQL, S3, SQL
endpoint, BI), the CLI run as its own process on them, everything it started stopped afterwards.

A separate process, not the session's Spark: the demo registers its tables in its own catalog and writes its own
checkpoints, which the session's other modules (same table names, same app ids) must not see."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deltalake import DeltaTable

from lakehouse.config import REPO_ROOT

CLI_TIMEOUT_S = 2700  # a hang guard: a demo run took 24 min on CI's loaded 2 cores


@dataclasses.dataclass
class DemoHome:
    home: Path
    settings: object  # the session's Settings with this home and its tables root
    env: dict[str, str]

    def cli(self, *argv: str) -> subprocess.CompletedProcess:
        """`lakehouse <argv>` on this home and its ports."""
        return subprocess.run([sys.executable, "-m", "lakehouse.cli", *argv], env=self.env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=CLI_TIMEOUT_S)

    def run(self, script: Path, *argv: str, timeout: float) -> subprocess.CompletedProcess:
        """A script of the repository (a job, a benchmark) on this home and its ports."""
        return subprocess.run([sys.executable, str(script), *argv], env=self.env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout)

    def pipeline_status(self) -> dict[str, dict]:
        done = self.cli("pipeline", "status", "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        return {row["stage"]: row for row in json.loads(done.stdout)}

    def current(self, name: str) -> list[dict]:
        """Table `name` as it is now (read by delta-rs)."""
        return DeltaTable(self.settings.table_location(name)).to_pyarrow_table().to_pylist()


@contextmanager
def demo_home(settings) -> Iterator[DemoHome]:  # noqa: ANN001 - the session's Settings
    """A fresh home; afterwards every service and stage it ran is stopped and its PostgreSQL cluster (which lives
    outside the home when tests run as root) and files deleted."""
    from lakehouse.services.postgres import destroy, pg_config
    from lakehouse.services.process import free_port

    home = Path(tempfile.mkdtemp(prefix="lh-demo-e2e-"))
    home.chmod(0o755)  # PostgreSQL runs as the `postgres` user when tests run as root
    local = dataclasses.replace(settings, home=home, tables_root=str(home / "tables"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("LAKEHOUSE_KAFKA_BOOTSTRAP", "LAKEHOUSE_TABLES_ROOT", "LAKEHOUSE_METASTORE_URL")}  # its own
    env.update(LAKEHOUSE_HOME=str(home), PYTHONPATH=str(REPO_ROOT), **{
        f"LAKEHOUSE_{name}_PORT": str(free_port()) for name in ("BROKER", "PG", "S3", "SQL", "BI", "METRICS")})
    demo = DemoHome(home, local, env)
    try:
        yield demo
    finally:
        for command in ("pipeline", "metrics", "bi", "sql-endpoint", "cdc", "landing", "services"):
            demo.cli(command, "stop")
        destroy(pg_config(local, port=int(env["LAKEHOUSE_PG_PORT"])))
        shutil.rmtree(home, ignore_errors=True)
