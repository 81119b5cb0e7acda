"""Gold sales: orders, units and revenue per day x channel x region x currency."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def sales_by_region(orders: DataFrame, reporting: str = "EUR") -> DataFrame:
    """Silver order events (with the reporting-currency amount) -> gold.sales: placed orders per day x channel x
    region x currency, revenue in the order currency and in the reporting currency (converted at event time)."""
    placed = orders.where(F.col("event_type") == "order_placed")
    return (
        placed.groupBy(F.to_date("event_time").alias("order_date"), "channel", "region", "currency")
        .agg(
            F.countDistinct("order_id").cast("long").alias("orders"),
            F.sum("units").cast("long").alias("units"),
            F.sum("total_amount").cast("decimal(18,2)").alias("revenue"),
            F.sum(f"total_amount_{reporting.lower()}").cast("decimal(18,2)").alias("revenue_reporting"),
        )
        .withColumn("reporting_currency", F.lit(reporting))
        .orderBy("order_date", "channel", "region", "currency")
    )
