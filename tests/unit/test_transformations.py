"""Pure transformations on tiny DataFrames, exact expected rows."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from lakehouse.sources.kafka import kafka_schema
from transformations.bronze.kafka_records import BRONZE_COLUMNS, kafka_to_bronze
from transformations.silver.orders import (
    dedupe_events,
    parse_order_events,
    quarantine_rows,
    split_parse_errors,
)

KAFKA_SCHEMA = kafka_schema()
T = dt.datetime(2026, 11, 2, 9, 30)


def event(event_id: str, order: int, channel: str = "web", amount: str = "30.00", day: int = 2) -> bytes:
    return json.dumps(
        {
            "event_id": event_id, "event_type": "order_placed", "schema_version": 1,
            "event_time": f"2026-11-{day:02d}T10:00:00.250Z", "order_id": f"ORD-{order:08d}",
            "customer_id": "CUST-000001", "channel": channel, "region": "EU", "currency": "EUR",
            "lines": [{"sku": "SKU-00001", "quantity": 2, "unit_price": 10.00},
                      {"sku": "SKU-00002", "quantity": 1, "unit_price": 10.00}],
            "total_amount": float(amount),
        }
    ).encode()


def bronze(spark, payloads: list[bytes]):
    records = [(b"k", p, "orders", 0, i, T, 0) for i, p in enumerate(payloads)]
    return kafka_to_bronze(spark.createDataFrame(records, KAFKA_SCHEMA))


def test_bronze_keeps_payload_bytes_and_coordinates(spark):
    rows = bronze(spark, [b"\x00not json", b"{}"]).collect()
    assert [r["value"] for r in rows] == [bytearray(b"\x00not json"), bytearray(b"{}")]
    assert [(r["topic"], r["partition"], r["offset"]) for r in rows] == [("orders", 0, 0), ("orders", 0, 1)]
    assert list(rows[0].asDict()) == BRONZE_COLUMNS
    assert rows[0]["ingest_date"] == rows[0]["ingested_at"].date()


def test_parse_types_fields_and_flags_malformed(spark):
    parsed = parse_order_events(bronze(spark, [event("e1", 1), b'{"event_id": "x", ', b"[1, 2]"]))
    ok, bad = split_parse_errors(parsed)
    good = ok.collect()
    assert len(good) == 1
    row = good[0]
    assert row["total_amount"] == Decimal("30.00")
    assert row["units"] == 3 and row["line_count"] == 2
    assert row["event_time"] == dt.datetime(2026, 11, 2, 10, 0, 0, 250000)
    assert row["lines"][0]["unit_price"] == Decimal("10.00")
    reasons = sorted(r["_parse_error"] for r in bad.collect())
    assert reasons == ["malformed JSON: payload does not parse", "malformed JSON: payload is not an object"]


def test_dedupe_keeps_first_delivery_per_event_id(spark):
    parsed = parse_order_events(bronze(spark, [event("e1", 1), event("e2", 2), event("e1", 1)]))
    ok, _ = split_parse_errors(parsed)
    kept = sorted((r["event_id"], r["source_offset"]) for r in dedupe_events(ok).collect())
    assert kept == [("e1", 0), ("e2", 1)]


def test_quarantine_rows_carry_reason_and_raw_payload(spark):
    _, bad = split_parse_errors(parse_order_events(bronze(spark, [b"oops"])))
    row = quarantine_rows(bad, "_parse_error", "silver.orders", "run-1").collect()[0]
    assert (row["reason"], row["raw_payload"], row["source_offset"], row["run_id"]) == (
        "malformed JSON: payload does not parse", "oops", 0, "run-1")
