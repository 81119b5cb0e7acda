"""Benchmark (not a test): an incremental gold inventory run (a few keys touched) vs a full rebuild, on synthetic
silver of a chosen size. Only gold.inventory_positions and gold.oversell_alerts are built (the tables derived
from orders, payments and clicks are tests/integration/test_gold_derived_incremental.py's; no demand forecast).

Each round appends one inventory event and changes one stock row (CDC-style MERGE), times the incremental run,
then times a full rebuild of the same silver (a new query: its first batch rebuilds), and prints both; the first round
is a warm-up.

    .venv/bin/python benchmarks/gold_inventory_incremental.py --skus 20000 --events 400000 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jobs.gold_commerce as gold  # noqa: E402
from lakehouse.config import get_settings  # noqa: E402
from lakehouse.job import JobContext  # noqa: E402
from lakehouse.spark import get_spark  # noqa: E402
from lakehouse.tables import MergeSpec, get_tables  # noqa: E402

WAREHOUSES = 3
OTHER_INPUTS = {"payments": "order_id string", "clickstream": "customer_id string", "settlements": "order_id string",
                "fx": "currency string"}  # read by the query, used by no table built here


def silver(ctx: JobContext, skus: int, events: int) -> None:
    spark, tables = ctx.spark, ctx.tables
    orders = max(1, events // 4)
    tables.overwrite(spark.createDataFrame([(i, f"WH-{i}") for i in range(1, WAREHOUSES + 1)],
                                           "warehouse_id int, code string"), gold.SOURCES["warehouses"])
    tables.overwrite(spark.range(skus * WAREHOUSES).selectExpr(
        f"format_string('SKU-%06d', cast(id div {WAREHOUSES} as int)) sku",
        f"cast(id % {WAREHOUSES} + 1 as int) warehouse_id", "1000 on_hand"), gold.SOURCES["inventory"])
    tables.overwrite(spark.range(orders).selectExpr(
        "uuid() event_id", "concat('O', id) order_id", "element_at(array('web', 'amazon', 'ebay'), cast(id % 3 + 1 as int)) channel",
        "timestamp'2026-11-02 10:00:00' event_time", "'order_placed' event_type", "concat('C', id % 1000) customer_id",
        "'EU' region", "'EUR' currency"), gold.SOURCES["orders"])
    tables.overwrite(spark.range(events).selectExpr(
        "uuid() event_id", f"concat('O', id % {orders}) order_id",
        f"format_string('SKU-%06d', pmod(hash(id), {skus})) sku",
        f"concat('WH-', cast(id % {WAREHOUSES} + 1 as int)) warehouse_id",
        "if(id % 5 = 0, 'inventory_released', 'inventory_locked') event_type", "1 quantity",
        "if(id % 5 = 0, 'fulfilled', 'order_placed') reason", "timestamp'2026-11-02 10:00:00' event_time"),
        gold.SOURCES["inventory_events"])
    for key, schema in OTHER_INPUTS.items():
        tables.overwrite(spark.createDataFrame([], schema), gold.SOURCES[key])


def change(ctx: JobContext, n: int) -> None:
    """One new inventory event and one stock change."""
    spark, tables = ctx.spark, ctx.tables
    tables.append(spark.createDataFrame([(str(uuid.uuid4()), "O1", "SKU-000001", "WH-1", "inventory_locked", 1,
                                          "order_placed")],
                                        "event_id string, order_id string, sku string, warehouse_id string, "
                                        "event_type string, quantity int, reason string")
                  .selectExpr("*", "timestamp'2026-11-02 10:00:00' event_time"), gold.SOURCES["inventory_events"])
    tables.merge(spark.createDataFrame([("SKU-000002", 2, 1000 + n)], "sku string, warehouse_id int, on_hand int"),
                 gold.SOURCES["inventory"], MergeSpec(on="t.sku = s.sku AND t.warehouse_id = s.warehouse_id"))


def timed(ctx: JobContext) -> float:
    """One available-now run of the gold query (one micro-batch)."""
    started = time.perf_counter()
    assert len(gold.run(ctx)) == 1
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for option, default in (("--skus", 20_000), ("--events", 400_000), ("--rounds", 3)):
        p.add_argument(option, type=int, default=default)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("gold_commerce").setLevel(logging.INFO)  # touched keys, gate and MERGE times
    settings = dataclasses.replace(get_settings(), tables_root=tempfile.mkdtemp(prefix="gold-inc-bench-"))
    spark = get_spark("gold-inventory-bench", settings)
    ctx = JobContext(spark, get_tables(spark, settings), settings, "gold-inventory-bench")
    gold.DERIVED = {}
    gold.ChampionScorer.champion_version = lambda self: None  # no demand forecast: the inventory tables only
    silver(ctx, args.skus, args.events)
    print(f"first (full) run: {timed(ctx):.1f} s, {ctx.tables.row_count(gold.POSITIONS)} positions")
    incremental, full = [], []
    for n in range(args.rounds + 1):
        change(ctx, n)
        inc = timed(ctx)
        gold.QUERY = f"{gold.APP_ID}_rebuild_{n}"  # a new query: the same silver, rebuilt in full
        whole = timed(ctx)
        print(f"round {n}: incremental {inc:.1f} s, full rebuild {whole:.1f} s" + (" (warm-up)" if n == 0 else ""))
        if n:
            incremental.append(inc)
            full.append(whole)
    print(f"median over {args.rounds} rounds: incremental {statistics.median(incremental):.1f} s, "
          f"full rebuild {statistics.median(full):.1f} s")


if __name__ == "__main__":
    main()
