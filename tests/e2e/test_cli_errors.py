"""Bad configuration ends with one clear line on stderr and exit code 2, not a stack trace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lakehouse.config import REPO_ROOT
from lakehouse.services.process import free_port

pytestmark = pytest.mark.e2e


def lakehouse(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", *args], cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, **env}, timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)  # the README's promise
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_job_name(tmp_path):
    assert_one_line_error(lakehouse("run", "no_such_job", LAKEHOUSE_HOME=str(tmp_path)), "unknown job 'no_such_job'")


def test_missing_broker(tmp_path):
    port = str(free_port())
    result = lakehouse("run", "bronze_events", LAKEHOUSE_HOME=str(tmp_path), LAKEHOUSE_BROKER_PORT=port)
    assert_one_line_error(result, f"Kafka broker at 127.0.0.1:{port} is not reachable")


def test_home_that_is_a_file(tmp_path):
    home = tmp_path / "file"
    home.write_text("not a directory")
    assert_one_line_error(lakehouse("tables", LAKEHOUSE_HOME=str(home)), "is not a directory")


def test_silver_before_bronze_names_the_missing_table(tmp_path):
    result = lakehouse("run", "gold_commerce", LAKEHOUSE_HOME=str(tmp_path))
    assert_one_line_error(
        result, "silver.orders_events does not exist yet: run silver_events, silver_cdc and bronze_landing/silver first")


def test_bad_setting_value(tmp_path):
    result = lakehouse("tables", LAKEHOUSE_HOME=str(tmp_path), LAKEHOUSE_BROKER_PORT="ninety")
    assert_one_line_error(result, "LAKEHOUSE_BROKER_PORT must be an integer")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--since", "last week"], "not an ISO date or timestamp: 'last week' (e.g. 2026-11-01 or 2026-11-01T06:00)"),
    (["--since", "2026-11-08", "--until", "2026-11-01"],
     "--until 2026-11-01 is not after --since 2026-11-08: the range is empty"),
])
def test_replay_from_bronze_refuses_a_bad_range_before_starting_spark(tmp_path, args, fragment):
    result = lakehouse("backfill", "--from", "bronze", *args, LAKEHOUSE_HOME=str(tmp_path))
    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []  # nothing started: a Spark session would start the metastore's PostgreSQL


def test_replay_from_bronze_needs_since(tmp_path):
    result = lakehouse("backfill", "--from", "bronze", LAKEHOUSE_HOME=str(tmp_path))
    assert result.returncode == 2
    assert "error: --from bronze needs --since (the first ingest time to replay)" in result.stderr
