"""Real-time inventory: available-to-sell per sku x warehouse from the raw streams, as movements arrive.

Stock is shared by every channel selling from a warehouse, so what a storefront needs within seconds is the
position per sku x warehouse: `on_hand` (the ERP's stock, from its CDC stream) - `locked` (open reservations)
- `sold` (reservations released because their order was fulfilled). Every input becomes a *movement* row (sku,
warehouse_id, on_hand, lsn, locked, sold, produced_at), and `positions` folds movements into positions with declarative aggregates only, so the same
function runs as a stateful streaming aggregation (state per sku x warehouse) and in batch over silver:

* a reservation event moves `locked` by its signed quantity (+ lock, - release) and, when it is a release for a
  fulfilled order, `sold` by its quantity (the unit left stock: `available_to_sell` does not change);
* an ERP stock change sets `on_hand`: the row image with the highest LSN wins (a delete sets 0), so a
  re-delivered change or a replayed snapshot changes nothing.

The figures equal `transformations.gold.inventory.inventory_positions` summed over channels, which is how the
per-channel gold table is checked against this path.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transformations.gold.inventory import KEY, NEGATIVE, is_sale

POSITION_FIELDS = ["sku", "warehouse_id", "on_hand", "locked", "sold", "available_to_sell", "movements",
                   "last_produced_at"]


def reservation_movements(events: DataFrame) -> DataFrame:
    """Valid, deduplicated inventory events (`parse_inventory_events` columns + `produced_at`) -> movements."""
    return events.select(
        "sku", "warehouse_id", F.lit(None).cast("int").alias("on_hand"), F.lit(None).cast("long").alias("lsn"),
        F.col("signed_quantity").cast("long").alias("locked"),
        F.when(is_sale(), F.col("quantity")).otherwise(F.lit(0)).cast("long").alias("sold"),
        "produced_at",
    )


def stock_movements(changes: DataFrame, warehouses: DataFrame) -> DataFrame:
    """Typed ERP `inventory` changes (sku, warehouse_id, on_hand, `_lsn`, `_deleted`, `produced_at`) -> movements,
    the ERP warehouse id replaced by the code events carry (warehouses: warehouse_id, code)."""
    codes = warehouses.select("warehouse_id", F.col("code").alias("_code"))
    return changes.join(codes, "warehouse_id").select(
        "sku", F.col("_code").alias("warehouse_id"),
        F.when(F.col("_deleted"), F.lit(0)).otherwise(F.col("on_hand")).cast("int").alias("on_hand"),
        F.col("_lsn").cast("long").alias("lsn"), F.lit(0).cast("long").alias("locked"),
        F.lit(0).cast("long").alias("sold"), "produced_at",
    )


def positions(movements: DataFrame) -> DataFrame:
    """Movements -> one position per sku x warehouse (POSITION_FIELDS); `movements` counts the rows folded in,
    `last_produced_at` is the latest produce time among them."""
    on_hand = F.coalesce(F.max_by("on_hand", "lsn"), F.lit(0)).cast("long")
    folded = movements.groupBy(*KEY).agg(
        on_hand.alias("on_hand"),
        F.coalesce(F.sum("locked"), F.lit(0)).cast("long").alias("locked"),
        F.coalesce(F.sum("sold"), F.lit(0)).cast("long").alias("sold"),
        F.count(F.lit(1)).alias("movements"),
        F.max("produced_at").alias("last_produced_at"),
    )
    available = F.col("on_hand") - F.col("locked") - F.col("sold")
    return folded.withColumn("available_to_sell", available).select(*POSITION_FIELDS)


def _json(fields: list[Column | str]) -> Column:
    return F.to_json(F.struct(*fields))


def position_records(positions: DataFrame, positions_topic: str, alerts_topic: str) -> DataFrame:
    """Positions -> Kafka rows (topic, key, value): each position to `positions_topic`, and an alert to
    `alerts_topic` for each position whose available_to_sell is negative. Key: `<sku>|<warehouse_id>` (a
    compacted topic keeps the last position of every key)."""
    key = F.concat_ws("|", *KEY)
    position = F.struct(F.lit(positions_topic).alias("topic"), _json(POSITION_FIELDS).alias("value"))
    alert = F.struct(F.lit(alerts_topic).alias("topic"), _json(
        [*KEY, "available_to_sell", "on_hand", "locked", "sold", F.lit(NEGATIVE).alias("reason"), "movements",
         "last_produced_at"]).alias("value"))
    both = F.when(F.col("available_to_sell") < 0, F.array(position, alert)).otherwise(F.array(position))
    return positions.select(key.alias("key"), F.explode(both).alias("r")).select("r.topic", "key", "r.value")
