"""A small hand-made set of the gold and silver tables the dbt project reads (tests of the marts and of the SQL
endpoint). Four orders: O1 (c1, web, EU, EUR, 2 x P1 shoes @10 + 1 x P2 bags @5, returned on 03-05), O2 (c2, web, EU,
EUR, 1 x P1, cancelled next day), O3 (c1, amazon, NA, USD at 0.9, 4 x P2 @2.50), O4 (c1, web, EU, 1 x P1 on
04-01)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D

T = dt.datetime
LINE = "struct<sku:string,quantity:int,unit_price:decimal(18,2),discount:decimal(18,2)>"
SCHEMAS = {
    "silver.orders_events": (
        f"event_id string, event_type string, event_time timestamp, order_id string, customer_id string, "
        f"channel string, region string, currency string, lines array<{LINE}>, total_amount decimal(18,2), "
        f"units int, fx_rate decimal(18,8), total_amount_eur decimal(18,2), ingested_at timestamp"),
    "silver.payments_events": (
        "event_id string, event_type string, event_time timestamp, payment_id string, order_id string, "
        "provider string, amount decimal(18,2), currency string, ingested_at timestamp"),
    "silver.shipments_events": (
        "event_id string, event_type string, event_time timestamp, shipment_id string, order_id string, "
        "carrier string, return_reason string, ingested_at timestamp"),
    "silver.inventory_events": (
        "event_id string, event_type string, event_time timestamp, order_id string, sku string, "
        "warehouse_id string, quantity int, ingested_at timestamp"),
    "silver.settlements": (
        "processor string, settlement_id string, payment_id string, order_id string, amount decimal(18,2), "
        "currency string, fee decimal(18,2), settled_at timestamp"),
    "silver.products": "sku string, title string, category string, active boolean",
    "gold.sales": (
        "order_date date, channel string, region string, currency string, orders bigint, units bigint, "
        "revenue decimal(18,2), revenue_reporting decimal(18,2), reporting_currency string"),
    "gold.inventory_positions": (
        "sku string, warehouse_id string, channel string, on_hand bigint, locked bigint, sold bigint, "
        "available_to_sell bigint"),
    "gold.oversell_alerts": (
        "sku string, warehouse_id string, available_to_sell bigint, channels array<string>, "
        "orders_exceeding array<string>, reason string"),
    "gold.customer_360": (
        "customer_id string, orders bigint, cancelled_orders bigint, revenue decimal(18,2), refunds decimal(18,2), "
        "lifetime_value decimal(18,2), reporting_currency string, channels_used array<string>, "
        "first_order_at timestamp, last_order_at timestamp, last_activity_at timestamp"),
    "gold.payment_reconciliation": (
        "order_id string, currency string, expected decimal(18,2), authorized decimal(18,2), "
        "captured decimal(18,2), refunded decimal(18,2), chargeback decimal(18,2), settled decimal(18,2), "
        "mismatches array<string>, status string"),
    "gold.fraud_signals": (
        "order_id string, customer_id string, event_time timestamp, channel string, currency string, "
        "total_amount decimal(18,2), velocity_flag boolean, amount_outlier boolean, currency_mismatch boolean, "
        "chargeback_history boolean, fraud_score int, anomaly_score double"),
    "gold.demand_forecast": (
        "sku string, channel string, warehouse_id string, origin_date date, forecast_date date, horizon int, "
        "forecast double, p10 double, p50 double, p90 double, model_name string, model_version string, "
        "scored_at timestamp"),
}
NEWEST = T(2026, 4, 1, 8, 0)  # the newest order


def order_line(sku: str, quantity: int, price: str) -> tuple:
    """One line of an order event (no discount)."""
    return (sku, quantity, D(price), None)


def order_event(n: int, kind: str, at: T, order: str, customer: str, channel: str, region: str, currency: str,
                lines: list[tuple], fx: str) -> tuple:
    """A silver order event: totals from its lines, the reporting amount at `fx`, ingested a minute later."""
    total = sum(q * p for _, q, p, _ in lines)
    return (f"E{n}", kind, at, order, customer, channel, region, currency, lines, total,
            sum(q for _, q, _, _ in lines), D(fx), (total * D(fx)).quantize(D("0.01")), at + dt.timedelta(minutes=1))


def source_rows() -> dict[str, list[tuple]]:
    o1 = [order_line("P1", 2, "10.00"), order_line("P2", 1, "5.00")]
    o2, o3, o4 = [order_line("P1", 1, "10.00")], [order_line("P2", 4, "2.50")], [order_line("P1", 1, "10.00")]
    d2, d9 = T(2026, 3, 2), T(2026, 3, 9)
    return {
        "silver.orders_events": [
            order_event(1, "order_placed", d2.replace(hour=10), "O1", "c1", "web", "EU", "EUR", o1, "1"),
            order_event(2, "order_placed", d2.replace(hour=11), "O2", "c2", "web", "EU", "EUR", o2, "1"),
            order_event(3, "order_cancelled", T(2026, 3, 3, 9), "O2", "c2", "web", "EU", "EUR", o2, "1"),
            order_event(4, "order_placed", d9.replace(hour=12), "O3", "c1", "amazon", "NA", "USD", o3, "0.9"),
            order_event(5, "order_placed", NEWEST, "O4", "c1", "web", "EU", "EUR", o4, "1"),
        ],
        "silver.payments_events": [
            ("PE1", "authorized", d2.replace(hour=10, minute=1), "PAY1", "O1", "stripe", D("25.00"), "EUR", NEWEST),
            ("PE2", "captured", d2.replace(hour=10, minute=2), "PAY1", "O1", "stripe", D("25.00"), "EUR", NEWEST),
            ("PE3", "authorized", d2.replace(hour=11, minute=1), "PAY2", "O2", "paypal", D("10.00"), "EUR", NEWEST),
            ("PE4", "captured", d2.replace(hour=11, minute=2), "PAY2", "O2", "paypal", D("10.00"), "EUR", NEWEST),
            ("PE5", "captured", d9.replace(hour=12, minute=5), "PAY3", "O3", "adyen", D("10.00"), "USD", NEWEST),
        ],
        "silver.shipments_events": [
            ("SE1", "shipped", T(2026, 3, 3, 8), "SH1", "O1", "dhl", None, NEWEST),
            ("SE2", "returned", T(2026, 3, 5, 15), "SH1", "O1", "dhl", "damaged", NEWEST),
        ],
        "silver.inventory_events": [
            ("IE1", "inventory_locked", d2.replace(hour=10), "O1", "P1", "W1", 2, NEWEST),
            ("IE2", "inventory_locked", d2.replace(hour=10), "O1", "P2", "W2", 1, NEWEST),
            ("IE3", "inventory_released", T(2026, 3, 3, 9), "O2", "P1", "W1", 1, NEWEST),
            ("IE4", "inventory_locked", d9.replace(hour=12), "O3", "P2", "W2", 4, NEWEST),
        ],
        "silver.settlements": [
            ("stripe", "ST1", "PAY1", "O1", D("25.00"), "EUR", D("0.50"), T(2026, 3, 4, 10, 2)),
            ("adyen", "ST2", "PAY3", "O3", D("9.50"), "USD", D("0.20"), T(2026, 3, 10, 0, 5)),
        ],
        "silver.products": [("P1", "Runner", "shoes", True), ("P2", "Tote", "bags", True)],
        "gold.sales": [
            (d2.date(), "web", "EU", "EUR", 2, 4, D("35.00"), D("35.00"), "EUR"),
            (d9.date(), "amazon", "NA", "USD", 1, 4, D("10.00"), D("9.00"), "EUR"),
            (NEWEST.date(), "web", "EU", "EUR", 1, 1, D("10.00"), D("10.00"), "EUR"),
        ],
        "gold.inventory_positions": [
            ("P1", "W1", "web", 10, 2, 1, 6), ("P1", "W1", "amazon", 10, 1, 0, 6),
            ("P2", "W1", None, 0, 0, 0, 0), ("P2", "W2", "web", 100, 0, 0, 100),
        ],
        "gold.oversell_alerts": [
            ("P2", "W1", -1, ["amazon", "web"], ["O5"], "negative_available"),
            ("P1", "W2", 0, [], ["O6", "O7"], "order_exceeds_available"),
        ],
        "gold.customer_360": [
            ("c1", 3, 0, D("44.00"), D("0"), D("44.00"), "EUR", ["amazon", "web"], d2.replace(hour=10), NEWEST,
             NEWEST),
            ("c2", 0, 1, D("0"), D("0"), D("0"), "EUR", ["web"], d2.replace(hour=11), d2.replace(hour=11),
             T(2026, 3, 3, 9)),
            ("c3", 1, 0, D("5.00"), D("0"), D("5.00"), "EUR", ["web"], T(2026, 3, 20, 9), T(2026, 3, 20, 9),
             T(2026, 3, 20, 9)),
        ],
        "gold.payment_reconciliation": [
            ("O1", "EUR", D("25"), D("25"), D("25"), D("0"), D("0"), D("25"), [], "ok"),
            ("O2", "EUR", D("0"), D("10"), D("10"), D("0"), D("0"), None, ["over_captured", "unsettled"],
             "mismatch"),
            ("O3", "USD", D("10"), D("0"), D("10"), D("0"), D("0"), D("9.50"), ["settlement_amount_mismatch"],
             "mismatch"),
        ],
        "gold.fraud_signals": [
            ("O1", "c1", d2.replace(hour=10), "web", "EUR", D("25"), False, False, False, False, 0, 0.1),
            ("O2", "c2", d2.replace(hour=11), "web", "EUR", D("10"), True, True, False, False, 2, 0.9),
            ("O3", "c1", d9.replace(hour=12), "amazon", "USD", D("10"), False, False, True, False, 1, 0.7),
        ],
        "gold.demand_forecast": [  # origin 03-09; only horizons 1-7 count in the 7-day forecast
            ("P1", "web", "W1", dt.date(2026, 3, 9), dt.date(2026, 3, 10), 1, 30.0, 20.0, 29.0, 40.0, "demand_sku", "2",
             NEWEST),
            ("P1", "web", "W1", dt.date(2026, 3, 9), dt.date(2026, 3, 12), 3, 10.0, 8.0, 10.0, 12.0, "demand_sku", "2",
             NEWEST),
            ("P2", "web", "W2", dt.date(2026, 3, 9), dt.date(2026, 3, 11), 2, 20.0, 15.0, 20.0, 25.0, "demand_sku", "2",
             NEWEST),
            ("P2", "amazon", "W2", dt.date(2026, 3, 9), dt.date(2026, 3, 16), 7, 2.0, 1.0, 2.0, 3.0, "demand_sku",
             "2", NEWEST),
            ("P2", "web", "W2", dt.date(2026, 3, 9), dt.date(2026, 3, 17), 8, 500.0, 400.0, 500.0, 600.0,
             "demand_sku", "2", NEWEST),
        ],
    }


def write_sources(spark, fresh: bool = False) -> dict[str, str]:
    """The tables above in two new private databases; returns dbt's vars. `fresh`: each table's timestamps are
    moved so that its newest one is 5 minutes old."""
    tag = uuid.uuid4().hex[:8]
    databases = {"gold": f"dbt_gold_{tag}", "silver": f"dbt_silver_{tag}"}
    for name in databases.values():
        spark.sql(f"CREATE DATABASE {name}")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for name, rows in source_rows().items():
        layer, table = name.split(".")
        if fresh and any(isinstance(v, T) for row in rows for v in row):
            shift = now - dt.timedelta(minutes=5) - max(v for row in rows for v in row if isinstance(v, T))
            rows = [tuple(v + shift if isinstance(v, T) else v for v in row) for row in rows]
        spark.createDataFrame(rows, SCHEMAS[name]).write.format("delta").saveAsTable(f"{databases[layer]}.{table}")
    return {"gold_schema": databases["gold"], "silver_schema": databases["silver"]}
