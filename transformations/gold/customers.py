"""Gold customer 360: one row per customer with orders, revenue, lifetime value, channels and last activity."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transformations.silver.enrichment import to_reporting_currency

CUSTOMER_360_COLUMNS = [
    "customer_id", "orders", "cancelled_orders", "revenue", "refunds", "lifetime_value", "reporting_currency",
    "channels_used", "first_order_at", "last_order_at", "last_activity_at",
]


def _latest_per_order(orders: DataFrame) -> DataFrame:
    """The latest event of each order (placed, updated or cancelled)."""
    return (
        orders.groupBy("order_id")
        .agg(F.max_by(F.struct("customer_id", "channel", "currency", "total_amount", "event_type"),
                      F.col("event_time")).alias("o"),
             F.min("event_time").alias("placed_at"), F.max("event_time").alias("last_event_at"))
        .select("order_id", "o.*", "placed_at", "last_event_at")
    )


def customer_360(
    orders: DataFrame,
    payments: DataFrame,
    clickstream: DataFrame,
    fx_rates: DataFrame,
    reporting: str = "EUR",
) -> DataFrame:
    """Silver orders, payments, clickstream and FX rates -> one row per customer.

    revenue: latest amount of every non-cancelled order, converted at the time the order was placed;
    refunds: refunded + chargeback amounts of the customer's orders, converted at payment time;
    lifetime_value = revenue - refunds; channels_used: order and clickstream channels, sorted;
    last_activity_at: latest order, payment or clickstream event of the customer.
    """
    rep = reporting.lower()
    latest = to_reporting_currency(_latest_per_order(orders), fx_rates, "total_amount", "currency", "placed_at",
                                   reporting)
    live = F.col("event_type") != "order_cancelled"
    per_customer = latest.groupBy("customer_id").agg(
        F.count(F.when(live, 1)).cast("long").alias("orders"),
        F.count(F.when(~live, 1)).cast("long").alias("cancelled_orders"),
        F.coalesce(F.sum(F.when(live, F.col(f"total_amount_{rep}"))), F.lit(0)).cast("decimal(18,2)")
        .alias("revenue"),
        F.collect_set("channel").alias("_order_channels"),
        F.min("placed_at").alias("first_order_at"),
        F.max("placed_at").alias("last_order_at"),
        F.max("last_event_at").alias("_last_order_event"),
    )
    owners = latest.select("order_id", "customer_id")
    money_back = payments.where(F.col("event_type").isin("refunded", "chargeback")).join(owners, "order_id")
    refunds = to_reporting_currency(money_back, fx_rates, "amount", "currency", "event_time", reporting).groupBy(
        "customer_id").agg(F.sum(f"amount_{rep}").alias("refunds"))
    paid_at = payments.join(owners, "order_id").groupBy("customer_id").agg(F.max("event_time").alias("_last_pay"))
    clicks = clickstream.where(F.col("customer_id").isNotNull()).groupBy("customer_id").agg(
        F.collect_set("channel").alias("_click_channels"), F.max("event_time").alias("_last_click"))
    joined = per_customer.join(refunds, "customer_id", "left").join(paid_at, "customer_id", "left").join(
        clicks, "customer_id", "left")
    refunds_col = F.coalesce("refunds", F.lit(0)).cast("decimal(18,2)")
    channels = F.array_sort(F.array_distinct(F.concat(
        "_order_channels", F.coalesce("_click_channels", F.array().cast("array<string>")))))
    return joined.select(
        "customer_id", "orders", "cancelled_orders", "revenue",
        refunds_col.alias("refunds"),
        (F.col("revenue") - refunds_col).cast("decimal(18,2)").alias("lifetime_value"),
        F.lit(reporting).alias("reporting_currency"),
        channels.alias("channels_used"),
        "first_order_at", "last_order_at",
        F.greatest("_last_order_event", "_last_pay", "_last_click").alias("last_activity_at"),
    ).orderBy("customer_id")
