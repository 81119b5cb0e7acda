"""Per-key maintenance of gold tables built from silver: which keys a batch of silver changes can move, and the
silver rows those keys are recomputed from (a key's rows depend on these rows only, so recomputing the keys from
them equals a full recompute restricted to the keys).

Change rows (`jobs.gold_commerce.change_rows`) carry, per silver input, the columns named here as strings: the
order's id, customer, and sales key (day of the event, channel, region, currency); a payment's and a settlement
line's order; a click's customer. Both images of a changed row are change rows, so a key a row left is touched too.
"""

from __future__ import annotations

import functools

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SALES_KEY = ["order_date", "channel", "region", "currency"]
CUSTOMER_KEY = ["customer_id"]
ORDER_KEY = ["order_id"]


def _of(changes: DataFrame, *sources: str) -> DataFrame:
    return changes.where(F.col("source").isin(*sources))


def _distinct_not_null(df: DataFrame, key: list[str]) -> DataFrame:
    return df.where(F.col(key[0]).isNotNull()).select(*key).distinct()


def semi_join(df: DataFrame, keys: DataFrame, key: list[str], anti: bool = False) -> DataFrame:
    """The rows of `df` whose `key` (null-safe) is one of `keys` (small: broadcast); `anti`: the other rows."""
    same = functools.reduce(lambda a, b: a & b, [df[c].eqNullSafe(F.col(f"_k_{c}")) for c in key])
    small = F.broadcast(keys.select(*[F.col(c).alias(f"_k_{c}") for c in key]))
    return df.join(small, same, "left_anti" if anti else "left_semi")


# --- gold.sales: day x channel x region x currency ---------------------------------------------------------------
def sales_keys(changes: DataFrame) -> DataFrame:
    """The sales keys of changed order events (order_date a date)."""
    rows = _of(changes, "orders").where(F.col("order_date").isNotNull())
    return rows.select(F.col("order_date").cast("date").alias("order_date"), "channel", "region",
                       "currency").distinct()


def sales_inputs(orders: DataFrame, keys: DataFrame) -> DataFrame:
    """The order events of the `keys`' groups."""
    return semi_join(orders.withColumn("order_date", F.to_date("event_time")), keys, SALES_KEY).drop("order_date")


# --- gold.customer_360: one row per customer ----------------------------------------------------------------------
def customer_keys(changes: DataFrame, orders: DataFrame) -> DataFrame:
    """Customers of changed order events and clicks, and every customer an event of a changed order or of an order
    with a changed payment names (an order's latest event decides whose it is)."""
    order_ids = _distinct_not_null(_of(changes, "orders", "payments"), ORDER_KEY)
    of_orders = semi_join(orders, order_ids, ORDER_KEY).select("customer_id")
    direct = _of(changes, "orders", "clickstream").select("customer_id")
    return _distinct_not_null(of_orders.unionByName(direct), CUSTOMER_KEY)


def customer_inputs(orders: DataFrame, payments: DataFrame, clickstream: DataFrame,
                    keys: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(orders, payments, clickstream) of the `keys`' customers: every event of an order one of whose events
    names such a customer, those orders' payments, the customers' clicks. The rows recomputed from them for other
    customers are partial: keep the `keys`' rows only."""
    order_ids = semi_join(orders, keys, CUSTOMER_KEY).select("order_id").distinct()
    return (orders.join(order_ids, "order_id", "left_semi"), payments.join(order_ids, "order_id", "left_semi"),
            semi_join(clickstream, keys, CUSTOMER_KEY))


# --- gold.payment_reconciliation: one row per order ---------------------------------------------------------------
def reconciliation_keys(changes: DataFrame) -> DataFrame:
    """Orders with a changed order event, payment event or settlement line."""
    return _distinct_not_null(_of(changes, "orders", "payments", "settlements"), ORDER_KEY)


def reconciliation_inputs(orders: DataFrame, payments: DataFrame, settlements: DataFrame,
                          keys: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(orders, payments, settlements) of the `keys`' orders."""
    return tuple(semi_join(df, keys, ORDER_KEY) for df in (orders, payments, settlements))
