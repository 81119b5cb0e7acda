"""bronze.dead_letter is validated by silver_events' query on it: each micro-batch of new dead letters once, with
its warn-only structure suite (findings recorded, nothing refused)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from jobs.silver_events import DEAD_LETTERS, process_all
from lakehouse.job import JobContext
from lakehouse.quality.ops import VALIDATIONS
from lakehouse.tables import get_tables

SCHEMA = ("event_family string, reason string, topic string, partition int, offset long, kafka_timestamp timestamp, "
          "key binary, value binary, value_bytes int, headers array<struct<key:string,value:binary>>, "
          "ingested_at timestamp, ingest_date date")
NOW = dt.datetime(2026, 11, 2, 10, 0)


def dead_letter(reason: str | None, offset: int | None) -> tuple:
    return ("orders", reason, "orders", 0, offset, NOW, b"k", b"{oops", 5, [], NOW, NOW.date())


def test_new_dead_letters_are_validated_once_and_a_broken_row_only_warns(spark, settings, tmp_path):
    scoped = dataclasses.replace(settings, tables_root=str(tmp_path / "tables"))
    ctx = JobContext(spark, get_tables(spark, scoped), scoped, "dead-letter-test")
    assert process_all(ctx, []) == 0  # no table yet: no query
    ctx.tables.append(spark.createDataFrame([dead_letter("not_json", 5), dead_letter("empty", 6)], SCHEMA), DEAD_LETTERS)
    assert process_all(ctx, []) == 2
    assert process_all(ctx, []) == 0  # nothing new

    ctx.tables.append(spark.createDataFrame([dead_letter("mystery", None)], SCHEMA), DEAD_LETTERS)
    assert process_all(ctx, []) == 1  # the new row only
    rows = ctx.tables.read(VALIDATIONS).where(f"table_name = '{DEAD_LETTERS}'").orderBy("table_version").collect()
    assert [(r.table_version, r.outcome, r.rows) for r in rows] == [(0, "passed", 2), (1, "warned", 1)]
    assert set(rows[1].failed) == {
        "expect_column_values_to_not_be_null(offset)",
        "expect_column_values_to_be_in_set(reason, value_set=[empty, oversized, not_utf8, not_json], nulls=fail)"}
