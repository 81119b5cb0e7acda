"""The pieces of a replay from bronze (jobs.silver_replay) on tiny DataFrames: the ingest-time range, the watermark
the stream had reached before the range, and the sources of the silver and quarantine MERGEs."""

from __future__ import annotations

import datetime as dt

import pytest

from jobs import silver_replay as replay
from lakehouse.errors import LakehouseError

UTC = dt.UTC
BRONZE = "topic string, partition int, offset long, ingested_at timestamp"
SILVER = "event_id string, event_time timestamp, source_topic string, source_partition int, source_offset long"


def _at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, 1, hour, minute, tzinfo=UTC)


def test_time_range_reads_dates_and_timestamps_as_utc_and_refuses_an_empty_range():
    assert replay.time_range("2026-11-01", None) == (_at(0), None)
    assert replay.time_range("2026-11-01T06:00", "2026-11-01T07:30+00:00") == (_at(6), _at(7, 30))
    assert replay.time_range("2026-11-01T08:00+01:00", None) == (_at(7), None)
    with pytest.raises(LakehouseError, match="--until 2026-11-01 is not after --since 2026-11-01: the range is empty"):
        replay.time_range("2026-11-01", "2026-11-01")
    with pytest.raises(LakehouseError, match="not an ISO date or timestamp: 'nov 1'"):
        replay.time_range("nov 1", None)


def test_in_range_keeps_since_and_drops_until(spark):
    rows = [("t", 0, n, _at(h)) for n, h in enumerate((5, 6, 7, 8))]
    df = spark.createDataFrame(rows, BRONZE)
    assert [r.offset for r in replay.in_range(df, _at(6), _at(8)).collect()] == [1, 2]
    assert [r.offset for r in replay.in_range(df, _at(7), None).collect()] == [2, 3]


def test_prior_watermark_is_the_latest_event_time_of_earlier_offsets_per_partition(spark):
    silver = spark.createDataFrame([
        ("a", _at(1), "t", 0, 10), ("b", _at(3), "t", 0, 11), ("c", _at(2), "t", 0, 12),  # 12: in the range
        ("d", _at(9), "t", 1, 5),  # partition 1: the range starts at 3, so offset 5 is not earlier
        ("e", _at(4), "u", 0, 1),  # a partition the range does not hold
    ], SILVER)
    bronze_range = spark.createDataFrame([("t", 0, 12, _at(6)), ("t", 0, 13, _at(6)), ("t", 1, 3, _at(6))], BRONZE)
    marks = {(r.source_topic, r.source_partition): r.max_event_time.astimezone(UTC)
             for r in replay.prior_watermarks(silver, bronze_range).collect()}
    assert marks == {("t", 0): _at(3)}


def test_silver_source_sets_the_events_that_pass_and_deletes_those_now_quarantined(spark):
    valid = spark.createDataFrame([("a", 1), ("b", 2)], "event_id string, quantity int")
    quarantined = spark.createDataFrame([("c", 3, "r"), ("c", 3, "r"), (None, 4, "no id")],
                                        "event_id string, quantity int, reason string")
    rows = sorted((r.event_id, r.quantity, r[replay.KEEP]) for r in replay.silver_changes(valid, quarantined).collect())
    assert rows == [("a", 1, True), ("b", 2, True), ("c", None, False)]


def test_quarantine_source_holds_every_coordinate_of_the_range_with_its_new_reason_or_none(spark):
    bronze_range = spark.createDataFrame([("t", 0, 1, _at(6)), ("t", 0, 2, _at(6))], BRONZE)
    rejected = spark.createDataFrame([("silver.orders_events", "bad", "t", 0, 2)],
                                     "target_table string, reason string, source_topic string, "
                                     "source_partition int, source_offset long")
    rows = sorted((r.source_offset, r.reason) for r in replay.quarantine_changes(bronze_range, rejected).collect())
    assert rows == [(1, None), (2, "bad")]
    spec = replay.quarantine_merge("silver.orders_events")
    assert spec.on.startswith("t.target_table = 'silver.orders_events' AND t.source_topic = s.source_topic")
    assert (spec.delete_when, spec.update_when, spec.insert_when) == (
        "s.reason IS NULL", "s.reason IS NOT NULL", "s.reason IS NOT NULL")
