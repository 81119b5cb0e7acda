"""Gold inventory positions, oversell alerts, customer 360, payment reconciliation, fraud signals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from transformations.gold.customers import customer_360
from transformations.gold.fraud import fraud_signals
from transformations.gold.inventory import inventory_positions, oversell_alerts, with_order_channel
from transformations.gold.payments import payment_reconciliation

D = Decimal
T0 = dt.datetime(2026, 11, 2, 10, 0)
ORDERS = ("event_type string, event_time timestamp, order_id string, customer_id string, channel string, "
          "region string, currency string, total_amount decimal(18,2)")
PAYMENTS = "event_type string, event_time timestamp, order_id string, amount decimal(18,2), currency string"
SETTLEMENTS = "order_id string, amount decimal(18,2), currency string"
FX = "currency string, rate_to_eur decimal(18,8), valid_from timestamp"
CLICKS = "event_time timestamp, customer_id string, channel string"


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def order(oid: int, cust: int = 1, minutes: int = 0, channel: str = "web", amount: str = "10.00",
          currency: str = "EUR", region: str = "EU", kind: str = "order_placed") -> tuple:
    return (kind, at(minutes), f"ORD-{oid:08d}", f"CUST-{cust:06d}", channel, region, currency, D(amount))


def pay(oid: int, kind: str, amount: str, minutes: int = 1, currency: str = "EUR") -> tuple:
    return (kind, at(minutes), f"ORD-{oid:08d}", D(amount), currency)


# --- inventory --------------------------------------------------------------------------------------------------


def positions_for(spark, on_hand: list, locks: list, sold: list):
    return inventory_positions(
        spark.createDataFrame(on_hand, "sku string, warehouse_id string, on_hand int"),
        spark.createDataFrame(locks, "sku string, warehouse_id string, channel string, event_type string, quantity int"),
        spark.createDataFrame(sold, "sku string, warehouse_id string, channel string, quantity int"),
    )


def test_inventory_positions_per_channel_with_shared_available(spark):
    positions = positions_for(
        spark,
        [("SKU-1", "WH-1", 10), ("SKU-2", "WH-1", 4)],
        [("SKU-1", "WH-1", "web", "inventory_locked", 3), ("SKU-1", "WH-1", "web", "inventory_released", 1),
         ("SKU-1", "WH-1", "amazon", "inventory_locked", 2)],
        [("SKU-1", "WH-1", "web", 1), ("SKU-1", "WH-1", "ebay", 1)],
    )
    rows = sorted(tuple(r) for r in positions.fillna("-", ["channel"]).collect())
    assert rows == [
        ("SKU-1", "WH-1", "amazon", 10, 2, 0, 4),
        ("SKU-1", "WH-1", "ebay", 10, 0, 1, 4),
        ("SKU-1", "WH-1", "web", 10, 2, 1, 4),  # 10 - (2 + 2) locked - (1 + 1) sold
        ("SKU-2", "WH-1", "-", 4, 0, 0, 4),
    ]


def test_two_channels_sell_the_last_unit_raise_exactly_one_alert(spark):
    positions = positions_for(spark, [("SKU-1", "WH-1", 1), ("SKU-2", "WH-1", 5)], [],
                              [("SKU-1", "WH-1", "web", 1), ("SKU-1", "WH-1", "amazon", 1)])
    no_orders = spark.createDataFrame([], "order_id string, sku string, warehouse_id string, quantity int")
    alerts = [tuple(r) for r in oversell_alerts(positions, no_orders).collect()]
    assert alerts == [("SKU-1", "WH-1", -1, ["amazon", "web"], [], "negative_available")]


def test_oversell_alert_when_an_open_order_exceeds_available(spark):
    positions = positions_for(spark, [("SKU-2", "WH-1", 5)], [("SKU-2", "WH-1", "web", "inventory_locked", 3)], [])
    orders = spark.createDataFrame(
        [("ORD-1", "SKU-2", "WH-1", 3), ("ORD-2", "SKU-2", "WH-1", 2), ("ORD-3", "SKU-2", "WH-1", 1),
         ("ORD-3", "SKU-2", "WH-1", 2)],  # two lines of one order: 3 > 2
        "order_id string, sku string, warehouse_id string, quantity int")
    alerts = [tuple(r) for r in oversell_alerts(positions, orders).collect()]
    assert alerts == [("SKU-2", "WH-1", 2, ["web"], ["ORD-1", "ORD-3"], "order_exceeds_available")]


def test_with_order_channel_attaches_the_orders_channel(spark):
    events = spark.createDataFrame([("ORD-00000001", "SKU-1", 2), ("ORD-00000009", "SKU-1", 1)],
                                   "order_id string, sku string, quantity int")
    orders = spark.createDataFrame([order(1, channel="amazon")], ORDERS)
    rows = sorted(tuple(r) for r in with_order_channel(events, orders).fillna("-", ["channel"]).collect())
    assert rows == [("ORD-00000001", "SKU-1", 2, "amazon"), ("ORD-00000009", "SKU-1", 1, "-")]


# --- customer 360 -----------------------------------------------------------------------------------------------


def test_customer_360_revenue_ltv_channels_last_activity(spark):
    orders = spark.createDataFrame([
        order(1, 1, 0, "web", "10.00"),
        order(2, 1, 30, "amazon", "20.00", currency="USD"),       # 20 USD at 0.9 -> 18.00 EUR
        order(3, 1, 40, "web", "99.00"), order(3, 1, 50, "web", "99.00", kind="order_cancelled"),
        order(4, 2, 5, "store", "5.00"),
    ], ORDERS)
    payments = spark.createDataFrame([pay(1, "captured", "10.00"), pay(1, "refunded", "4.00", minutes=90)],
                                     PAYMENTS)
    clicks = spark.createDataFrame([(at(120), "CUST-000001", "mobile_app"), (at(1), None, "web")], CLICKS)
    fx = spark.createDataFrame([("USD", D("0.9"), dt.datetime(2026, 1, 1))], FX)
    rows = [tuple(r) for r in customer_360(orders, payments, clicks, fx).collect()]
    assert rows == [
        ("CUST-000001", 2, 1, D("28.00"), D("4.00"), D("24.00"), "EUR", ["amazon", "mobile_app", "web"],
         at(0), at(40), at(120)),
        ("CUST-000002", 1, 0, D("5.00"), D("0.00"), D("5.00"), "EUR", ["store"], at(5), at(5), at(5)),
    ]


# --- payment reconciliation -------------------------------------------------------------------------------------


def test_payment_reconciliation_categories(spark):
    orders = spark.createDataFrame(
        [order(i, amount="10.00") for i in range(1, 8)] + [order(8, amount="10.00", currency="USD")], ORDERS)
    payments = spark.createDataFrame([
        pay(1, "authorized", "10.00"), pay(1, "captured", "10.00"),                        # ok
        pay(2, "authorized", "10.00"),                                                     # not_captured
        pay(3, "authorized", "10.00"), pay(3, "captured", "12.00"),                        # over_captured
        pay(4, "authorized", "10.00"), pay(4, "captured", "10.00"), pay(4, "refunded", "11.00"),
        pay(5, "authorized", "10.00"), pay(5, "captured", "10.00"),                        # unsettled
        pay(6, "authorized", "10.00"), pay(6, "captured", "10.00"),                        # settled 9.00
        pay(7, "authorized", "10.00"), pay(7, "captured", "10.00"), pay(7, "chargeback", "10.00"),
        pay(8, "authorized", "10.00", currency="USD"), pay(8, "captured", "10.00", currency="USD"),
    ], PAYMENTS)
    settlements = spark.createDataFrame(
        [(f"ORD-{i:08d}", D("10.00"), "EUR") for i in (1, 3, 4, 7)]
        + [("ORD-00000003", D("2.00"), "EUR"), ("ORD-00000006", D("9.00"), "EUR"), ("ORD-00000008", D("10.00"), "EUR")],
        SETTLEMENTS)
    rows = [(r["order_id"][-1], r["expected"], r["captured"], r["refunded"], r["settled"], r["mismatches"],
             r["status"]) for r in payment_reconciliation(orders, payments, settlements).collect()]
    assert rows == [
        ("1", D("10.00"), D("10.00"), D("0.00"), D("10.00"), [], "ok"),
        ("2", D("10.00"), D("0.00"), D("0.00"), None, ["not_captured"], "mismatch"),
        ("3", D("10.00"), D("12.00"), D("0.00"), D("12.00"), ["over_captured"], "mismatch"),
        ("4", D("10.00"), D("10.00"), D("11.00"), D("10.00"), ["refund_exceeds_capture"], "mismatch"),
        ("5", D("10.00"), D("10.00"), D("0.00"), None, ["unsettled"], "mismatch"),
        ("6", D("10.00"), D("10.00"), D("0.00"), D("9.00"), ["settlement_amount_mismatch"], "mismatch"),
        ("7", D("10.00"), D("10.00"), D("0.00"), D("10.00"), ["chargeback"], "mismatch"),
        ("8", D("10.00"), D("10.00"), D("0.00"), D("10.00"), ["settlement_amount_mismatch"], "mismatch"),
    ]


# --- fraud signals ----------------------------------------------------------------------------------------------


def test_fraud_signals_velocity_outlier_mismatch_chargeback_score(spark):
    orders = spark.createDataFrame([
        order(1, 1, 0), order(2, 1, 20), order(3, 1, 59),             # 3 orders within one hour
        order(4, 1, 121),                                             # 62 min after order 3: velocity 1
        order(5, 2, 0, "ebay", "10.00"), order(6, 3, 0, "ebay", "10.00"), order(7, 4, 0, "ebay", "10.00"),
        order(8, 5, 0, "ebay", "90.00"),                              # z = 60 / sqrt(1200) = 1.7321
        order(9, 6, 0, "store", "10.00", currency="USD", region="EU"),
    ], ORDERS)
    payments = spark.createDataFrame([pay(1, "chargeback", "10.00", minutes=100)], PAYMENTS)
    rows = [(r["order_id"][-1], r["orders_last_hour"], r["amount_zscore"], r["currency_mismatch"],
             r["prior_chargebacks"], r["fraud_score"])
            for r in fraud_signals(orders, payments, velocity_threshold=3, z_threshold=1.5).collect()]
    assert rows == [
        ("1", 1, 0.0, False, 0, 0),
        ("2", 2, 0.0, False, 0, 0),
        ("3", 3, 0.0, False, 0, 30),
        ("4", 1, 0.0, False, 1, 20),
        ("5", 1, -0.5774, False, 0, 0),
        ("6", 1, -0.5774, False, 0, 0),
        ("7", 1, -0.5774, False, 0, 0),
        ("8", 1, 1.7321, False, 0, 30),
        ("9", 1, 0.0, True, 0, 20),
    ]


def test_positions_count_activity_of_orders_with_unknown_channel_once(spark):
    from transformations.gold.inventory import inventory_positions

    on_hand = spark.createDataFrame([("S1", "WH-EU-1", 10)], "sku string, warehouse_id string, on_hand int")
    locks = spark.createDataFrame([("S1", "WH-EU-1", None, "inventory_locked", 3)],
                                  "sku string, warehouse_id string, channel string, event_type string, quantity int")
    sold = spark.createDataFrame([("S1", "WH-EU-1", None, 2)],
                                 "sku string, warehouse_id string, channel string, quantity int")
    rows = [tuple(r) for r in inventory_positions(on_hand, locks, sold).collect()]
    assert rows == [("S1", "WH-EU-1", "unknown", 10, 3, 2, 5)]
