"""Silver CDC transformations on tiny DataFrames of Debezium envelopes, exact expected rows."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from cdc_envelopes import envelope, product

from lakehouse.cdc.specs import load_specs, mirror_spec, spec_from_dict
from lakehouse.sources.kafka import kafka_schema
from transformations.bronze.kafka_records import kafka_to_bronze
from transformations.silver.cdc import (
    TABLES,
    batch_tables,
    dead_letters,
    latest_per_key,
    parse_envelopes,
    scd1_source,
    scd2_as_of,
    scd2_rebuild,
    scd2_schema,
    table_changes,
    tokenize_changes,
    tombstone_rows,
    without_superseded,
)

KAFKA_SCHEMA = kafka_schema()
T = dt.datetime(2026, 11, 2, 9, 30)

PRODUCTS = TABLES["products"]


def bronze(spark, payloads: list[tuple[str, bytes | None]], key: bytes = b"{}"):
    rows = [(key, value, topic, 0, i, T, 0) for i, (topic, value) in enumerate(payloads)]
    return kafka_to_bronze(spark.createDataFrame(rows, KAFKA_SCHEMA))


def changes(spark, payloads: list[bytes]):
    parsed = parse_envelopes(bronze(spark, [("erp.public.products", p) for p in payloads]))
    good, bad = table_changes(parsed, PRODUCTS)
    assert bad.count() == 0
    return good.localCheckpoint()  # materialized, like the job's persisted batch: plans stay as small as the job's


def test_parse_envelopes_reasons_and_tombstones_dropped(spark):
    parsed = parse_envelopes(bronze(spark, [
        ("erp.public.products", envelope("c", 10, after=product("A", "1.00"))),
        ("erp.public.products", None),  # tombstone
        ("erp.public.products", b"{not json"),
        ("erp.public.unknown", envelope("c", 11, after={"x": 1}, table="unknown")),  # kept: mirrored generically
        ("erp.public.products", envelope("t", 12)),
        ("erp.public.products", envelope("u", 13, before=product("A", "1.00"))),  # no after image
        ("erp.public.products", json.dumps({"op": "c", "after": {"sku": "B"}, "source": {}}).encode()),
    ]))
    got = [(r.offset, r.op, r.lsn, r.reason) for r in parsed.orderBy("offset").collect()]
    assert [r.table for r in parsed.orderBy("offset").collect()][:2] == ["products", "products"]
    assert got == [
        (0, "c", 10, None),
        (2, None, None, "malformed: not a Debezium JSON envelope"),
        (3, "c", 11, None),
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
    ]), PRODUCTS).drop("_action").localCheckpoint()  # a stored table, as in the job
    late = changes(spark, [envelope("u", 20, product("A", "1.00"), product("A", "2.00")),
                           envelope("u", 30, product("A", "1.00"), product("A", "3.00"))])  # + a re-delivery
    rebuilt = scd2_rebuild(stored, late, PRODUCTS).localCheckpoint()
    assert _history(rebuilt) == [  # the stored current version (30) is unchanged: not rewritten
        ("A", "1.00", 10, 20, False, False, "upsert"),
        ("A", "2.00", 20, 30, False, False, "upsert"),
    ]
    history = stored.join(rebuilt.select("sku", "_lsn_from"), ["sku", "_lsn_from"], "left_anti").unionByName(
        rebuilt.drop("_action"))
    assert [str(r.price) for r in scd2_as_of(history, 25).collect()] == ["2.00"]
    assert [str(r.price) for r in scd2_as_of(history, 30).collect()] == ["3.00"]
    assert scd2_as_of(history, 9).count() == 0


def test_scd2_redelivered_history_rewrites_nothing(spark):
    first = [envelope("r", 10, after=product("A", "1.00")), envelope("u", 30, product("A", "1.00"), product("A", "3.00"))]
    stored = scd2_rebuild(spark.createDataFrame([], scd2_schema(PRODUCTS)), changes(spark, first),
                          PRODUCTS).localCheckpoint()
    assert scd2_rebuild(stored.drop("_action"), changes(spark, first), PRODUCTS).count() == 0


def test_batch_tables_reports_counts_message_keys_and_columns_of_unspecified_tables(spark):
    gift = "erp.public.gift_cards"
    parsed = parse_envelopes(bronze(spark, [
        (gift, envelope("c", 1, after={"code": "G1", "balance": "25.00"}, table="gift_cards")),
        (gift, envelope("u", 2, before={"code": "G1", "balance": "25.00"},
                        after={"code": "G1", "balance": "20.00", "note": "x"}, table="gift_cards")),
        (gift, envelope("d", 3, before={"code": "G1"}, table="gift_cards")),
        (gift, b"{oops"),
    ], key=b'{"code":"G1"}'))
    parsed = parsed.unionByName(parse_envelopes(bronze(spark, [
        ("erp.public.products", envelope("c", 10, after=product("A", "1.00")))], key=b'{"sku":"A"}')))
    got = {r.table: (r.envelopes, r.changes, r.deletes, r.key_columns, sorted(map(sorted, r.column_sets)))
           for r in batch_tables(parsed, list(TABLES)).collect()}
    assert got == {
        "gift_cards": (4, 3, 1, ["code"], [["balance", "code"], ["balance", "code", "note"], ["code"]]),
        "products": (1, 1, 0, ["sku"], []),  # a specified table: its columns come from its spec
    }


def test_a_table_without_spec_is_mirrored_as_text_on_its_message_key(spark):
    spec = mirror_spec("gift_cards", ["code"], ["balance", "code", "note"], stored=["code", "balance"])
    assert (spec.scd1, spec.keys, spec.column_names, spec.scd2) == (
        "silver.erp_gift_cards", ("code",), ["code", "balance", "note"], None)
    gift = "erp.public.gift_cards"
    parsed = parse_envelopes(bronze(spark, [
        (gift, envelope("c", 1, after={"code": "G1", "balance": 25.5}, table="gift_cards")),
        (gift, envelope("c", 2, after={"code": "G2", "balance": 50, "note": {"a": 1}}, table="gift_cards")),
        (gift, envelope("d", 3, before={"code": "G2"}, table="gift_cards")),  # replica identity default
        (gift, envelope("c", 4, after={"balance": 1}, table="gift_cards")),
    ]))
    good, bad = table_changes(parsed, spec)
    latest = scd1_source(latest_per_key(good, spec.keys), spec)
    assert sorted(tuple(r) for r in latest.drop("_source_ts").collect()) == [
        ("G1", "25.5", None, 1, False), ("G2", None, None, 3, True)]
    assert [(r.offset, r.reason) for r in bad.collect()] == [(3, "missing primary key (code)")]
    no_key = mirror_spec("gift_cards", [], ["code"])
    good, bad = table_changes(parsed, no_key)
    assert good.count() == 0 and bad.count() == 4
    assert {r.reason for r in bad.collect()} == {"missing primary key (none in the message key)"}


def test_primary_key_update_delete_and_reinsert_keep_the_latest_per_key_exact(spark):
    latest = latest_per_key(changes(spark, [
        envelope("c", 10, after=product("A", "1.00")),
        envelope("d", 20, before=product("A", "1.00")),  # PK update A -> B: delete of the old key ...
        envelope("c", 20, after=product("B", "1.00")),  # ... and create of the new one, same LSN
        envelope("c", 30, after=product("C", "3.00")),
        envelope("d", 40, before=product("C", "3.00")),
        envelope("c", 50, after=product("C", "3.50")),  # re-inserted
        envelope("c", 50, after=product("C", "3.50")),  # re-delivered
    ]), PRODUCTS.keys)
    assert sorted((r.sku, str(r.price), r._lsn, r._deleted) for r in latest.collect()) == [
        ("A", "1.00", 20, True), ("B", "1.00", 20, False), ("C", "3.50", 50, False)]


def test_tokenize_changes_replaces_personal_data_and_returns_raw_values_once(spark):
    from transformations.silver.enrichment import pii_token_text

    spec = TABLES["customers"]
    image = {"customer_id": 7, "name": "Ada", "email": "ada@example.com", "address": None, "country": "GB",
             "marketing_consent": True, "updated_at": "2026-11-02T09:00:00Z"}
    parsed = parse_envelopes(bronze(spark, [("erp.public.customers", envelope("c", lsn, after=image,
                                                                              table="customers"))
                                            for lsn in (1, 2)]))
    good, _ = table_changes(parsed, spec)
    tokenized, raw = tokenize_changes(good, spec, "salt")
    assert sorted(tuple(r) for r in raw.collect()) == [("customers", "email", pii_token_text("ada@example.com", "salt"),
                                                        "ada@example.com"),
                                                       ("customers", "name", pii_token_text("Ada", "salt"), "Ada")]
    assert {(r.name, r.email, r.address, r.country) for r in tokenized.collect()} == {
        (pii_token_text("Ada", "salt"), pii_token_text("ada@example.com", "salt"), None, "GB")}


def test_dead_letters_keep_coordinates_and_reason(spark):
    parsed = parse_envelopes(bronze(spark, [("erp.public.products", b"{oops")], key=b'{"sku":"A"}'))
    at = dt.datetime(2026, 12, 2, 20, 0)
    rows = dead_letters(parsed.where("reason IS NOT NULL"), at).collect()
    assert [tuple(r) for r in rows] == [("erp.public.products", 0, 0, '{"sku":"A"}', "{oops",
                                         "malformed: not a Debezium JSON envelope", at)]


def test_specs_ship_with_the_package_and_are_validated(tmp_path):
    specs = load_specs()
    assert sorted(specs) == ["customers", "fx_rates", "inventory", "products", "suppliers", "warehouses"]
    assert (specs["products"].scd1, specs["products"].scd2, specs["products"].tracked) == (
        "silver.products", "silver.product_prices_history", ("price", "currency"))
    assert (specs["customers"].scd1, specs["customers"].pii) == (None, ("name", "email", "address"))
    assert spec_from_dict({"source_table": "t", "columns": {"id": "int"}}).scd1 == "silver.erp_t"
    import pytest

    with pytest.raises(ValueError, match="not among its columns"):
        spec_from_dict({"source_table": "t", "primary_key": ["nope"], "columns": {"id": "int"}})
