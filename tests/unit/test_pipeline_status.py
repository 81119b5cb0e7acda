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
    assert pipeline.STAGES["gold_commerce"].args(5, "") == ["--trigger", "continuous", "--interval", "5 seconds"]
    assert pipeline.STAGES["silver_events"].args(5, "p_") == ["--trigger", "continuous", "--interval", "5 seconds"]
    assert pipeline.STAGES["silver_cdc"].args(5, "") == ["--trigger", "continuous", "--interval", "5 seconds"]
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
        {"stage": "silver_events", "running": True, "pid": 42, "kind": "stream", "batch_id": 7, "input_rows": 6000,
         "batch_ms": 425, "input_rows_per_s": 900.0, "processed_rows_per_s": 1411.8, "backlog_offsets": None,
         "backlog_versions": 2, "updated_at": 998.0},
        {"stage": "gold_commerce", "running": True, "pid": 46, "kind": "stream", "batch_id": 12, "input_rows": 35,
         "batch_ms": 4250, "input_rows_per_s": 7.0, "processed_rows_per_s": 8.2, "backlog_versions": 0,
         "updated_at": 998.0},
        {"stage": "silver_cdc", "running": True, "pid": 44, "kind": "stream", "batch_id": 9, "state": "terminated",
         "error": "LakehouseError: suite silver.customers blocked\n  at ...", "updated_at": 999.0},
        {"stage": "bronze_cdc", "running": True, "pid": 45, "kind": "stream", "batch_id": 8, "state": "terminated",
         "error": "org.apache.kafka.common.errors.TimeoutException: Timed out waiting for a node assignment.",
         "updated_at": 997.0},
        {"stage": "gold_commerce", "running": False, "pid": None},
        {"stage": "inventory_realtime", "running": True, "pid": 43, "kind": "stream", "state": "idle",
         "backlog_offsets": 0, "updated_at": 995.0},
    ]
    assert pipeline.format_status(rows, now=1000.0).splitlines() == [
        "stage              state        pid  last batch                     input/s processed/s  backlog    reported",
        "bronze_events      running       41  batch 3: 1,200 rows, 850 ms      240.0     1,411.8       12    10 s ago",
        "silver_events      running       42  batch 7: 6,000 rows, 425 ms      900.0     1,411.8      2 v     2 s ago",
        "gold_commerce      running       46  batch 12: 35 rows, 4,250 ms        7.0         8.2      0 v     2 s ago",
        "silver_cdc         running       44  query failed                         -           -        -     1 s ago",
        "bronze_cdc         running       45  query failed                         -           -        -     3 s ago",
        "gold_commerce      stopped        -  -                                    -           -        -           -",
        "inventory_realtime running       43  no batch yet (nothing new)           -           -        0     5 s ago",
        "silver_cdc: LakehouseError: suite silver.customers blocked",
        "bronze_cdc: org.apache.kafka.common.errors.TimeoutException: Timed out waiting for a node assignment.",
    ]


def test_the_listener_reports_each_query_and_the_stage_idle_only_when_every_query_is(tmp_path, monkeypatch):
    """Two queries of one stage: a Kafka stream and a Delta stream whose backlog is the source's versions after
    the one its end offset reached."""
    import dataclasses
    import json
    from functools import partial
    from types import SimpleNamespace

    from lakehouse.config import Settings
    from lakehouse.delta_stream import DeltaStream, versions_behind
    from lakehouse.progress import STAGE_ENV, StageListener, batch_started, read_progress

    monkeypatch.setenv(STAGE_ENV, "silver_events")
    settings = dataclasses.replace(Settings.from_env(), home=tmp_path)
    current = {"bronze.orders_raw": 9, "silver.a": 5, "silver.b": 6}
    ctx = SimpleNamespace(tables=SimpleNamespace(location=lambda t: f"/t/{t.replace('.', '/')}/",
                                                 version=current.__getitem__))
    streams = {"silver_events_orders": DeltaStream("bronze.orders_raw", "silver_events_orders", print),
               "gold_like": DeltaStream(("silver.a", "silver.b"), "gold_like", print, project=print)}
    listener = StageListener(settings, "silver_events", partial(versions_behind, ctx, streams))
    # a stream of two tables: each source found by its path (Spark spells it with a scheme)
    assert versions_behind(ctx, streams, "gold_like", [
        {"description": "DeltaSource[file:/t/silver/a]", "endOffset": {"reservoirVersion": 4, "index": -1}},
        {"description": "DeltaSource[file:///t/silver/b]", "endOffset": {"reservoirVersion": 6, "index": 0}},
    ]) == 2  # a: versions 4 and 5 not read; b: version 6 read
    assert versions_behind(ctx, streams, "bronze_like", []) is None  # not a Delta stream
    kafka = {"endOffset": {"orders": {"0": 10}}, "latestOffset": {"orders": {"0": 15}}}
    delta = {"endOffset": json.dumps({"reservoirVersion": 7, "index": -1}), "latestOffset": None}

    def progress(query_id: str, name: str, source: dict, rows: int, rate: float) -> SimpleNamespace:
        return SimpleNamespace(progress=SimpleNamespace(json=json.dumps({
            "id": query_id, "name": name, "batchId": 3, "numInputRows": rows, "inputRowsPerSecond": rate,
            "processedRowsPerSecond": rate * 2, "durationMs": {"triggerExecution": 500}, "sources": [source]})))

    listener.onQueryStarted(SimpleNamespace(id="q1", name="bronze_like"))
    listener.onQueryStarted(SimpleNamespace(id="q2", name="silver_events_orders"))
    listener.onQueryProgress(progress("q1", "bronze_like", kafka, 100, 10.0))
    listener.onQueryProgress(progress("q2", "silver_events_orders", delta, 40, 4.0))
    report = read_progress(settings, "silver_events")
    assert {k: report[k] for k in ("state", "input_rows_per_s", "processed_rows_per_s", "backlog_offsets",
                                   "backlog_versions", "rows_total", "query", "looked_at")} == {
        "state": "active", "input_rows_per_s": 14.0, "processed_rows_per_s": 28.0, "backlog_offsets": 5,
        "backlog_versions": 3, "rows_total": 140, "query": "silver_events_orders", "looked_at": None}
    listener.onQueryIdle(SimpleNamespace(id="q2", timestamp="2026-12-06T02:00:10.000Z"))
    report = read_progress(settings, "silver_events")
    assert (report["state"], report["backlog_versions"], report["backlog_offsets"]) == ("active", 0, 5)
    listener.onQueryIdle(SimpleNamespace(id="q1", timestamp="2026-12-06T02:00:20.000Z"))
    report = read_progress(settings, "silver_events")
    # every query looked: since the one that looked longest ago (its event's time, not when it was reported)
    assert (report["state"], report["backlog_offsets"], report["looked_at"]) == ("idle", 0, 1796522410.0)

    batch_started("q2", 4, settings)  # a micro-batch begins: not idle until its progress or a later look
    listener.onQueryIdle(SimpleNamespace(id="q2", timestamp="2026-12-06T02:00:30.000Z"))  # reported late
    report = read_progress(settings, "silver_events")
    assert (report["state"], report["looked_at"], report["queries"]["q2"]["batch_started"]) == ("active", None, 4)
    started = report["queries"]["q2"]["batch_started_at"]
    assert pipeline.format_status([{**report, "stage": "silver_events", "running": True, "pid": 7}],
                                  now=started + 12.4).splitlines()[1].startswith(
        "silver_events      running        7  1 batch running, 12 s")
    listener.onQueryTerminated(SimpleNamespace(id="q1", exception="boom"))
    report = read_progress(settings, "silver_events")
    assert (report["state"], report["error"], report["queries"]["q1"]["state"]) == ("terminated", "boom", "terminated")


def test_a_stream_waiting_for_its_source_counts_as_having_looked_until_it_starts(tmp_path, monkeypatch):
    import dataclasses

    from lakehouse.config import Settings
    from lakehouse.progress import STAGE_ENV, read_progress, report_query, waiting

    monkeypatch.setenv(STAGE_ENV, "silver_cdc")
    settings = dataclasses.replace(Settings.from_env(), home=tmp_path)
    waiting("silver_cdc", settings)
    report = read_progress(settings, "silver_cdc")
    assert (report["state"], list(report["queries"])) == ("idle", ["waiting:silver_cdc"])
    assert pipeline.looked_since("silver_cdc", report, report["looked_at"])
    waiting("silver_cdc", settings, done=True)  # it starts: its query reports from now on
    report_query(settings, "silver_cdc", "q1", {"state": "started", "name": "silver_cdc"})
    report = read_progress(settings, "silver_cdc")
    assert (report["state"], list(report["queries"]), report["looked_at"]) == ("active", ["q1"], None)
