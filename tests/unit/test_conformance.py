"""Silver conformance (schema, lateness, catalogue), gold sales by region and stock mapping, and the ops rows
of a gate run, on tiny DataFrames with exact expected rows."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from lakehouse.quality.gate import GateResult
from lakehouse.quality.ops import outcome, validation_row
from transformations.gold.inventory import on_hand_by_code, sold_from_reservations
from transformations.gold.sales import sales_by_region
from transformations.silver.conformance import (
    next_watermarks,
    with_catalogue_check,
    with_lateness,
    with_schema_violation,
    with_sku_check,
)

T0 = dt.datetime(2024, 3, 1, 12, 0)
WM = "source_topic string, source_partition int, max_event_time timestamp"


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


ORDER = {"event_id": "e", "event_type": "order_placed", "schema_version": 1, "event_time": "2024-03-01T12:00:00Z",
         "order_id": "ORD-00000001", "customer_id": "CUST-000001", "channel": "web", "region": "EU",
         "currency": "EUR", "lines": [{"sku": "SKU-00001", "quantity": 1, "unit_price": 5.0}], "total_amount": 5.0}


def test_schema_violation_names_missing_fields_and_wrong_types_per_declared_version(spark):
    v2 = {**ORDER, "schema_version": 2, "shipping_amount": 0.0, "tax_amount": 0.95}
    payloads = [
        ORDER,
        {k: v for k, v in ORDER.items() if k != "customer_id"},
        {**ORDER, "total_amount": "5.00", "lines": "SKU-00001"},
        {**ORDER, "schema_version": 2},  # v2 requires the amounts breakdown
        v2,
        {**ORDER, "event_time": 1709294400000},
    ]
    df = spark.createDataFrame([(i, json.dumps(p)) for i, p in enumerate(payloads)] + [(9, "{broken")],
                               "n int, _raw string")
    rows = [r.schema_violation for r in with_schema_violation(df, "_raw", "orders").orderBy("n").collect()]
    assert rows == [
        None,
        "missing required field 'customer_id'",
        "wrong type for 'lines': string (expected array); wrong type for 'total_amount': string (expected number|integer)",
        "missing required field 'shipping_amount'; missing required field 'tax_amount'",
        None,
        "wrong type for 'event_time': integer (expected string)",
        None,  # not JSON at all: a parse error, not a schema violation
    ]


def test_lateness_uses_the_partition_watermark_across_batches_and_ignores_untrusted_times(spark):
    schema = "source_topic string, source_partition int, source_offset long, event_time timestamp, " \
             "schema_violation string"
    events = spark.createDataFrame([
        ("o", 0, 10, minutes(100), None),
        ("o", 0, 11, minutes(50), None),  # 50 min behind offset 10: late
        ("o", 0, 12, minutes(80), None),  # 20 min behind: within the allowed 30
        ("o", 0, 13, minutes(900), "wrong type for 'event_time': integer (expected string)"),
        ("o", 0, 14, minutes(95), None),  # the untrusted 900 did not move the watermark
        ("o", 1, 5, minutes(10), None),  # partition 1: behind the watermark left by an earlier batch
        ("o", 2, 0, minutes(0), None),  # first event of a partition never seen: not late
    ], schema)
    prior = spark.createDataFrame([("o", 1, minutes(60))], WM)
    flagged = with_lateness(events, prior, late_after_s=30 * 60)
    rows = [(r.source_partition, r.source_offset, r.is_late) for r in flagged.orderBy("source_partition",
                                                                                      "source_offset").collect()]
    assert rows == [(0, 10, False), (0, 11, True), (0, 12, False), (0, 13, False), (0, 14, False), (1, 5, True),
                    (2, 0, False)]
    marks = sorted(tuple(r) for r in next_watermarks(events, prior).collect())
    assert marks == [("o", 0, minutes(100)), ("o", 1, minutes(60)), ("o", 2, minutes(0))]


def test_catalogue_check_names_the_first_unknown_sku_of_a_row(spark):
    orders = spark.createDataFrame([
        ("o", 0, 1, [("SKU-00001",), ("SKU-90001",), ("SKU-90000",)]),
        ("o", 0, 2, [("SKU-00002",)]),
        ("o", 0, 3, None),
    ], "source_topic string, source_partition int, source_offset long, lines array<struct<sku:string>>")
    catalogue = spark.createDataFrame([("SKU-00001",), ("SKU-00002",)], "sku string")
    rows = [(r.source_offset, r.unknown_sku) for r in with_catalogue_check(orders, catalogue).orderBy(
        "source_offset").collect()]
    assert rows == [(1, "SKU-90000"), (2, None), (3, None)]


def test_sku_check_of_one_sku_rows_agrees_with_the_catalogue_check(spark):
    events = spark.createDataFrame([("o", 0, 1, "SKU-00001"), ("o", 0, 2, "SKU-90001"), ("o", 0, 3, None)],
                                   "source_topic string, source_partition int, source_offset long, sku string")
    catalogue = spark.createDataFrame([("SKU-00001",), ("SKU-00002",)], "sku string")
    single = [(r.source_offset, r.unknown_sku) for r in with_sku_check(events, catalogue).orderBy(
        "source_offset").collect()]
    generic = [(r.source_offset, r.unknown_sku) for r in with_catalogue_check(events, catalogue).orderBy(
        "source_offset").collect()]
    assert single == generic == [(1, None), (2, "SKU-90001"), (3, None)]
    assert with_sku_check(events, catalogue).columns == [*events.columns, "unknown_sku"]


def test_sales_by_region_counts_placed_orders_in_order_and_reporting_currency(spark):
    cols = "event_type string, event_time timestamp, order_id string, channel string, region string, " \
           "currency string, units int, total_amount decimal(18,2), total_amount_eur decimal(18,2)"
    orders = spark.createDataFrame([
        ("order_placed", T0, "O1", "web", "EU", "GBP", 2, Decimal("10.00"), Decimal("11.50")),
        ("order_placed", T0, "O2", "web", "EU", "GBP", 1, Decimal("5.00"), Decimal("5.75")),
        ("order_updated", T0, "O2", "web", "EU", "GBP", 1, Decimal("4.00"), Decimal("4.60")),
        ("order_placed", T0, "O3", "amazon", "NA", "USD", 3, Decimal("30.00"), Decimal("27.00")),
    ], cols)
    rows = [tuple(r) for r in sales_by_region(orders).collect()]
    day = T0.date()
    assert rows == [
        (day, "amazon", "NA", "USD", 1, 3, Decimal("30.00"), Decimal("27.00"), "EUR"),
        (day, "web", "EU", "GBP", 2, 3, Decimal("15.00"), Decimal("17.25"), "EUR"),
    ]


def test_stock_by_warehouse_code_and_sales_from_fulfilled_reservations(spark):
    inventory = spark.createDataFrame([("S1", 1, 7), ("S1", 9, 3)], "sku string, warehouse_id int, on_hand int")
    warehouses = spark.createDataFrame([(1, "WH-EU-1"), (2, "WH-EU-2")], "warehouse_id int, code string")
    assert [tuple(r) for r in on_hand_by_code(inventory, warehouses).collect()] == [("S1", "WH-EU-1", 7)]
    events = spark.createDataFrame([
        ("S1", "WH-EU-1", "web", "inventory_locked", "order_placed", 2),
        ("S1", "WH-EU-1", "web", "inventory_released", "fulfilled", 2),
        ("S1", "WH-EU-1", "web", "inventory_released", "expired", 1),
    ], "sku string, warehouse_id string, channel string, event_type string, reason string, quantity int")
    assert [tuple(r) for r in sold_from_reservations(events).collect()] == [("S1", "WH-EU-1", "web", 2)]


def _gate(spark, results: list[dict], blocked: bool = False) -> GateResult:
    empty = spark.createDataFrame([], "a int")
    return GateResult(valid=empty, quarantined=empty, blocked=blocked, block_reasons=[], results=results,
                      suite="silver.x", fingerprint="f", seconds=1.25, input_seconds=0.5)


def test_one_validation_row_sums_up_a_gate_run(spark):
    at = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    base = {"run_id": "r1", "table_name": "silver.x", "table_version": 4, "validated_at": at}
    results = [
        {**base, "expectation": "a", "severity": "quarantine", "success": False, "element_count": 10},
        {**base, "expectation": "b", "severity": "warn", "success": False, "element_count": 10},
        {**base, "expectation": "c", "severity": "block", "success": True, "element_count": None},
    ]
    row = validation_row(_gate(spark, results), "docs/index.html")
    assert row == {"run_id": "r1", "table_name": "silver.x", "table_version": 4, "suite": "silver.x",
                   "outcome": "quarantined", "expectations": 3, "failed_expectations": 2, "failed": ["a", "b"],
                   "rows": 10, "gate_seconds": 1.25, "input_seconds": 0.5, "data_docs": "docs/index.html", "validated_at": at}
    assert outcome(_gate(spark, results[1:])) == "warned"
    assert outcome(_gate(spark, results[2:])) == "passed"
    assert outcome(_gate(spark, results, blocked=True)) == "blocked"
