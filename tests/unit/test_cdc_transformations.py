"""Silver CDC transformations on tiny DataFrames of Debezium envelopes, exact expected rows."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from cdc_envelopes import envelope, product

from lakehouse.sources.kafka import kafka_schema
from transformations.bronze.kafka_records import kafka_to_bronze
from transformations.silver.cdc import (
    TABLES,
    latest_per_key,
    parse_envelopes,
    scd1_source,
    scd2_as_of,
    scd2_rebuild,
    scd2_schema,
    table_changes,
    tombstone_rows,
    without_superseded,
)

KAFKA_SCHEMA = kafka_schema()
T = dt.datetime(2026, 11, 2, 9, 30)

PRODUCTS = TABLES["products"]


def bronze(spark, payloads: list[tuple[str, bytes | None]]):
    rows = [(b"{}", value, topic, 0, i, T, 0) for i, (topic, value) in enumerate(payloads)]
    return kafka_to_bronze(spark.createDataFrame(rows, KAFKA_SCHEMA))


def changes(spark, payloads: list[bytes]):
    parsed = parse_envelopes(bronze(spark, [("erp.public.products", p) for p in payloads]))
    good, bad = table_changes(parsed, PRODUCTS)
    assert bad.count() == 0
    return good


def test_parse_envelopes_reasons_and_tombstones_dropped(spark):
    parsed = parse_envelopes(bronze(spark, [
        ("erp.public.products", envelope("c", 10, after=product("A", "1.00"))),
        ("erp.public.products", None),  # tombstone
        ("erp.public.products", b"{not json"),
        ("erp.public.unknown", envelope("c", 11, after={"x": 1}, table="unknown")),
        ("erp.public.products", envelope("t", 12)),
        ("erp.public.products", envelope("u", 13, before=product("A", "1.00"))),  # no after image
        ("erp.public.products", json.dumps({"op": "c", "after": {"sku": "B"}, "source": {}}).encode()),
    ]))
    got = [(r.offset, r.op, r.lsn, r.reason) for r in parsed.orderBy("offset").collect()]
    assert got == [
        (0, "c", 10, None),
        (2, None, None, "malformed: not a Debezium JSON envelope"),
        (3, "c", 11, "unknown table: erp.public.unknown"),
        (4, "t", 12, "unsupported op: t"),
        (5, "u", 13, "missing row image for op u"),
        (6, "c", None, "missing source.lsn"),
    ]


def test_missing_primary_key_is_rejected(spark):
    parsed = parse_envelopes(bronze(spark, [("erp.public.products", envelope("c", 5, after={"title": "x"}))]))
    good, bad = table_changes(parsed, PRODUCTS)
    assert good.count() == 0
    assert [r.reason for r in bad.collect()] == ["missing primary key (sku)"]


def test_latest_per_key_orders_by_lsn_not_arrival_and_types_columns(spark):
    got = latest_per_key(changes(spark, [
        envelope("u", 30, product("A", "1.00"), product("A", "3.00")),
        envelope("u", 20, product("A", "1.00"), product("A", "2.00")),  # late: arrives after lsn 30
        envelope("u", 30, product("A", "1.00"), product("A", "3.00")),  # re-delivered
        envelope("c", 5, after=product("B", "9.99")),
        envelope("d", 40, before=product("B", "9.99")),
    ]), PRODUCTS.keys)
    rows = sorted((r.sku, r.price, r._lsn, r._deleted, r.updated_at) for r in got.collect())
    assert rows == [("A", Decimal("3.00"), 30, False, dt.datetime(2026, 11, 2, 9, 0)),
                    ("B", Decimal("9.99"), 40, True, dt.datetime(2026, 11, 2, 9, 0))]


def test_tombstones_drop_older_redeliveries_but_keep_the_delete_itself(spark):
    latest = latest_per_key(changes(spark, [
        envelope("c", 10, after=product("A", "1.00")),  # re-delivered after its delete (lsn 20) was applied
        envelope("d", 20, before=product("B", "1.00")),  # the delete itself, replayed
        envelope("c", 30, after=product("C", "1.00")),  # re-created after a delete at lsn 25
    ]), PRODUCTS.keys)
    tomb = spark.createDataFrame([("products", '{"sku":"A"}', 20), ("products", '{"sku":"B"}', 20),
                                  ("products", '{"sku":"C"}', 25)], "source_table string, key string, lsn long")
    kept = scd1_source(without_superseded(latest, tomb, PRODUCTS), PRODUCTS)
    assert sorted((r.sku, r._lsn, r._deleted) for r in kept.collect()) == [("B", 20, True), ("C", 30, False)]
    assert [tuple(r) for r in tombstone_rows(latest, PRODUCTS).collect()] == [("products", '{"sku":"B"}', 20)]


def _history(rows):
    return sorted((r.sku, str(r.price), r._lsn_from, r._lsn_to, r.is_current, r._ended_by_delete, r._action)
                  for r in rows.collect())


def test_scd2_versions_compress_unchanged_prices_and_close_on_delete(spark):
    empty = spark.createDataFrame([], scd2_schema(PRODUCTS))
    rebuilt = scd2_rebuild(empty, changes(spark, [
        envelope("r", 10, after=product("A", "1.00")),
        envelope("u", 20, product("A", "1.00"), product("A", "1.00", title="Big mug")),  # price unchanged
        envelope("u", 30, product("A", "1.00"), product("A", "2.00")),
        envelope("d", 40, before=product("A", "2.00")),
        envelope("c", 50, after=product("A", "5.00")),
    ]), PRODUCTS)
    assert _history(rebuilt) == [
        ("A", "1.00", 10, 30, False, False, "upsert"),
        ("A", "2.00", 30, 40, False, True, "upsert"),
        ("A", "5.00", 50, None, True, False, "upsert"),
    ]


def test_scd2_late_event_splits_stored_history_and_as_of(spark):
    stored = scd2_rebuild(spark.createDataFrame([], scd2_schema(PRODUCTS)), changes(spark, [
        envelope("r", 10, after=product("A", "1.00")),
        envelope("u", 30, product("A", "1.00"), product("A", "3.00")),
    ]), PRODUCTS).drop("_action")
    late = changes(spark, [envelope("u", 20, product("A", "1.00"), product("A", "2.00")),
                           envelope("u", 30, product("A", "1.00"), product("A", "3.00"))])  # + a re-delivery
    rebuilt = scd2_rebuild(stored, late, PRODUCTS)
    assert _history(rebuilt) == [  # the stored current version (30) is unchanged: not rewritten
        ("A", "1.00", 10, 20, False, False, "upsert"),
        ("A", "2.00", 20, 30, False, False, "upsert"),
    ]
    history = stored.join(rebuilt.select("sku", "_lsn_from"), ["sku", "_lsn_from"], "left_anti").unionByName(
        rebuilt.drop("_action"))
    assert [str(r.price) for r in scd2_as_of(history, 25).collect()] == ["2.00"]
    assert [str(r.price) for r in scd2_as_of(history, 30).collect()] == ["3.00"]
    assert scd2_as_of(history, 9).count() == 0
