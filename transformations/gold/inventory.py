"""Gold inventory: positions per sku x warehouse x channel and oversell alerts per sku x warehouse.

Stock is shared by every channel selling from a warehouse, so `available_to_sell` is computed per
sku x warehouse (on_hand - all channels' locked - all channels' sold) and repeated on each channel's row.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

KEY = ["sku", "warehouse_id"]
UNKNOWN_CHANNEL = "unknown"
NEGATIVE = "negative_available"  # alert reason: available_to_sell below zero
POSITION_COLUMNS = ["sku", "warehouse_id", "channel", "on_hand", "locked", "sold", "available_to_sell"]


def inventory_positions(on_hand: DataFrame, locks_releases: DataFrame, sold: DataFrame) -> DataFrame:
    """Positions per sku x warehouse x channel.

    on_hand: sku, warehouse_id, on_hand (silver.inventory, warehouse ids in the event vocabulary);
    locks_releases: sku, warehouse_id, channel, event_type (inventory_locked|inventory_released), quantity
    (inventory events with the order's channel attached); sold: sku, warehouse_id, channel, quantity.
    Activity of an order whose channel is not known counts under channel `unknown`; a sku x warehouse with
    stock but no channel activity gets one row with a null channel.
    """
    signed = F.when(F.col("event_type") == "inventory_released", -F.col("quantity")).otherwise(F.col("quantity"))
    channel = F.coalesce(F.col("channel"), F.lit(UNKNOWN_CHANNEL)).alias("channel")
    locks_releases, sold = locks_releases.withColumn("channel", channel), sold.withColumn("channel", channel)
    locked = locks_releases.groupBy(*KEY, "channel").agg(F.sum(signed).cast("long").alias("locked"))
    sold_q = sold.groupBy(*KEY, "channel").agg(F.sum("quantity").cast("long").alias("sold"))
    activity = locked.join(sold_q, [*KEY, "channel"], "full")
    stock = on_hand.groupBy(*KEY).agg(F.sum("on_hand").cast("long").alias("on_hand"))
    rows = stock.join(activity, KEY, "full").select(
        *KEY, "channel",
        F.coalesce("on_hand", F.lit(0)).cast("long").alias("on_hand"),
        F.coalesce("locked", F.lit(0)).cast("long").alias("locked"),
        F.coalesce("sold", F.lit(0)).cast("long").alias("sold"),
    )
    per_key = Window.partitionBy(*KEY)
    available = F.col("on_hand") - F.sum("locked").over(per_key) - F.sum("sold").over(per_key)
    return rows.withColumn("available_to_sell", available.cast("long")).select(*POSITION_COLUMNS)


def oversell_alerts(positions: DataFrame, orders: DataFrame) -> DataFrame:
    """One alert per sku x warehouse whose available_to_sell < 0 or that an order line exceeds.

    orders: open order lines (order_id, sku, warehouse_id, quantity) not yet counted in the positions.
    Columns: sku, warehouse_id, available_to_sell, channels (sorted), orders_exceeding (sorted), reason
    (`negative_available` takes precedence over `order_exceeds_available`).
    """
    per_key = positions.groupBy(*KEY).agg(
        F.max("available_to_sell").alias("available_to_sell"),
        F.array_sort(F.collect_set("channel")).alias("channels"),
    )
    lines = orders.groupBy("order_id", *KEY).agg(F.sum("quantity").alias("quantity"))
    exceeding = (
        lines.join(per_key, KEY).where(F.col("quantity") > F.col("available_to_sell"))
        .groupBy(*KEY).agg(F.array_sort(F.collect_set("order_id")).alias("orders_exceeding"))
    )
    alerts = per_key.join(exceeding, KEY, "left")
    reason = (
        F.when(F.col("available_to_sell") < 0, F.lit(NEGATIVE))
        .when(F.col("orders_exceeding").isNotNull(), F.lit("order_exceeds_available"))
    )
    return (
        alerts.withColumn("reason", reason).where(F.col("reason").isNotNull())
        .select(*KEY, "available_to_sell", "channels",
                F.coalesce("orders_exceeding", F.array().cast("array<string>")).alias("orders_exceeding"), "reason")
        .orderBy(*KEY)
    )


def with_order_channel(events: DataFrame, orders: DataFrame) -> DataFrame:
    """Inventory events (or sold lines) + the `channel` of their order (first seen order event; null if unknown)."""
    channels = orders.groupBy("order_id").agg(F.min_by("channel", "event_time").alias("channel"))
    return events.drop("channel").join(channels, "order_id", "left")


def on_hand_by_code(inventory: DataFrame, warehouses: DataFrame) -> DataFrame:
    """silver.inventory (ERP warehouse ids) -> sku, warehouse_id (the warehouse code events carry), on_hand."""
    codes = warehouses.select("warehouse_id", "code")
    return inventory.join(codes, "warehouse_id").select("sku", F.col("code").alias("warehouse_id"), "on_hand")


def is_sale() -> Column:
    """A reservation released because its order was fulfilled: the unit left stock as a sale."""
    return (F.col("event_type") == "inventory_released") & (F.col("reason") == "fulfilled")


def sold_from_reservations(events: DataFrame) -> DataFrame:
    """The reservations that became sales: sku, warehouse_id, channel, quantity."""
    return events.where(is_sale()).select(*KEY, "channel", "quantity")


# --- incremental maintenance: recompute the touched sku x warehouse keys only ------------------------------------
DELETE_FLAG = "_delete"  # MERGE source column: True = remove the target row


def restrict_to_keys(df: DataFrame, keys: DataFrame) -> DataFrame:
    """The rows of `df` whose sku x warehouse is one of `keys` (sku, warehouse_id; small: broadcast)."""
    return df.join(F.broadcast(keys.select(*KEY)), KEY, "left_semi")


def replacement_rows(new: DataFrame, current: DataFrame, grain: list[str]) -> DataFrame:
    """MERGE source that makes a target's `current` rows (those of the recomputed keys) equal to `new`: every new
    row with DELETE_FLAG false, plus every current row no new row has the `grain` of (null-safe) with it true."""
    same = [F.col(f"c.`{c}`").eqNullSafe(F.col(f"n.`{c}`")) for c in grain]
    gone = current.alias("c").join(new.alias("n"), same, "left_anti").select(*new.columns)
    return new.withColumn(DELETE_FLAG, F.lit(False)).unionByName(gone.withColumn(DELETE_FLAG, F.lit(True)))


def replacement_merge(grain: list[str]) -> dict[str, object]:
    """MergeSpec arguments for a `replacement_rows` source (grain columns compared null-safe)."""
    return {
        "on": " AND ".join(f"(t.`{c}` IS NOT DISTINCT FROM s.`{c}`)" for c in grain),
        "delete_when": f"s.{DELETE_FLAG}",
        "insert_when": f"NOT s.{DELETE_FLAG}",
    }
