"""Real-time inventory positions (transformations.gold.realtime_inventory): movements folded per sku x warehouse,
equal to the per-channel gold positions summed over channels, and the Kafka records they become."""

from __future__ import annotations

import datetime as dt
import json

from pyspark.sql import functions as F

from transformations.gold.inventory import inventory_positions, sold_from_reservations
from transformations.gold.realtime_inventory import (
    position_records,
    positions,
    reservation_movements,
    stock_movements,
)

T0 = dt.datetime(2026, 12, 4, 9, 0)
EVENTS = ("event_type string, sku string, warehouse_id string, quantity int, signed_quantity int, reason string, "
          "channel string, produced_at timestamp")
CHANGES = "sku string, warehouse_id int, on_hand int, _lsn long, _deleted boolean, produced_at timestamp"
WAREHOUSES = [(1, "WH-EU-1"), (2, "WH-EU-2")]


def at(s: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def ev(kind: str, sku: str, wh: str, qty: int, reason: str, channel: str | None, s: int) -> tuple:
    return (kind, sku, wh, qty, qty if kind == "inventory_locked" else -qty, reason, channel, at(s))


def inputs(spark):
    events = spark.createDataFrame([
        ev("inventory_locked", "SKU-00001", "WH-EU-1", 3, "order_placed", "web", 1),
        ev("inventory_locked", "SKU-00001", "WH-EU-1", 2, "order_placed", "amazon", 2),
        ev("inventory_released", "SKU-00001", "WH-EU-1", 2, "fulfilled", "amazon", 3),  # sold: 2
        ev("inventory_released", "SKU-00001", "WH-EU-1", 1, "order_cancelled", "web", 4),
        ev("inventory_locked", "SKU-00002", "WH-EU-2", 5, "order_placed", None, 5),  # order's channel unknown
        ev("inventory_locked", "SKU-00003", "WH-EU-1", 1, "order_placed", "ebay", 6),  # no stock row at all
    ], EVENTS)
    changes = spark.createDataFrame([
        ("SKU-00001", 1, 10, 100, False, at(0)),
        ("SKU-00001", 1, 7, 300, False, at(8)),
        ("SKU-00001", 1, 9, 200, False, at(7)),  # older LSN delivered after the newer: ignored
        ("SKU-00001", 1, 7, 300, False, at(8)),  # re-delivery
        ("SKU-00002", 2, 4, 110, False, at(0)),
        ("SKU-00004", 1, 6, 120, False, at(0)),
        ("SKU-00004", 1, 6, 400, True, at(9)),  # deleted in the ERP
        ("SKU-00005", 9, 50, 130, False, at(0)),  # a warehouse the mirror does not have: no code, no position
    ], CHANGES)
    warehouses = spark.createDataFrame(WAREHOUSES, "warehouse_id int, code string")
    return events, changes, warehouses


def folded(spark):
    events, changes, warehouses = inputs(spark)
    return positions(reservation_movements(events).unionByName(stock_movements(changes, warehouses)))


def test_positions_fold_reservations_and_the_newest_stock_image(spark):
    rows = {(r.sku, r.warehouse_id): r.asDict() for r in folded(spark).collect()}
    assert {k: (r["on_hand"], r["locked"], r["sold"], r["available_to_sell"], r["movements"])
            for k, r in rows.items()} == {
        ("SKU-00001", "WH-EU-1"): (7, 3 + 2 - 2 - 1, 2, 7 - 2 - 2, 8),  # 4 events + 4 stock changes
        ("SKU-00002", "WH-EU-2"): (4, 5, 0, -1, 2),
        ("SKU-00003", "WH-EU-1"): (0, 1, 0, -1, 1),
        ("SKU-00004", "WH-EU-1"): (0, 0, 0, 0, 2),
    }
    assert rows[("SKU-00001", "WH-EU-1")]["last_produced_at"] == at(8)


def test_positions_equal_the_per_channel_gold_positions_summed_over_channels(spark):
    events, changes, warehouses = inputs(spark)
    newest = changes.groupBy("sku", "warehouse_id").agg(F.max_by(F.struct("on_hand", "_deleted"), "_lsn").alias("r"))
    stock = (newest.where(~F.col("r._deleted")).join(warehouses, "warehouse_id")
             .select("sku", F.col("code").alias("warehouse_id"), F.col("r.on_hand").alias("on_hand")))
    gold = inventory_positions(stock, events, sold_from_reservations(events))
    summed = gold.groupBy("sku", "warehouse_id").agg(
        F.max("on_hand").alias("on_hand"), F.sum("locked").alias("locked"), F.sum("sold").alias("sold"),
        F.max("available_to_sell").alias("available_to_sell"))
    realtime = folded(spark).where("on_hand <> 0 OR locked <> 0 OR sold <> 0")  # a deleted, idle key: no gold row
    cols = ["sku", "warehouse_id", "on_hand", "locked", "sold", "available_to_sell"]
    assert sorted(map(tuple, summed.select(*cols).collect())) == sorted(map(tuple, realtime.select(*cols).collect()))


def test_every_position_is_published_and_a_negative_one_is_also_an_alert(spark):
    records = position_records(folded(spark), "inventory.positions", "inventory.alerts").collect()
    by_topic = {}
    for r in records:
        by_topic.setdefault(r.topic, {})[r.key] = json.loads(r.value)
    assert sorted(by_topic["inventory.positions"]) == [
        "SKU-00001|WH-EU-1", "SKU-00002|WH-EU-2", "SKU-00003|WH-EU-1", "SKU-00004|WH-EU-1"]
    assert by_topic["inventory.positions"]["SKU-00001|WH-EU-1"] == {
        "sku": "SKU-00001", "warehouse_id": "WH-EU-1", "on_hand": 7, "locked": 2, "sold": 2, "available_to_sell": 3,
        "movements": 8, "last_produced_at": "2026-12-04T09:00:08.000Z"}
    assert {k: (v["available_to_sell"], v["reason"]) for k, v in by_topic["inventory.alerts"].items()} == {
        "SKU-00002|WH-EU-2": (-1, "negative_available"), "SKU-00003|WH-EU-1": (-1, "negative_available")}
    assert len(records) == 6


def test_the_reference_fingerprint_follows_the_rows_not_their_order(spark):
    from jobs.inventory_realtime import fingerprint

    def skus(*names: str):
        return spark.createDataFrame([(n,) for n in names], "sku string")

    warehouses = spark.createDataFrame(WAREHOUSES, "warehouse_id int, code string")
    same = fingerprint((skus("SKU-00001", "SKU-00002"), warehouses))
    assert same == fingerprint((skus("SKU-00002", "SKU-00001"), warehouses))
    assert same != fingerprint((skus("SKU-00001", "SKU-00003"), warehouses))
    assert same != fingerprint((skus("SKU-00001", "SKU-00002", "SKU-00003"), warehouses))
    assert [n for n, _ in same] == [2, 2]
