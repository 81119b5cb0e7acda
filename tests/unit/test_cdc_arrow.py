"""The Arrow path of silver CDC (what jobs/silver_cdc runs) on tiny batches: same rules as the Spark functions."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
from cdc_envelopes import envelope, product
from pyspark.sql.types import StructType

from transformations.silver.cdc import (
    TABLES,
    arrow_schema,
    key_text,
    latest_changes,
    parse_batch,
    scd1_arrow,
    scd2_rebuild_arrow,
    scd2_schema,
    tombstones_arrow,
)

PRODUCTS = TABLES["products"]


def bronze(payloads: list[tuple[str, bytes | None]]) -> pa.Table:
    return pa.table({
        "topic": [t for t, _ in payloads], "partition": pa.array([0] * len(payloads), pa.int32()),
        "offset": pa.array(range(len(payloads)), pa.int64()), "key": ["{}"] * len(payloads),
        "value": pa.array([v for _, v in payloads], pa.binary()),
    })


def products(payloads: list[bytes]):
    batch = parse_batch(bronze([("erp.public.products", p) for p in payloads]))
    assert batch.dead == []
    return batch.changes["products"]


def test_parse_batch_reasons_and_tombstones_dropped():
    batch = parse_batch(bronze([
        ("erp.public.products", envelope("c", 10, after=product("A", "1.00"))),
        ("erp.public.products", None),  # tombstone
        ("erp.public.products", b"{not json"),
        ("erp.public.unknown", envelope("c", 11, after={"x": 1}, table="unknown")),
        ("erp.public.products", envelope("t", 12)),
        ("erp.public.products", envelope("u", 13, before=product("A", "1.00"))),  # no after image
        ("erp.public.products", json.dumps({"op": "c", "after": {"sku": "B"}, "source": {}}).encode()),
        ("erp.public.products", envelope("c", 5, after={"title": "x"})),
    ]))
    assert batch.envelopes == 7
    assert [(c.offset, c.lsn, c.key) for c in batch.changes["products"]] == [(0, 10, ("A",))]
    assert [(d["offset"], d["reason"]) for d in batch.dead] == [
        (2, "malformed: not a Debezium JSON envelope"),
        (3, "unknown table: erp.public.unknown"),
        (4, "unsupported op: t"),
        (5, "missing row image for op u"),
        (6, "missing source.lsn"),
        (7, "missing primary key (sku)"),
    ]


def test_latest_orders_by_lsn_not_arrival_and_types_columns():
    latest = latest_changes(products([
        envelope("u", 30, product("A", "1.00"), product("A", "3.00")),
        envelope("u", 20, product("A", "1.00"), product("A", "2.00")),  # late: arrives after lsn 30
        envelope("u", 30, product("A", "1.00"), product("A", "3.00")),  # re-delivered
        envelope("c", 5, after=product("B", "9.99")),
        envelope("d", 40, before=product("B", "9.99")),
    ]))
    rows = sorted((c.row["sku"], c.row["price"], c.lsn, c.deleted, c.row["updated_at"]) for c in latest.values())
    assert rows == [("A", Decimal("3.00"), 30, False, dt.datetime(2026, 11, 2, 9, 0)),
                    ("B", Decimal("9.99"), 40, True, dt.datetime(2026, 11, 2, 9, 0))]


def test_tombstones_drop_older_redeliveries_but_keep_the_delete_itself():
    latest = latest_changes(products([
        envelope("c", 10, after=product("A", "1.00")),  # re-delivered after its delete (lsn 20) was applied
        envelope("d", 20, before=product("B", "1.00")),  # the delete itself, replayed
        envelope("c", 30, after=product("C", "1.00")),  # re-created after a delete at lsn 25
    ]))
    stored = {'{"sku":"A"}': 20, '{"sku":"B"}': 20, '{"sku":"C"}': 25}
    kept = scd1_arrow(latest, stored, PRODUCTS)
    assert kept.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert sorted(zip(*(kept.column(c).to_pylist() for c in ("sku", "_lsn", "_deleted")), strict=True)) == [
        ("B", 20, True), ("C", 30, False)]
    assert tombstones_arrow(latest, PRODUCTS).to_pylist() == [{"source_table": "products", "key": '{"sku":"B"}',
                                                                "lsn": 20}]
    assert key_text(TABLES["inventory"], ("S1", 3)) == '{"sku":"S1","warehouse_id":3}'


def _history(table: pa.Table) -> list[tuple]:
    return sorted((r["sku"], str(r["price"]), r["_lsn_from"], r["_lsn_to"], r["is_current"], r["_ended_by_delete"],
                   r["_action"]) for r in table.to_pylist())


def _empty() -> pa.Table:
    return arrow_schema(scd2_schema(PRODUCTS)).empty_table()


def test_scd2_versions_compress_unchanged_prices_and_close_on_delete():
    rebuilt = scd2_rebuild_arrow(_empty(), products([
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


def test_scd2_late_event_splits_stored_history_and_redelivery_rewrites_nothing():
    first = [envelope("r", 10, after=product("A", "1.00")), envelope("u", 30, product("A", "1.00"),
                                                                     product("A", "3.00"))]
    stored = scd2_rebuild_arrow(_empty(), products(first), PRODUCTS).drop_columns(["_action"])
    stored = stored.cast(arrow_schema(StructType(scd2_schema(PRODUCTS).fields)))
    assert scd2_rebuild_arrow(stored, products(first), PRODUCTS).num_rows == 0
    late = products([envelope("u", 20, product("A", "1.00"), product("A", "2.00")), first[1]])  # + a re-delivery
    assert _history(scd2_rebuild_arrow(stored, late, PRODUCTS)) == [  # the stored version 30 is not rewritten
        ("A", "1.00", 10, 20, False, False, "upsert"),
        ("A", "2.00", 20, 30, False, False, "upsert"),
    ]


def test_tokenize_changes_replaces_personal_data_and_returns_raw_values_once():
    from transformations.silver.cdc import Change, tokenize_changes
    from transformations.silver.enrichment import pii_token_text

    spec = TABLES["customers"]
    image = {"customer_id": 7, "name": "Ada", "email": "ada@example.com", "address": None, "country": "GB"}
    changes = [Change(spec, (7,), dict(image), False, lsn, None, 0, lsn) for lsn in (1, 2)]
    raw = tokenize_changes(changes, spec, "salt")
    assert sorted((r["column"], r["value"]) for r in raw.to_pylist()) == [("email", "ada@example.com"),
                                                                          ("name", "Ada")]
    row = changes[1].row
    assert (row["name"], row["email"], row["address"], row["country"]) == (
        pii_token_text("Ada", "salt"), pii_token_text("ada@example.com", "salt"), None, "GB")
