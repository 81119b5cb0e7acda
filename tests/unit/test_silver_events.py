"""Silver parsing of payments, shipments, inventory and clickstream, FX conversion, PII tokenization, settlements."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal

from pyspark.sql import functions as F

from lakehouse.sources.kafka import kafka_schema
from transformations.bronze.kafka_records import kafka_to_bronze
from transformations.silver.enrichment import to_reporting_currency, tokenize_pii
from transformations.silver.events import (
    dedupe_events,
    parse_clickstream_events,
    parse_inventory_events,
    parse_payment_events,
    parse_shipment_events,
    split_parse_errors,
)
from transformations.silver.settlements import parse_settlements

T = dt.datetime(2026, 11, 2, 9, 30)
EVENT_TIME = "2026-11-02T11:00:00+01:00"  # 10:00 UTC


def bronze(spark, topic: str, payloads: list[bytes | dict]):
    values = [p if isinstance(p, bytes) else json.dumps(p).encode() for p in payloads]
    records = [(b"k", v, topic, 0, i, T, 0) for i, v in enumerate(values)]
    return kafka_to_bronze(spark.createDataFrame(records, kafka_schema()))


def payment(event_id: str, provider: str, payload: dict, currency: str = "EUR") -> dict:
    return {"event_id": event_id, "event_type": "captured", "schema_version": 1, "event_time": EVENT_TIME,
            "payment_id": "PAY-00000001", "order_id": "ORD-00000001", "provider": provider, "amount": 12.34,
            "currency": currency, "region": "EU", "provider_payload": payload}


STRIPE = {"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
          "data": {"object": {"id": "pi_1", "amount": 1234, "currency": "eur", "status": "succeeded"}}}
PAYPAL = {"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED",
          "resource": {"id": "PAY-1", "status": "CAPTURED", "amount": {"currency_code": "EUR", "value": "12.34"}}}
ADYEN = {"pspReference": "8800000000000001", "eventCode": "CAPTURE", "success": "true",
         "amount": {"value": 1234, "currency": "JPY"}}


def test_payments_typed_utc_with_provider_fields_and_parse_errors(spark):
    parsed = parse_payment_events(bronze(spark, "payments", [
        payment("p1", "stripe", STRIPE), payment("p2", "paypal", PAYPAL), payment("p3", "adyen", ADYEN, "JPY"),
        b'{"event_id": "x"', b'"just a string"',
    ]))
    ok, bad = split_parse_errors(parsed)
    rows = [(r["event_id"], r["event_time"], r["amount"], r["provider_event_id"], r["provider_reference"],
             r["provider_amount"], r["provider_currency"]) for r in ok.orderBy("event_id").collect()]
    ten_utc = dt.datetime(2026, 11, 2, 10, 0)
    assert rows == [
        ("p1", ten_utc, Decimal("12.34"), "evt_1", "pi_1", Decimal("12.34"), "EUR"),
        ("p2", ten_utc, Decimal("12.34"), "WH-1", "PAY-1", Decimal("12.34"), "EUR"),
        ("p3", ten_utc, Decimal("12.34"), "8800000000000001", "8800000000000001", Decimal("1234.00"), "JPY"),
    ]
    assert json.loads(ok.where("event_id = 'p1'").first()["provider_payload"]) == STRIPE
    assert sorted((r["_raw"], r["_parse_error"]) for r in bad.collect()) == [
        ('"just a string"', "malformed JSON: payload is not an object"),
        ('{"event_id": "x"', "malformed JSON: payload does not parse"),
    ]


def test_shipments_dedupe_keeps_first_delivery(spark):
    def ship(event_id: str, kind: str) -> dict:
        return {"event_id": event_id, "event_type": kind, "schema_version": 1, "event_time": EVENT_TIME,
                "shipment_id": "SHP-1", "order_id": "ORD-00000001", "carrier": "DHL", "service_level": "express",
                "tracking_number": "TRK1", "region": "EU", "destination_country": "DE", "weight_grams": 250}

    ok, _ = split_parse_errors(parse_shipment_events(bronze(spark, "shipments", [
        ship("s1", "shipped"), ship("s2", "delivered"), ship("s1", "shipped")])))
    rows = sorted((r["event_id"], r["event_type"], r["source_offset"], r["weight_grams"], r["event_time"])
                  for r in dedupe_events(ok).collect())
    assert rows == [("s1", "shipped", 0, 250, dt.datetime(2026, 11, 2, 10, 0)),
                    ("s2", "delivered", 1, 250, dt.datetime(2026, 11, 2, 10, 0))]


def test_inventory_events_signed_quantity(spark):
    def inv(event_id: str, kind: str, qty: int) -> dict:
        return {"event_id": event_id, "event_type": kind, "schema_version": 1, "event_time": EVENT_TIME,
                "reservation_id": "RES-1", "order_id": "ORD-00000001", "sku": "SKU-00001",
                "warehouse_id": "WH-EU-1", "region": "EU", "quantity": qty, "reason": "order_placed"}

    ok, _ = split_parse_errors(parse_inventory_events(bronze(spark, "inventory", [
        inv("i1", "inventory_locked", 3), inv("i2", "inventory_released", 2)])))
    rows = sorted((r["event_id"], r["warehouse_id"], r["quantity"], r["signed_quantity"]) for r in ok.collect())
    assert rows == [("i1", "WH-EU-1", 3, 3), ("i2", "WH-EU-1", 2, -2)]


def test_clickstream_typed_and_nullable_fields(spark):
    base = {"event_type": "page_view", "schema_version": 1, "event_time": "2026-11-02T10:00:00Z",
            "session_id": "S-1", "customer_id": None, "channel": "web", "region": "EU", "page_url": "/"}
    cart = {**base, "event_id": "c2", "event_type": "add_to_cart", "customer_id": "CUST-000001",
            "page_url": "/p/SKU-00001", "sku": "SKU-00001", "quantity": 1, "price": 19.99, "currency": "EUR"}
    ok, bad = split_parse_errors(parse_clickstream_events(bronze(spark, "clickstream", [
        {**base, "event_id": "c1"}, cart, b""])))
    rows = sorted((r["event_id"], r["customer_id"], r["sku"], r["quantity"], r["price"]) for r in ok.collect())
    assert rows == [("c1", None, None, None, None), ("c2", "CUST-000001", "SKU-00001", 1, Decimal("19.99"))]
    assert [r["_parse_error"] for r in bad.collect()] == ["malformed JSON: payload does not parse"]


def test_to_reporting_currency_uses_rate_valid_at_event_time(spark):
    fx = spark.createDataFrame(
        [("USD", Decimal("0.90000000"), dt.datetime(2026, 11, 1)),
         ("USD", Decimal("0.80000000"), dt.datetime(2026, 11, 2, 12)),
         ("GBP", Decimal("1.20000000"), dt.datetime(2026, 11, 1))],
        "currency string, rate_to_eur decimal(18,8), valid_from timestamp")
    rows = spark.createDataFrame(
        [("a", Decimal("10.00"), "USD", dt.datetime(2026, 11, 2, 11)),   # before the 12:00 change: 0.9
         ("b", Decimal("10.00"), "USD", dt.datetime(2026, 11, 2, 12)),   # at the change: 0.8
         ("c", Decimal("10.00"), "EUR", dt.datetime(2026, 11, 2, 12)),
         ("d", Decimal("10.00"), "USD", dt.datetime(2026, 10, 31)),      # before the first version: 0.9
         ("e", Decimal("10.00"), "CHF", dt.datetime(2026, 11, 2))],      # no CHF rate at all
        "id string, amount decimal(18,2), currency string, ts timestamp")
    eur = to_reporting_currency(rows, fx, "amount", "currency", "ts")
    assert sorted((r["id"], r["amount_eur"]) for r in eur.collect()) == [
        ("a", Decimal("9.00")), ("b", Decimal("8.00")), ("c", Decimal("10.00")), ("d", Decimal("9.00")),
        ("e", None)]
    gbp = to_reporting_currency(rows.where("id in ('a', 'c')"), fx, "amount", "currency", "ts", reporting="GBP")
    assert sorted((r["id"], r["amount_gbp"]) for r in gbp.collect()) == [
        ("a", Decimal("7.50")), ("c", Decimal("8.33"))]


def test_tokenize_pii_is_deterministic_and_splits_raw_values(spark):
    df = spark.createDataFrame([("CUST-1", "a@x.io", "Main St 1"), ("CUST-2", "a@x.io", None)],
                               "customer_id string, email string, address string")
    tokenized, restricted = tokenize_pii(df, ["email", "address"], salt="s1")

    def tok(value: str) -> str:
        return hashlib.sha256(f"s1{value}".encode()).hexdigest()

    assert sorted(tuple(r) for r in tokenized.collect()) == [
        ("CUST-1", tok("a@x.io"), tok("Main St 1")), ("CUST-2", tok("a@x.io"), None)]
    assert sorted(tuple(r) for r in restricted.collect()) == [
        ("address", tok("Main St 1"), "Main St 1"), ("email", tok("a@x.io"), "a@x.io")]


def test_parse_settlements_from_csv_and_json_lines(spark):
    lines = [
        {"processor": "stripe", "settlement_id": "STL-1", "payment_id": "PAY-1", "order_id": "ORD-00000001",
         "amount": "12.34", "currency": "eur", "fee": "0.42", "settled_at": "2026-11-03T06:00:00Z"},
        {"processor": "adyen", "settlement_id": "STL-2", "payment_id": "PAY-2", "order_id": "ORD-00000002",
         "amount": 5.5, "currency": "USD", "fee": 0.33, "settled_at": "2026-11-03T06:00:01Z"},
        {"processor": "adyen", "settlement_id": "STL-2", "payment_id": "PAY-3", "order_id": "ORD-00000003",
         "amount": "n/a", "currency": "USD", "fee": 0.33, "settled_at": "2026-11-03T06:00:02Z"},
    ]
    bronze_rows = spark.createDataFrame([("k", i + 1, json.dumps(r)) for i, r in enumerate(lines)],
                                        "object_key string, line_number int, record_json string")
    rows = parse_settlements(bronze_rows).orderBy("line_number").select(
        "order_id", "amount", "currency", "fee", F.date_format("settled_at", "HH:mm:ss").alias("t"),
        "_parse_error").collect()
    assert [tuple(r) for r in rows] == [
        ("ORD-00000001", Decimal("12.34"), "EUR", Decimal("0.42"), "06:00:00", None),
        ("ORD-00000002", Decimal("5.50"), "USD", Decimal("0.33"), "06:00:01", None),
        ("ORD-00000003", None, "USD", Decimal("0.33"), "06:00:02", "unparseable amount"),
    ]
