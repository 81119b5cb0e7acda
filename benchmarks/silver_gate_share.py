"""Benchmark (not a test): the quality gate's share of silver micro-batch time (target <= 30%).

Generates the multi-family event stream (with faults), writes it to bronze.<family>_events in `--batches`
appends (each append is one micro-batch for silver), then runs silver_events batch by batch. For every batch
and family it reports the wall time of the whole silver step and the time spent in the two gates (bronze
structure suite + silver business-rule suite: row tagging, caching, GX validation, Data Docs), from
ops.quality_validations. Reference tables (catalogue, FX history) are written as the CDC pipeline would.

    LAKEHOUSE_HOME=/tmp/lh-bench .venv/bin/python benchmarks/silver_gate_share.py --rate 2000 --duration 60
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bronze_batches(spark, stream, batches: int):
    """The generated records as bronze rows (classified like the bronze job does), cut into `batches`."""
    from pyspark.sql import functions as F

    from lakehouse.events import FAMILIES
    from lakehouse.sources.kafka import kafka_schema
    from transformations.bronze.events import EVENT_BRONZE_COLUMNS, classify

    now = dt.datetime.now(dt.UTC)
    rows = []
    for family in FAMILIES:
        for offset, (key, value, headers) in enumerate(stream.records[family]):
            rows.append((key, value, family, offset % 4, offset, now, 0, [(k, v) for k, v in headers]))
    records = spark.createDataFrame(rows, kafka_schema(include_headers=True))
    bronze = classify(records, {f: f for f in FAMILIES}, stream.config.max_bytes, now)
    classified = bronze.where(F.col("reason").isNull()).select(EVENT_BRONZE_COLUMNS)
    cut = classified.withColumn("_batch", F.col("offset") % batches).cache()
    return [cut.where(F.col("_batch") == b).drop("_batch") for b in range(batches)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=2000.0, help="events/s of event time")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of event time")
    p.add_argument("--batches", type=int, default=3)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from jobs.silver_events import bronze_table, process_family
    from lakehouse.events import FAMILIES
    from lakehouse.events.generator import StreamConfig, generate_stream
    from lakehouse.job import job_context
    from lakehouse.quality.ops import VALIDATIONS

    ctx = job_context("silver_gate_share")
    spark, tables = ctx.spark, ctx.tables
    t0 = time.perf_counter()
    stream = generate_stream(StreamConfig(seed=7, rate=args.rate, duration_s=args.duration))
    print(f"generated {sum(len(r) for r in stream.records.values()):,} records in {time.perf_counter() - t0:.1f} s")
    catalogue = spark.createDataFrame([(f"SKU-{i:05d}",) for i in range(1, 5001)], "sku string")
    tables.overwrite(catalogue, "silver.products")
    fx = [(c, Decimal(r), dt.datetime(2020, 1, 1)) for c, r in (("EUR", "1"), ("USD", "0.9"), ("GBP", "1.15"),
                                                               ("JPY", "0.0062"))]
    tables.overwrite(spark.createDataFrame(fx, "currency string, rate_to_eur decimal(18,8), valid_from timestamp"),
                     "silver.fx_rates_history")
    batches = bronze_batches(spark, stream, args.batches)

    wall: dict[str, float] = defaultdict(float)
    rows: dict[str, int] = defaultdict(int)
    print(f"{'batch':>5} {'family':<12} {'rows':>8} {'step s':>7} {'gate s':>7} {'share':>6}")
    for b, batch in enumerate(batches):
        for family in FAMILIES:
            part = batch.where(batch.event_family == family)
            tables.append(part, bronze_table(family))
            started = time.perf_counter()
            process_family(ctx, family, part, "silver_gate_share", b)
            wall[(b, family)] = time.perf_counter() - started
    validations = tables.read(VALIDATIONS).where(f"run_id = '{ctx.run_id}'").collect()
    gate: dict[tuple[int, str], float] = defaultdict(float)
    versions = sorted({v.table_version for v in validations})
    for v in validations:
        family = v.table_name.split(".")[1].removesuffix("_events")
        b = versions.index(v.table_version) if len(versions) == args.batches else 0
        gate[(b, family)] += v.gate_seconds
        if v.table_name.startswith("silver."):
            rows[(b, family)] = v.rows or 0
    for key in sorted(wall):
        share = gate[key] / wall[key] if wall[key] else 0.0
        print(f"{key[0]:>5} {key[1]:<12} {rows[key]:>8,} {wall[key]:>7.2f} {gate[key]:>7.2f} {share:>6.1%}")
    total_wall, total_gate = sum(wall.values()), sum(gate.values())
    events = sum(rows.values())
    print(f"total: {events:,} silver rows checked in {total_wall:.1f} s ({events / total_wall:,.0f} rows/s); "
          f"gates {total_gate:.1f} s = {total_gate / total_wall:.1%} of silver micro-batch time")


if __name__ == "__main__":
    main()
