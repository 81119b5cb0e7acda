"""Benchmark: the cost of erasing one customer from bronze by rewriting it (what `lakehouse gdpr erase` does)
against crypto-shredding (what it would cost with a per-customer key for the PII in bronze), and against one
plain scan of the same table, all measured in the same run.

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/python benchmarks/erasure_rewrite.py --rows 2000000

One Spark session, a table of its own in a temporary directory:
 1. bronze.erp_cdc_raw-shaped rows (`--rows`): Debezium envelopes of `--customers` customers (name, e-mail,
    address in clear, as bronze holds them) over `--days` ingest dates (the partitions); each customer's records
    spread over the dates, as a year of updates spreads them;
 2. baseline: one scan of the table (`count()` of a predicate on the payload, which has no statistics, that no
    row matches: every file is read);
 3. rewrite: the erasure's own predicate (lakehouse.governance.erasure.predicate) DELETE, `REORG ... APPLY
    (PURGE)`, `VACUUM ... RETAIN 0 HOURS`: seconds, files and bytes rewritten;
 4. crypto-shredding: the same customers' keys in a key table (customer_id, key); erasing is a DELETE of one key
    row, the same purge of that small table; the ciphertext in bronze stays and is unreadable.
Prints seconds per step and the ratios. Not a test.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import functions as F  # noqa: E402

from lakehouse.config import get_settings  # noqa: E402
from lakehouse.governance.erasure import Subject, predicate  # noqa: E402
from lakehouse.spark import get_spark  # noqa: E402


def _bronze(spark, rows: int, customers: int, days: int):  # noqa: ANN001, ANN202 - Spark objects
    cid = (F.col("id") * 7919 % customers + 1).cast("long")
    image = F.to_json(F.struct(cid.alias("customer_id"), F.concat(F.lit("Customer "), cid).alias("name"),
                               F.concat(F.lit("c"), cid, F.lit("@example.com")).alias("email"),
                               F.concat(cid, F.lit(" Main Street")).alias("address"),
                               F.lit("DE").alias("country")))
    return spark.range(rows).select(
        F.lit("erp.public.customers").alias("topic"), (F.col("id") % 2).cast("int").alias("partition"),
        F.col("id").alias("offset"),
        F.to_json(F.struct(cid.alias("customer_id"))).alias("key"),
        F.concat(F.lit('{"before":null,"after":'), image, F.lit(',"op":"u"}')).cast("binary").alias("value"),
        F.date_sub(F.lit("2026-12-01").cast("date"), F.floor(F.col("id") * days / rows).cast("int"))
        .alias("ingest_date"),  # ingested in offset order: one customer's records on many dates
    )


def _files(path: Path) -> tuple[int, int]:
    parts = [p for p in path.rglob("*.parquet") if "_delta_log" not in p.parts]
    return len(parts), sum(p.stat().st_size for p in parts)


def _timed(step) -> float:  # noqa: ANN001 - a callable
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--customers", type=int, default=50_000)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--customer-id", type=int, default=1234)
    args = p.parse_args()
    spark = get_spark("bench-erasure", get_settings())
    from delta.tables import DeltaTable

    work = Path(tempfile.mkdtemp(prefix="bench-erasure-"))
    bronze, keys = work / "bronze", work / "keys"
    try:
        _bronze(spark, args.rows, args.customers, args.days).write.format("delta").partitionBy(
            "ingest_date").save(str(bronze))
        spark.range(1, args.customers + 1).select(F.col("id").alias("customer_id"), F.sha2(
            F.col("id").cast("string"), 256).alias("key")).write.format("delta").save(str(keys))
        files, size = _files(bronze)
        df = spark.read.format("delta").load(str(bronze))
        scans = [_timed(lambda: df.where(F.length("value") < 0).count()) for _ in range(2)]  # no statistics
        subject = Subject(args.customer_id, values=(f"c{args.customer_id}@example.com",
                                                     f"{args.customer_id} Main Street"))
        where = predicate("bronze.erp_cdc_raw", df.schema, subject)
        matched = df.where(where).count()

        def purge(path: Path) -> None:
            spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)").collect()
            spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
            spark.sql(f"VACUUM delta.`{path}` RETAIN 0 HOURS").collect()

        delete = _timed(lambda: DeltaTable.forPath(spark, str(bronze)).delete(where))
        purged = _timed(lambda: purge(bronze))
        metrics = DeltaTable.forPath(spark, str(bronze)).history(3).where("operation = 'DELETE'").first()
        rewritten = int(metrics.operationMetrics.get("numRemovedFiles", 0))
        shred = _timed(lambda: (DeltaTable.forPath(spark, str(keys)).delete(
            F.col("customer_id") == args.customer_id), purge(keys)))
        scan = sum(scans) / len(scans)
        rewrite = delete + purged
        print(f"bronze: {args.rows:,} rows, {files} files, {size / 1e6:,.0f} MB over {args.days} dates; customer "
              f"{args.customer_id}: {matched} rows")
        print(f"one scan (baseline)     {scan:8.1f} s")
        print(f"rewrite erasure         {rewrite:8.1f} s  (DELETE {delete:.1f} s + purge {purged:.1f} s; "
              f"{rewritten} of {files} files rewritten)  = {rewrite / scan:.1f} x a scan")
        print(f"crypto-shredding        {shred:8.1f} s  (one key row)  = {rewrite / shred:.1f} x faster than the "
              "rewrite")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        spark.stop()


if __name__ == "__main__":
    main()
