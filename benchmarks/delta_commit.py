"""Benchmark (not a test): the fixed latency of one small Delta commit, the unit every job step pays many times
(ops records, quarantine, watermarks, state tables).

In one Spark session, interleaved so that machine noise hits every variant alike, it appends `--rows` rows
`--commits` times to a table per variant:

* `txn, 4 partitions` (the baseline): an idempotent append (`txnAppId`/`txnVersion`, as every job writes) with
  Delta's log replay in 4 partitions (this project's setting before 2026-12-03);
* `txn, settings`: the same with the session's `spark.databricks.delta.snapshotPartitions` (Settings);
* `plain, settings`: an append without a transaction id (no log replay to look the id up).

It prints the mean and median seconds per commit (the first `--warmup` commits of each variant left out) and each
variant's ratio to the baseline.

    LAKEHOUSE_HOME=/tmp/lh-bench .venv/bin/python benchmarks/delta_commit.py --commits 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SNAPSHOT_PARTITIONS = "spark.databricks.delta.snapshotPartitions"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--commits", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rows", type=int, default=5)
    args = p.parse_args()

    import pyarrow as pa

    from lakehouse.config import get_settings
    from lakehouse.spark import get_spark

    settings = get_settings()
    spark = get_spark("delta_commit_benchmark", settings)
    rows = pa.Table.from_pylist([{"suite": "s", "n": i, "ok": True} for i in range(args.rows)])
    variants = {  # name -> (snapshot partitions, idempotent)
        "txn, 4 partitions": ("4", True),
        f"txn, settings ({settings.snapshot_partitions} partitions)": (str(settings.snapshot_partitions), True),
        f"plain, settings ({settings.snapshot_partitions} partitions)": (str(settings.snapshot_partitions), False),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="delta-commit-", dir=settings.home) as root:
        for i in range(args.warmup + args.commits):
            for n, (name, (partitions, idempotent)) in enumerate(variants.items()):
                spark.conf.set(SNAPSHOT_PARTITIONS, partitions)
                started = time.perf_counter()
                writer = spark.createDataFrame(rows).write.format("delta").mode("append")
                if idempotent:
                    writer = writer.option("txnAppId", "benchmark").option("txnVersion", i)
                writer.save(f"{root}/t{n}")
                if i >= args.warmup:
                    seconds[name].append(time.perf_counter() - started)
    spark.conf.set(SNAPSHOT_PARTITIONS, str(settings.snapshot_partitions))
    baseline = statistics.mean(next(iter(seconds.values())))
    print(f"{args.commits} commits of {args.rows} rows per variant (after {args.warmup} warm-up commits)")
    for name, values in seconds.items():
        mean = statistics.mean(values)
        print(f"  {name:32s} mean {mean:6.3f} s  median {statistics.median(values):6.3f} s  "
              f"ratio to baseline {mean / baseline:5.2f}")


if __name__ == "__main__":
    main()
