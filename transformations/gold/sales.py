"""Gold sales: orders, units and revenue per day x channel x currency."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def sales_daily(orders: DataFrame) -> DataFrame:
    """Silver orders -> gold.sales_daily (placed orders only; revenue in the order currency)."""
    placed = orders.where(F.col("event_type") == "order_placed")
    return (
        placed.groupBy(F.to_date("event_time").alias("order_date"), "channel", "currency")
        .agg(
            F.countDistinct("order_id").cast("long").alias("orders"),
            F.sum("units").cast("long").alias("units"),
            F.sum("total_amount").cast("decimal(18,2)").alias("revenue"),
        )
        .orderBy("order_date", "channel", "currency")
    )
