"""Replenishment suggestions per sku x warehouse, from inventory positions and the demand forecast.

Per sku x warehouse, over the supplier's lead time L (forecast horizons 1..L, every channel):

* demand = the summed forecast; safety stock = the summed 90th percentiles minus that demand (what a 90 %
  service level keeps in reserve); need = demand + safety stock - available_to_sell, when positive;
* excess (an overstocked warehouse) = available_to_sell - `overstock_factor` x its summed 90th percentiles over
  the whole forecast horizon, when positive.

A sku's needs are covered first by transfers from its overstocked warehouses (needs and excesses are laid end to
end, largest first, and each transfer is the overlap of a need's and an excess's stretch: no excess is given twice,
no need gets more than it lacks), then by a purchase order for the rest, rounded up to the pack size. Every row
says why. Distributed: one window per sku, no driver loop.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

KEY = ["sku", "warehouse_id"]
COLUMNS = [
    "sku", "warehouse_id", "action", "quantity", "from_warehouse_id", "available_to_sell", "demand_lead_time",
    "safety_stock", "lead_time_days", "reason", "origin_date", "model_version",
]
DEFAULT_LEAD_TIME_DAYS = 7
DEFAULT_OVERSTOCK_FACTOR = 2.0


def position_state(positions: DataFrame, forecast: DataFrame, lead_time_days: int,
                   overstock_factor: float) -> DataFrame:
    """Per sku x warehouse with a forecast: available, lead-time demand and safety stock, need and excess."""
    available = positions.groupBy(*KEY).agg(F.max("available_to_sell").alias("available_to_sell"))
    within = F.col("horizon") <= lead_time_days
    demand = forecast.groupBy(*KEY).agg(
        F.sum(F.when(within, F.col("forecast")).otherwise(0.0)).alias("demand_lead_time"),
        F.sum(F.when(within, F.col("p90")).otherwise(0.0)).alias("p90_lead_time"),
        F.sum("p90").alias("p90_horizon"),
        F.max("origin_date").alias("origin_date"), F.max("model_version").alias("model_version"),
    )
    state = demand.join(available, KEY, "left").withColumn(
        "available_to_sell", F.coalesce("available_to_sell", F.lit(0)).cast("long"))
    return state.select(
        *KEY, "available_to_sell", "demand_lead_time",
        F.greatest(F.col("p90_lead_time") - F.col("demand_lead_time"), F.lit(0.0)).alias("safety_stock"),
        F.greatest(F.ceil(F.col("p90_lead_time") - F.col("available_to_sell")), F.lit(0)).cast("long").alias("need"),
        F.greatest(F.col("available_to_sell") - F.ceil(F.col("p90_horizon") * overstock_factor), F.lit(0))
        .cast("long").alias("excess"),
        F.col("p90_horizon"), "origin_date", "model_version",
    )


def _stretches(state: DataFrame, amount: str) -> DataFrame:
    """Rows with `amount` > 0 laid end to end per sku (largest first): [start, end)."""
    order = Window.partitionBy("sku").orderBy(F.col(amount).desc(), F.col("warehouse_id"))
    end = F.sum(amount).over(order.rowsBetween(Window.unboundedPreceding, 0))
    return state.where(F.col(amount) > 0).withColumn("end", end).withColumn("start", F.col("end") - F.col(amount))


def _reason(template: str, *cols: Column) -> Column:
    return F.format_string(template, *cols)


def replenishment_suggestions(positions: DataFrame, forecast: DataFrame, lead_time_days: int = DEFAULT_LEAD_TIME_DAYS,
                              overstock_factor: float = DEFAULT_OVERSTOCK_FACTOR, pack_size: int = 1) -> DataFrame:
    """Transfers and purchase orders (COLUMNS) for the sku x warehouses of `forecast` (gold.demand_forecast rows),
    given `positions` (gold.inventory_positions rows of the same skus)."""
    state = position_state(positions, forecast, lead_time_days, overstock_factor)
    needs, excesses = _stretches(state, "need").alias("n"), _stretches(state, "excess").alias("x")
    overlap = F.least(F.col("n.end"), F.col("x.end")) - F.greatest(F.col("n.start"), F.col("x.start"))
    transfers = needs.join(excesses, (F.col("n.sku") == F.col("x.sku")) & (overlap > 0)).select(
        F.col("n.sku").alias("sku"), F.col("n.warehouse_id").alias("warehouse_id"), F.lit("transfer").alias("action"),
        overlap.cast("long").alias("quantity"), F.col("x.warehouse_id").alias("from_warehouse_id"),
        F.col("n.available_to_sell").alias("available_to_sell"), F.col("n.demand_lead_time").alias("demand_lead_time"),
        F.col("n.safety_stock").alias("safety_stock"), F.lit(lead_time_days).alias("lead_time_days"),
        _reason("%s holds %d units beyond %.1fx its 14-day p90 demand (%.1f); %s needs %d over the %d-day lead time",
                F.col("x.warehouse_id"), F.col("x.excess"), F.lit(overstock_factor), F.col("x.p90_horizon"),
                F.col("n.warehouse_id"), F.col("n.need"), F.lit(lead_time_days)).alias("reason"),
        F.col("n.origin_date").alias("origin_date"), F.col("n.model_version").alias("model_version"),
    )
    received = transfers.groupBy(*KEY).agg(F.sum("quantity").alias("received"))
    rest = F.col("need") - F.coalesce("received", F.lit(0))
    orders = needs.select("sku", "warehouse_id", *[c for c in needs.columns if c not in KEY and c not in (
        "start", "end")]).join(received, KEY, "left").where(rest > 0).select(
        *KEY, F.lit("purchase_order").alias("action"),
        (F.ceil(rest / F.lit(pack_size)) * pack_size).cast("long").alias("quantity"),
        F.lit(None).cast("string").alias("from_warehouse_id"), "available_to_sell", "demand_lead_time",
        "safety_stock", F.lit(lead_time_days).alias("lead_time_days"),
        _reason("forecast %.1f + safety stock %.1f over the %d-day lead time exceed the %d available%s",
                F.col("demand_lead_time"), F.col("safety_stock"), F.lit(lead_time_days), F.col("available_to_sell"),
                F.when(F.col("received") > 0, F.format_string(" (%d transferred in)", F.col("received")))
                .otherwise(F.lit(""))).alias("reason"),
        "origin_date", "model_version",
    )
    return transfers.select(*COLUMNS).unionByName(orders.select(*COLUMNS))


def suggestion_key() -> Column:
    """One suggestion's identity (its row's grain): sku|warehouse|action|source warehouse ('' for an order)."""
    return F.concat_ws("|", "sku", "warehouse_id", "action", F.coalesce(F.col("from_warehouse_id"), F.lit("")))


def erp_messages(changes: DataFrame) -> DataFrame:
    """Change data feed rows of gold.replenishment_suggestions (COLUMNS + `_change_type`, `_commit_version`) ->
    the Kafka records (key, value) that keep a compacted topic equal to the table: per suggestion, its last change
    in these rows; a row as it is now (JSON of COLUMNS) or, when the suggestion went, a tombstone (null value).
    A key deleted and inserted by one commit (a table overwritten) is the insert. Update pre-images say nothing."""
    kept = changes.where(F.col("_change_type") != "update_preimage").withColumn("key", suggestion_key())
    last = Window.partitionBy("key").orderBy(F.col("_commit_version").desc(),
                                             (F.col("_change_type") == "delete").cast("int"))
    latest = kept.withColumn("_n", F.row_number().over(last)).where(F.col("_n") == 1)
    value = F.when(F.col("_change_type") == "delete", F.lit(None).cast("string")).otherwise(
        F.to_json(F.struct(*[F.col(c) for c in COLUMNS]), {"ignoreNullFields": "false"}))  # every field, null too
    return latest.select("key", value.alias("value"))
