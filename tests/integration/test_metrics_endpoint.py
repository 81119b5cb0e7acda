"""`lakehouse metrics`: the stages' reports and the Delta tables' newest commits on a Prometheus endpoint, served by
a managed process on 127.0.0.1 and scraped as Prometheus would."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from deltalake import DeltaTable
from prometheus_samples import scrape

from lakehouse import progress
from lakehouse.services.process import free_port, port_in_use

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lakehouse.cli", *argv], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_endpoint_serves_the_stage_reports_and_the_tables_newest_commits(spark, settings, tmp_path: Path) -> None:
    home = tmp_path / "home"
    local = dataclasses.replace(settings, home=home, tables_root=str(home / "tables"))
    orders = f"{local.tables_root}/silver/orders_events"
    spark.range(3).write.format("delta").save(orders)
    spark.range(5).write.format("delta").mode("append").save(orders)  # version 1: 5 rows
    spark.range(1).write.format("delta").save(f"{local.tables_root}/_checkpoints/x/state")  # not a table
    # what silver_events' StageListener reports for two of its queries, one of which waited for its source first
    progress.report_query(local, "silver_events", "waiting:silver_orders", {
        "state": "idle", "name": "silver_orders", "backlog_versions": 0})
    progress.report_query(local, "silver_events", "q-orders", {
        "state": "active", "name": "silver_orders", "batch_id": 7, "input_rows_per_s": 12.5,
        "processed_rows_per_s": 40.0, "backlog_versions": 2}, {"rows_total": 300, "batch_ms": 1500})
    progress.report_query(local, "silver_events", "q-clicks", {
        "state": "idle", "name": "silver_clickstream", "batch_id": 3, "backlog_versions": 0})
    port = free_port()
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_TABLES_ROOT": local.tables_root,
           "LAKEHOUSE_METRICS_PORT": str(port), "PYTHONPATH": str(REPO_ROOT)}
    started = _cli(env, "metrics", "start")
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"metrics (Prometheus): http://127.0.0.1:{port}/metrics"
        assert _cli(env, "metrics", "status").stdout.startswith("metrics: running (pid ")
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        stopped = _cli(env, "metrics", "stop")
    assert stopped.stdout.strip() == "metrics: stopped" and not port_in_use(port)

    silver = (("stage", "silver_events"),)
    assert samples[("lakehouse_stage_running", silver)] == 0.0  # reported, but its process is not running
    assert samples[("lakehouse_stage_idle", silver)] == 0.0  # one query is active
    assert samples[("lakehouse_stage_input_rows_total", silver)] == 300.0
    assert samples[("lakehouse_stage_last_batch_seconds", silver)] == 1.5
    assert 0.0 <= samples[("lakehouse_stage_report_age_seconds", silver)] < 120.0
    query = (("query", "silver_orders"), ("stage", "silver_events"))
    assert samples[("lakehouse_query_batch_id", query)] == 7.0
    assert samples[("lakehouse_query_input_rows_per_second", query)] == 12.5
    assert samples[("lakehouse_query_processed_rows_per_second", query)] == 40.0
    assert samples[("lakehouse_query_backlog_versions", query)] == 2.0
    assert ("lakehouse_query_backlog_offsets", query) not in samples  # a Delta stream: no Kafka offsets
    clicks = (("query", "silver_clickstream"), ("stage", "silver_events"))
    assert samples[("lakehouse_query_backlog_versions", clicks)] == 0.0
    # a stage that never reported: running 0 and nothing else
    assert samples[("lakehouse_stage_running", (("stage", "gold_commerce"),))] == 0.0
    assert ("lakehouse_stage_idle", (("stage", "gold_commerce"),)) not in samples

    table = (("table", "silver.orders_events"),)
    newest = DeltaTable(orders).history(1)[0]
    assert samples[("lakehouse_table_version", table)] == float(DeltaTable(orders).version()) == 1.0
    assert samples[("lakehouse_table_last_commit_timestamp_seconds", table)] == newest["timestamp"] / 1000
    assert samples[("lakehouse_table_last_commit_rows", table)] == 5.0
    assert [k for k in samples if k[0] == "lakehouse_table_version"] == [("lakehouse_table_version", table)]


def test_a_taken_port_is_refused_with_its_owner(settings, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_METRICS_PORT": str(port),
               "PYTHONPATH": str(REPO_ROOT)}
        result = _cli(env, "metrics", "start")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot start metrics: port 127.0.0.1:{port} is already in use by "
                                    f"another program (pid {os.getpid()}: "), result.stderr
