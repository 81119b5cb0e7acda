"""The keys silver changes touch in the per-key gold tables, and the silver rows those keys are recomputed from."""

from __future__ import annotations

import datetime as dt

from transformations.gold.keyed import (
    customer_inputs,
    customer_keys,
    reconciliation_keys,
    sales_inputs,
    sales_keys,
)

CHANGES = ("source string, order_id string, customer_id string, order_date string, channel string, region string, "
           "currency string")
ORDERS = "event_id string, order_id string, customer_id string, event_time timestamp, channel string, region string"
T0 = dt.datetime(2026, 11, 2, 10, 0)


def test_a_customer_is_touched_by_its_orders_payments_and_clicks_and_by_any_event_of_a_changed_order(spark):
    orders = spark.createDataFrame([
        ("E1", "O1", "C1", T0, "web", "EU"), ("E2", "O1", "C2", T0, "web", "EU"),  # O1 moved from C1 to C2
        ("E3", "O2", "C3", T0, "web", "EU"), ("E4", "O3", "C4", T0, "web", "EU")], ORDERS)
    changes = spark.createDataFrame([
        ("orders", "O1", "C2", "2026-11-02", "web", "EU", "EUR"),
        ("payments", "O2", None, None, None, None, None),
        ("clickstream", None, "C5", None, None, None, None),
        ("settlements", "O3", None, None, None, None, None)], CHANGES)  # a settlement moves no customer
    assert sorted(r.customer_id for r in customer_keys(changes, orders).collect()) == ["C1", "C2", "C3", "C5"]
    assert sorted(r.order_id for r in reconciliation_keys(changes).collect()) == ["O1", "O2", "O3"]


def test_a_customers_inputs_are_every_event_of_the_orders_naming_it_their_payments_and_its_clicks(spark):
    orders = spark.createDataFrame([
        ("E1", "O1", "C1", T0, "web", "EU"), ("E2", "O1", "C2", T0, "web", "EU"),
        ("E3", "O2", "C3", T0, "web", "EU")], ORDERS)
    payments = spark.createDataFrame([("P1", "O1"), ("P2", "O2")], "event_id string, order_id string")
    clicks = spark.createDataFrame([("K1", "C1"), ("K2", "C3"), ("K3", None)], "event_id string, customer_id string")
    keys = spark.createDataFrame([("C1",)], "customer_id string")
    got = [sorted(r.event_id for r in df.collect()) for df in customer_inputs(orders, payments, clicks, keys)]
    assert got == [["E1", "E2"], ["P1"], ["K1"]]


def test_sales_keys_are_the_groups_of_changed_order_events_and_their_inputs_every_event_of_those_groups(spark):
    changes = spark.createDataFrame([
        ("orders", "O1", "C1", "2026-11-02", "web", "EU", "EUR"),
        ("orders", "O9", "C1", "2026-11-02", "web", None, "EUR"),  # no region: a group of its own (null-safe)
        ("payments", "O2", None, None, None, None, None)], CHANGES)
    keys = sales_keys(changes)
    assert {(str(r.order_date), r.channel, r.region, r.currency) for r in keys.collect()} == {
        ("2026-11-02", "web", "EU", "EUR"), ("2026-11-02", "web", None, "EUR")}
    orders = spark.createDataFrame([
        ("E1", "O1", T0, "web", "EU", "EUR"), ("E2", "O5", T0, "web", "EU", "EUR"),
        ("E3", "O9", T0, "web", None, "EUR"), ("E4", "O6", T0 + dt.timedelta(days=1), "web", "EU", "EUR"),
        ("E5", "O7", T0, "web", "EU", "USD")],
        "event_id string, order_id string, event_time timestamp, channel string, region string, currency string")
    assert sorted(r.event_id for r in sales_inputs(orders, keys).collect()) == ["E1", "E2", "E3"]
