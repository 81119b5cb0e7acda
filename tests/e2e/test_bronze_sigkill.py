"""SIGKILL the bronze job mid-stream, restart it: nothing lost, nothing duplicated.

The job runs as its own process (own $LAKEHOUSE_HOME: the Derby metastore is single-process) against the
session's real broker; the table is checked with delta-rs, another Delta implementation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakehouse.config import REPO_ROOT
from lakehouse.sources.kafka_admin import create_topics, produce

pytestmark = pytest.mark.e2e
RECORDS = 3000


def _job(home: Path, bootstrap: str, topic: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_KAFKA_BOOTSTRAP": bootstrap}
    log = open(home / f"bronze-{time.time_ns()}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.bronze_orders", "--topic", topic, *args],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _committed_versions(table: Path) -> int:
    log = table / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(broker, tmp_path):
    topic = f"orders_kill_{uuid.uuid4().hex[:6]}"
    create_topics(broker.bootstrap, [topic], 3)
    produce(broker.bootstrap, topic, [(f"k{i}".encode(), f'{{"n":{i}}}'.encode()) for i in range(RECORDS)])
    table = tmp_path / "tables" / "bronze" / "orders_raw"

    job = _job(tmp_path, broker.bootstrap, topic, "--trigger", "continuous", "--interval", "1 second",
               "--max-offsets-per-trigger", "300")
    deadline = time.time() + 240
    while _committed_versions(table) < 2 and time.time() < deadline and job.poll() is None:
        time.sleep(0.2)
    assert job.poll() is None, "bronze job ended before it could be killed"
    assert _committed_versions(table) >= 2, "bronze job committed nothing within 240 s"
    os.killpg(job.pid, signal.SIGKILL)  # the job's own process group: python driver + its JVM
    job.wait(30)
    killed_at = DeltaTable(str(table)).to_pyarrow_table().num_rows
    assert 0 < killed_at < RECORDS

    restart = _job(tmp_path, broker.bootstrap, topic, "--trigger", "available-now")
    assert restart.wait(300) == 0

    rows = DeltaTable(str(table)).to_pyarrow_table(columns=["partition", "offset", "value"])
    coords = list(zip(rows.column("partition").to_pylist(), rows.column("offset").to_pylist(), strict=True))
    assert len(coords) == RECORDS
    assert len(set(coords)) == RECORDS
    values = sorted(int(v.decode()[5:-1]) for v in rows.column("value").to_pylist())
    assert values == list(range(RECORDS))
    assert pa.types.is_binary(rows.schema.field("value").type)
