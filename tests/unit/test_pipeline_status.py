"""The always-on pipeline's stage arguments, its status table and the Kafka backlog of a progress report."""

from __future__ import annotations

import pytest

from lakehouse import pipeline
from lakehouse.errors import LakehouseError
from lakehouse.progress import kafka_backlog


def test_backlog_sums_latest_minus_end_over_topics_and_partitions_in_either_json_form():
    sources = [
        {"endOffset": {"orders": {"0": 10, "1": 7}}, "latestOffset": {"orders": {"0": 15, "1": 7}}},
        {"endOffset": '{"payments": {"0": 3}}', "latestOffset": '{"payments": {"0": 5}}'},
    ]
    assert kafka_backlog(sources) == 7
    assert kafka_backlog([{"endOffset": None, "latestOffset": {"orders": {"0": 1}}}]) is None
    assert kafka_backlog([]) is None


def test_each_stage_gets_its_jobs_continuous_arguments():
    assert pipeline.STAGES["bronze_events"].args(2, "p_") == [
        "--family", "all", "--trigger", "continuous", "--interval", "2 seconds", "--topic-prefix", "p_"]
    assert pipeline.STAGES["bronze_cdc"].args(2.5, "p_") == ["--trigger", "continuous", "--interval", "2.5 seconds"]
    assert pipeline.STAGES["gold_commerce"].args(5, "") == ["--every", "5"]
    assert pipeline.STAGES["inventory_realtime"].args(5, "p_") == [
        "--trigger", "continuous", "--interval", "500 milliseconds", "--topic-prefix", "p_"]
    assert list(pipeline.STAGES) == ["bronze_events", "bronze_cdc", "silver_cdc", "silver_events", "gold_commerce",
                                     "inventory_realtime"]


def test_an_unknown_stage_is_refused_with_the_stage_names():
    with pytest.raises(LakehouseError) as err:
        pipeline.start(None, ["bronze"])  # type: ignore[arg-type] - refused before settings are used
    assert str(err.value) == ("unknown stage 'bronze'; stages are: bronze_events, bronze_cdc, silver_cdc, "
                              "silver_events, gold_commerce, inventory_realtime")


def test_status_table_shows_streams_runs_and_stopped_stages():
    rows = [
        {"stage": "bronze_events", "running": True, "pid": 41, "kind": "stream", "batch_id": 3, "input_rows": 1200,
         "batch_ms": 850, "input_rows_per_s": 240.0, "processed_rows_per_s": 1411.76, "backlog_offsets": 12,
         "updated_at": 990.0},
        {"stage": "silver_events", "running": True, "pid": 42, "kind": "repeat", "runs": 7, "last_run_s": 4.25,
         "input_rows": 6000, "processed_rows_per_s": 1411.8, "backlog_versions": 2, "updated_at": 998.0},
        {"stage": "silver_cdc", "running": True, "pid": 44, "kind": "repeat", "runs": 9, "last_run_s": 1.5,
         "failures_in_a_row": 2, "last_error": "LakehouseError: suite silver.customers blocked\n  at ...",
         "updated_at": 999.0},
        {"stage": "bronze_cdc", "running": True, "pid": 45, "kind": "stream", "batch_id": 8, "state": "terminated",
         "error": "org.apache.kafka.common.errors.TimeoutException: Timed out waiting for a node assignment.",
         "updated_at": 997.0},
        {"stage": "gold_commerce", "running": False, "pid": None},
        {"stage": "inventory_realtime", "running": True, "pid": 43, "kind": "stream", "state": "idle",
         "backlog_offsets": 0, "updated_at": 995.0},
    ]
    assert pipeline.format_status(rows, now=1000.0).splitlines() == [
        "stage              state        pid  last batch / run               input/s processed/s  backlog    reported",
        "bronze_events      running       41  batch 3: 1,200 rows, 850 ms      240.0     1,411.8       12    10 s ago",
        "silver_events      running       42  run 7 in 4.2 s                       -     1,411.8      2 v     2 s ago",
        "silver_cdc         running       44  run 9 failed (2 in a row)            -           -        -     1 s ago",
        "bronze_cdc         running       45  query failed                         -           -        -     3 s ago",
        "gold_commerce      stopped        -  -                                    -           -        -           -",
        "inventory_realtime running       43  no batch yet (nothing new)           -           -        0     5 s ago",
        "silver_cdc: LakehouseError: suite silver.customers blocked",
        "bronze_cdc: org.apache.kafka.common.errors.TimeoutException: Timed out waiting for a node assignment.",
    ]


def test_a_run_report_gives_the_status_its_rows_rate_and_backlog_and_a_failure_keeps_the_error(tmp_path, monkeypatch):
    """What a re-run stage writes to `<home>/pipeline/<stage>.json` after each run."""
    import dataclasses

    from lakehouse.config import Settings
    from lakehouse.progress import STAGE_ENV, RunReport, read_progress, record_run

    monkeypatch.setenv(STAGE_ENV, "silver_events")
    settings = dataclasses.replace(Settings.from_env(), home=tmp_path)
    record_run(4.0, 100.0, settings, run=RunReport(rows=6000, backlog_versions=2))
    report = read_progress(settings, "silver_events")
    assert {k: report[k] for k in ("runs", "input_rows", "processed_rows_per_s", "backlog_versions",
                                   "failures_in_a_row", "last_error")} == {
        "runs": 1, "input_rows": 6000, "processed_rows_per_s": 1500.0, "backlog_versions": 2,
        "failures_in_a_row": 0, "last_error": None}
    record_run(1.0, 105.0, settings, error="LakehouseError: blocked")
    record_run(1.0, 110.0, settings, error="LakehouseError: blocked again")
    report = read_progress(settings, "silver_events")
    assert (report["runs"], report["failures_in_a_row"], report["last_error"], report["backlog_versions"]) == (
        3, 2, "LakehouseError: blocked again", None)
    record_run(2.0, 120.0, settings, run=RunReport(rows=0, backlog_versions=0))
    report = read_progress(settings, "silver_events")
    assert (report["failures_in_a_row"], report["last_error"], report["processed_rows_per_s"]) == (0, None, None)
