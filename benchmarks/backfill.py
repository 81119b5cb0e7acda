"""Benchmark: backfill of generated order and payment history from S3 through bronze, silver and gold, against a
plain Spark Parquet read -> Delta write of the same files (the baseline, measured in the same run).

    LAKEHOUSE_HOME=<home where `lakehouse demo` ran> LAKEHOUSE_S3_PORT=<its port> (and its other ports) \\
        PYSPARK_PYTHON=.venv/bin/python .venv/bin/python benchmarks/backfill.py --events 2000000

The home must hold the reference tables silver and gold read (catalogue, FX history, warehouses, stock: the demo
makes them) and run its S3 endpoint (`lakehouse landing start`). One run, one Spark session:
 1. generate `--events` order and payment events over two years of event time (default faults), new event ids
    per run (`--seed` defaults to the clock) and order numbers past every order of the home (silver and Kafka),
    written as Parquet (`key`, `value`) to
    s3a://<landing bucket>/bench-history-<seed>/<family>/part-*.parquet;
 2. baseline: read those files with Spark and write them to a new Delta table (local), then
 3. `jobs.backfill.run_backfill` (bronze: classify + exactly-once commits; silver: gates, dedupe, conformance,
    MERGE; gold: gold_commerce's run over the grown silver), then
 4. the baseline again (the first one pays the session's warm-up); the ratio is against their mean.
Adds the history to the home's tables. Prints rows/s, seconds per step and the ratio. Not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.backfill import run_backfill  # noqa: E402
from lakehouse.config import get_settings  # noqa: E402
from lakehouse.events.generator import StreamConfig, generate_stream, unused_first_order  # noqa: E402
from lakehouse.events.history import write_history  # noqa: E402
from lakehouse.job import JobContext  # noqa: E402
from lakehouse.services.s3 import S3Config, require_s3, use_s3a  # noqa: E402

FAMILIES = {"orders": 0.6, "payments": 0.4}
ORDERS = "silver.orders_events"
HISTORY_S = 2 * 365 * 86_400.0


def plain_copy(spark, root: str, target: Path) -> tuple[int, float]:  # noqa: ANN001 - SparkSession
    """Spark's Parquet read of the history -> one Delta table; returns (rows, seconds)."""
    shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    spark.read.parquet(*(f"{root}/{f}" for f in FAMILIES)).write.format("delta").save(str(target))
    seconds = time.perf_counter() - started
    return spark.read.format("delta").load(str(target)).count(), seconds


def unused_order_number(tables, bootstrap: str) -> int:  # noqa: ANN001 - DeltaTables
    """A first order number no order of the home used: past every order in silver (earlier backfills included)
    and past every record of the order topics. Order ids that name two different orders would make gold.sales'
    reconciliation gate block, rightly."""
    from pyspark.sql import functions as F

    kafka = unused_first_order(bootstrap)
    if not tables.exists(ORDERS):
        return kafka
    number = F.regexp_extract("order_id", r"^ORD-(\d+)$", 1).cast("long")
    highest = tables.read(ORDERS).agg(F.max(number)).first()[0]
    return max(kafka, (highest or 0) + 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=8, help="files per family")
    ap.add_argument("--seed", type=int, default=None, help="default: the clock (new event ids every run)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    settings = get_settings()
    cfg = require_s3(S3Config.from_env())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from lakehouse.spark import get_spark
    from lakehouse.tables import get_tables

    spark = get_spark("bench-backfill", settings)
    use_s3a(spark, cfg)
    tables = get_tables(spark, settings)
    started = time.perf_counter()
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=HISTORY_S)
    stream = generate_stream(StreamConfig(seed=seed, rate=args.events / HISTORY_S, duration_s=HISTORY_S,
                                          families=FAMILIES, start=start,
                                          first_order=unused_order_number(tables, settings.kafka_bootstrap)))
    records = stream.report.produced
    root = f"s3a://{cfg.bucket}/bench-history-{seed}"
    paths = write_history(stream, root, "parquet", args.files)
    del stream
    print(f"history: {records:,} records ({', '.join(FAMILIES)}) from {start:%Y-%m-%d}, {len(paths)} Parquet files "
          f"under {root} in {time.perf_counter() - started:.0f} s", flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    try:
        rows, first = plain_copy(spark, root, scratch / "copy")
        print(f"plain copy (Parquet read -> Delta write): {rows:,} rows in {first:.1f} s", flush=True)
        seconds: dict[str, float] = {}
        ctx = JobContext(spark, tables, settings, f"bench-backfill-{seed}")
        started = time.perf_counter()
        report = run_backfill(ctx, root, list(FAMILIES), seconds=seconds)
        total = time.perf_counter() - started
        _, second = plain_copy(spark, root, scratch / "copy")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    baseline = (first + second) / 2
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    print(f"plain copy again: {second:.1f} s; baseline (mean) {baseline:.1f} s = {rows / baseline:,.0f} rows/s")
    print(f"backfill: {report.summary()}")
    print(f"backfill bronze -> silver -> gold: {total:.1f} s = {records / total:,.0f} rows/s ({steps})")
    print(f"ratio backfill / plain copy: {total / baseline:.2f}x (goal <= 1.5x); bronze alone "
          f"{seconds['bronze'] / baseline:.2f}x")


if __name__ == "__main__":
    main()
