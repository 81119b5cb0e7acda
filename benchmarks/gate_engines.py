"""Benchmark (not a test): the quality gate on GX's Spark engine against GX's pandas engine, same batches, same run.

Generates the multi-family event stream, classifies it as bronze does and conforms it as silver_events does, then
gates one micro-batch per family (`--rows` events) against its bronze and silver suites `--repeat` times on each
engine. Reports the median gate seconds per suite and engine, and the ratio spark / pandas. Reference tables
(catalogue, FX history) come from the embedded default's tables (missing ones: the checks see no rows).

    LAKEHOUSE_HOME=/tmp/lh-bench .venv/bin/python benchmarks/gate_engines.py --rows 200 --repeat 5
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200, help="events per family batch (about)")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from pyspark.sql import functions as F
    from silver_gate_share import bronze_batches

    from jobs.silver_events import WATERMARK_SCHEMA, bronze_table, conformed, silver_table
    from lakehouse.events import FAMILIES
    from lakehouse.events.generator import StreamConfig, generate_stream
    from lakehouse.job import job_context
    from lakehouse.quality.gate import run_gate
    from transformations.silver.orders import split_parse_errors

    ctx = job_context("gate_engines")
    rate = args.rows * len(FAMILIES) / 10.0
    stream = generate_stream(StreamConfig(seed=11, rate=rate, duration_s=10.0))
    (batch,) = bronze_batches(ctx.spark, stream, 1)
    prior = ctx.spark.createDataFrame([], WATERMARK_SCHEMA)
    print(f"{'suite':<28} {'rows':>6} {'spark s':>8} {'pandas s':>9} {'ratio':>6}")
    totals = {"spark": 0.0, "pandas": 0.0}
    for family in FAMILIES:
        bronze = batch.where(F.col("event_family") == family).cache()
        events, _ = split_parse_errors(conformed(ctx, family, bronze, prior))
        events = events.cache()
        for df, suite in ((bronze, bronze_table(family)), (events, silver_table(family))):
            rows = df.count()
            seconds = {}
            for engine in ("spark", "pandas"):
                runs = []
                for i in range(args.repeat + 1):  # the first run builds the suite's GX objects: not counted
                    gate = run_gate(df, suite, suite, f"bench-{engine}-{i}", engine=engine)
                    gate.release()
                    if i:
                        runs.append(gate.seconds)
                seconds[engine] = statistics.median(runs)
                totals[engine] += seconds[engine]
            print(f"{suite:<28} {rows:>6} {seconds['spark']:>8.3f} {seconds['pandas']:>9.3f} "
                  f"{seconds['spark'] / seconds['pandas']:>5.1f}x", flush=True)
        bronze.unpersist()
        events.unpersist()
    print(f"all suites: spark {totals['spark']:.2f} s, pandas {totals['pandas']:.2f} s per round of batches "
          f"({totals['spark'] / totals['pandas']:.1f}x)")


if __name__ == "__main__":
    main()
