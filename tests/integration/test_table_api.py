"""The Delta table API on Delta Lake itself; tables are read back with delta-rs as an independent reader."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, LongType, StringType, StructField, StructType, TimestampType

from lakehouse.errors import TableNotFound
from lakehouse.tables import MergeSpec

SCHEMA = StructType(
    [
        StructField("id", LongType()),
        StructField("sku", StringType()),
        StructField("amount", DecimalType(18, 2)),
        StructField("ts", TimestampType()),
        StructField("channel", StringType()),
    ]
)
T0 = dt.datetime(2026, 11, 1, 12, 0, 0, 123456)


def rows(n: int, start: int = 0, channel: str = "web") -> list[tuple]:
    return [
        (i, f"SKU-{i:05d}", Decimal(f"{i}.25"), T0 + dt.timedelta(minutes=i), channel)
        for i in range(start, start + n)
    ]


def by_id(df) -> dict[int, Row]:
    return {r["id"]: r for r in df.collect()}


def test_append_creates_then_appends_and_reads_back_exact_values(spark, tables, table_name):
    tables.append(spark.createDataFrame(rows(3), SCHEMA), table_name)
    tables.append(spark.createDataFrame(rows(2, start=3), SCHEMA), table_name)
    got = by_id(tables.read(table_name))
    assert sorted(got) == [0, 1, 2, 3, 4]
    assert got[4]["amount"] == Decimal("4.25")
    assert got[4]["ts"] == T0 + dt.timedelta(minutes=4)  # microseconds survive, UTC session
    assert tables.version(table_name) == 1
    assert tables.row_count(table_name) == 5


def test_overwrite_replaces_and_time_travel_reads_old_version(spark, tables, table_name):
    tables.append(spark.createDataFrame(rows(3), SCHEMA), table_name)
    tables.overwrite(spark.createDataFrame(rows(1, start=10), SCHEMA), table_name)
    assert sorted(by_id(tables.read(table_name))) == [10]
    assert sorted(by_id(tables.read(table_name, version=0))) == [0, 1, 2]
    operations = [h["operation"] for h in tables.history(table_name)]
    assert len(operations) == 2


def test_partitioned_table_reads_partition_columns(spark, tables, table_name):
    data = rows(2, channel="web") + rows(2, start=2, channel="amazon") + [(9, "SKU-9", Decimal("1.00"), T0, None)]
    tables.append(spark.createDataFrame(data, SCHEMA), table_name, partition_by=["channel"])
    got = by_id(tables.read(table_name))
    assert {i: r["channel"] for i, r in got.items()} == {0: "web", 1: "web", 2: "amazon", 3: "amazon", 9: None}
    location = Path(tables.location(table_name))
    assert (location / "channel=web").is_dir() and (location / "channel=amazon").is_dir()


def test_write_batch_is_idempotent_per_app_and_batch(spark, tables, table_name):
    df = spark.createDataFrame(rows(4), SCHEMA)
    assert tables.write_batch(df, table_name, app_id="bronze-orders", batch_id=0)
    assert tables.write_batch(df, table_name, app_id="bronze-orders", batch_id=1)
    tables.write_batch(df, table_name, app_id="bronze-orders", batch_id=1)  # replay of a committed batch
    tables.write_batch(df, table_name, app_id="bronze-orders", batch_id=0)  # older batch: also skipped
    assert tables.row_count(table_name) == 8
    assert tables.committed_batch(table_name, "bronze-orders") == 1
    assert tables.write_batch(df, table_name, app_id="other-app", batch_id=0)
    assert tables.row_count(table_name) == 12


def test_commit_all_creates_a_new_table_once_then_appends_to_it_concurrently(spark, tables, table_name):
    """Five appends of five app ids to a table that does not exist yet, plus one to another table, at once:
    every row lands once, each app id is recorded, and a second call commits nothing."""
    from lakehouse.tables.concurrent import commit_all

    other = table_name + "_other"
    df = spark.createDataFrame(rows(2), SCHEMA)

    def commits():
        return [(table_name, lambda app=app: tables.write_batch(df, table_name, app_id=app, batch_id=3))
                for app in "abcde"] + [(other, lambda: tables.write_batch(df, other, app_id="a", batch_id=3))]

    commit_all(tables, commits())
    assert (tables.row_count(table_name), tables.row_count(other)) == (10, 2)
    assert [tables.committed_batch(table_name, app) for app in "abcde"] == [3] * 5
    versions = tables.version(table_name), tables.version(other)
    assert versions == (4, 0)  # one commit each: created by the first, appended by the other four
    commit_all(tables, commits())
    assert (tables.version(table_name), tables.version(other)) == versions


def test_run_concurrently_returns_in_order_and_raises_after_every_call_finished(spark):
    import threading

    from lakehouse.tables.concurrent import run_concurrently

    spark.sparkContext.setLocalProperty("lakehouse.test", "caller")
    finished, slow = [], threading.Event()

    def ok(n: int):
        def call():
            slow.wait(2 if n == 2 else 0)
            finished.append(n)
            return n, spark.sparkContext.getLocalProperty("lakehouse.test")
        return call

    def boom():
        raise ValueError("commit failed")

    assert run_concurrently(spark, [ok(1), ok(2), ok(3)]) == [(1, "caller"), (2, "caller"), (3, "caller")]
    finished.clear()
    with pytest.raises(ValueError, match="commit failed"):
        run_concurrently(spark, [boom, ok(2), ok(3)])
    assert sorted(finished) == [2, 3]  # the slow call finished before the failure was raised
    spark.sparkContext.setLocalProperty("lakehouse.test", None)


def test_committed_batch_from_the_checksum_equals_the_snapshot_state(spark, tables, table_name):
    """The fast path (transaction ids listed in Delta's version checksum) answers what the snapshot's reconstructed
    state answers, for every app id, after commits of this process and after a fresh load of the log."""
    from lakehouse.tables.native import _checksum_transactions

    df = spark.createDataFrame(rows(2), SCHEMA)
    for app, batch in [("a", 0), ("b", 3), ("a", 1), ("c", 7)]:
        tables.write_batch(df, table_name, app_id=app, batch_id=batch)
    jvm = spark._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, tables.location(table_name))
    snapshot = delta_log.update(False, jvm.scala.Option.empty(), jvm.scala.Option.empty())
    listed = _checksum_transactions(snapshot)
    state = snapshot.transactions()
    assert listed == {app: int(state.get(app).get()) for app in ("a", "b", "c")} == {"a": 1, "b": 3, "c": 7}
    assert [tables.committed_batch(table_name, app) for app in ("a", "b", "c", "d")] == [1, 3, 7, None]
    jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()  # read back from storage, as another process would
    assert [tables.committed_batch(table_name, app) for app in ("a", "b", "c", "d")] == [1, 3, 7, None]


def test_merge_updates_deletes_and_inserts(spark, tables, table_name):
    tables.append(spark.createDataFrame(rows(4), SCHEMA), table_name)
    changes = spark.createDataFrame(
        [
            (0, "SKU-NEW", Decimal("99.99"), T0, "web", "upsert"),
            (1, None, None, None, None, "delete"),
            (7, "SKU-00007", Decimal("7.00"), T0, "ebay", "upsert"),
        ],
        StructType([*SCHEMA.fields, StructField("op", StringType())]),
    )
    spec = MergeSpec(on="t.id = s.id", delete_when="s.op = 'delete'", insert_when="s.op = 'upsert'")
    assert tables.merge(changes, table_name, spec, app_id="cdc", batch_id=5)
    got = by_id(tables.read(table_name))
    assert sorted(got) == [0, 2, 3, 7]
    assert got[0]["sku"] == "SKU-NEW" and got[0]["amount"] == Decimal("99.99")
    assert got[7]["channel"] == "ebay"
    # the same batch again is skipped
    version = tables.version(table_name)
    assert tables.merge(changes, table_name, spec, app_id="cdc", batch_id=5) is False
    assert tables.version(table_name) == version


def test_keyed_merges_run_at_once_each_commit_their_own_transaction_id(spark, tables, table_name):
    from lakehouse.tables.concurrent import run_concurrently

    names = [table_name, f"{table_name}_b", f"{table_name}_c"]
    for name in names:
        tables.append(spark.createDataFrame(rows(2), SCHEMA), name)
    spec = MergeSpec(on="t.id = s.id")

    def merge(i: int, name: str):
        return lambda: tables.merge(spark.createDataFrame(rows(1, start=10 + i), SCHEMA), name, spec,
                                    app_id=f"app{i}", batch_id=i + 1)

    assert run_concurrently(spark, [merge(i, name) for i, name in enumerate(names)]) == [True, True, True]
    assert [[tables.committed_batch(name, f"app{j}") for j in range(3)] for name in names] == [
        [1, None, None], [None, 2, None], [None, None, 3]]
    assert [sorted(by_id(tables.read(name))) for name in names] == [[0, 1, 10], [0, 1, 11], [0, 1, 12]]
    assert spark.conf.get("spark.databricks.delta.write.txnAppId", None) is None  # this session's conf untouched


def test_create_empty_table_then_read_has_schema(tables, table_name):
    tables.create(table_name, SCHEMA, partition_by=["channel"])
    tables.create(table_name, SCHEMA)  # idempotent
    df = tables.read(table_name)
    assert df.count() == 0
    assert [f.name for f in df.schema] == [f.name for f in SCHEMA]


def test_missing_table_is_a_clear_error(tables):
    with pytest.raises(TableNotFound, match="silver.does_not_exist"):
        tables.read("silver.does_not_exist")


def test_optimize_compacts_and_vacuum_keeps_current_data(spark, tables, table_name):
    for start in range(0, 15, 5):
        tables.append(spark.createDataFrame(rows(5, start=start), SCHEMA).coalesce(1), table_name)
    metrics = tables.optimize(table_name)
    assert (metrics["metrics"]["numFilesRemoved"], metrics["metrics"]["numFilesAdded"]) == (3, 1)
    assert tables.row_count(table_name) == 15
    before = {p.name for p in Path(tables.location(table_name)).glob("*.parquet")}
    removed = tables.vacuum(table_name, retention_hours=0)
    after = {p.name for p in Path(tables.location(table_name)).glob("*.parquet")}
    assert len(removed) == 3 and {Path(r).name for r in removed} == before - after and len(after) == 1
    assert sorted(by_id(tables.read(table_name))) == list(range(15))


def test_tables_are_valid_delta_for_another_reader(spark, tables, table_name):
    """delta-rs (a different Delta implementation than Spark's writer path) reads what we wrote."""
    tables.append(spark.createDataFrame(rows(3), SCHEMA), table_name, partition_by=["channel"])
    tables.append(spark.createDataFrame(rows(2, start=3, channel="ebay"), SCHEMA), table_name)
    other = DeltaTable(tables.location(table_name)).to_pyarrow_table()
    assert sorted(other.column("id").to_pylist()) == [0, 1, 2, 3, 4]
    assert other.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    log_dir = Path(tables.location(table_name)) / "_delta_log"
    first = [json.loads(line) for line in (log_dir / "00000000000000000000.json").read_text().splitlines()]
    assert any("protocol" in a for a in first) and any("metaData" in a for a in first)
    adds = [a["add"] for a in first if "add" in a]
    assert adds and all(json.loads(a["stats"])["numRecords"] > 0 for a in adds)


def test_append_with_new_column_needs_merge_schema(spark, tables, table_name):
    tables.append(spark.createDataFrame(rows(1), SCHEMA), table_name)
    wider = spark.createDataFrame(rows(1, start=1), SCHEMA).withColumn("region", F.lit("EU"))
    with pytest.raises(Exception, match="mergeSchema"):
        tables.append(wider, table_name)
    tables.append(wider, table_name, merge_schema=True)
    got = by_id(tables.read(table_name))
    assert got[0]["region"] is None and got[1]["region"] == "EU"


def test_read_appends_returns_only_rows_of_later_versions(spark, tables, table_name):
    tables.append(spark.createDataFrame(rows(2), SCHEMA), table_name)  # v0
    tables.append(spark.createDataFrame(rows(3, start=2), SCHEMA), table_name)  # v1
    tables.append(spark.createDataFrame(rows(1, start=5), SCHEMA), table_name)  # v2
    assert sorted(by_id(tables.read_appends(table_name, None, 0))) == [0, 1]
    assert sorted(by_id(tables.read_appends(table_name, 0, 2))) == [2, 3, 4, 5]
    assert sorted(by_id(tables.read_appends(table_name, 1, 2))) == [5]
    assert tables.read_appends(table_name, 2, 2).count() == 0


def test_read_changes_returns_old_and_new_images_of_merged_rows_only(spark, tables, table_name):
    tables.append(spark.createDataFrame(rows(4), SCHEMA), table_name)  # v0: one file, rewritten by the merge
    changes = spark.createDataFrame(
        [(0, "SKU-NEW", Decimal("1.00"), T0, "web", "upsert"), (1, None, None, None, None, "delete"),
         (7, "SKU-7", Decimal("7.00"), T0, "web", "upsert")],
        StructType([*SCHEMA.fields, StructField("op", StringType())]))
    tables.merge(changes, table_name, MergeSpec(on="t.id = s.id", delete_when="s.op = 'delete'"))  # v1
    got = sorted((r["id"], r["sku"]) for r in tables.read_changes(table_name, 0, 1).collect())
    assert got == [(0, "SKU-00000"), (0, "SKU-NEW"), (1, "SKU-00001"), (7, "SKU-7")]
    assert tables.read_changes(table_name, 1, 1).count() == 0
    assert tables.read_changes(table_name, None, 0).count() == 4


def test_log_replayed_by_hand_matches_what_the_api_reads(spark, tables, table_name):
    """An independent reader: replay the JSON log (add/remove actions) and read the Parquet files with pyarrow."""
    import pyarrow.parquet as pq

    tables.append(spark.createDataFrame(rows(4), SCHEMA), table_name)
    tables.overwrite(spark.createDataFrame(rows(3, start=10), SCHEMA), table_name)
    tables.append(spark.createDataFrame(rows(2, start=20), SCHEMA), table_name)
    location = Path(tables.location(table_name))
    live: set[str] = set()
    for commit in sorted((location / "_delta_log").glob("*.json")):
        for action in map(json.loads, commit.read_text().splitlines()):
            if "add" in action:
                live.add(action["add"]["path"])
            elif "remove" in action:
                live.discard(action["remove"]["path"])
    ids = sorted(i for path in live for i in pq.read_table(location / path).column("id").to_pylist())
    assert ids == [10, 11, 12, 20, 21] == sorted(by_id(tables.read(table_name)))


def test_registered_table_follows_an_added_column(spark, tables, table_name):
    tables.append(spark.createDataFrame(rows(2), SCHEMA), table_name)
    tables.register(table_name)
    assert spark.sql(f"SELECT count(*) AS n FROM {table_name}").first()["n"] == 2
    wider = spark.createDataFrame(rows(1, start=2), SCHEMA).withColumn("region", F.lit("EU"))
    tables.append(wider, table_name, merge_schema=True)
    tables.register(table_name)  # jobs register after every write
    got = spark.sql(f"SELECT id, region FROM {table_name} ORDER BY id").collect()
    assert [(r["id"], r["region"]) for r in got] == [(0, None), (1, None), (2, "EU")]
