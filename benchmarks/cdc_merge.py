"""Benchmark (not a test): Debezium capture rate vs changes/s merged into silver (target >= 20,000 changes/s).

Uses the stack of $LAKEHOUSE_HOME (`lakehouse cdc start` is run for you): commits a burst-heavy workload,
times the capture (workload start -> Kafka quiet), ingests bronze, then times one whole silver_cdc run over all new
envelopes (the bronze structure gate, the MERGEs, the mirrors' suites over what changed: `jobs.silver_cdc.run`)
and checks silver against PostgreSQL. Run it twice on the same $LAKEHOUSE_HOME to measure on a populated silver.

    LAKEHOUSE_HOME=/tmp/lh-bench .venv/bin/python benchmarks/cdc_merge.py --transactions 400 --burst-size 500
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("LAKEHOUSE_BENCH_REPO") or str(Path(__file__).resolve().parent.parent))

from lakehouse.cdc import capture, published, workload  # noqa: E402
from lakehouse.config import get_settings  # noqa: E402
from lakehouse.services import broker, postgres  # noqa: E402


def main() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("silver_cdc").setLevel(logging.INFO)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transactions", type=int, default=400)
    p.add_argument("--burst-size", type=int, default=500)
    p.add_argument("--burst-every", type=int, default=2)
    p.add_argument("--seed", type=int, default=99)
    p.add_argument("--stop", action="store_true", help="stop the capture, PostgreSQL and the broker at the end")
    args = p.parse_args()
    settings = get_settings()
    settings.ensure_dirs()
    broker.start_broker(settings)
    cfg = postgres.pg_config(settings)
    postgres.start(cfg)
    with postgres.connect(cfg) as conn:
        workload.seed(conn, products=2000, customers=3000)
    capture.start_capture(settings, cfg)
    import jobs.bronze_cdc as bronze
    import jobs.silver_cdc as silver
    from lakehouse.cdc import wait_quiet
    from lakehouse.cdc.verify import differences
    from lakehouse.job import job_context

    ctx = job_context("cdc-merge-benchmark")
    wait_quiet(settings.kafka_bootstrap, timeout=600)
    bronze.ingest(ctx)
    populated = _silver_run(silver, ctx)  # a populated silver: the seeded snapshot (and earlier runs) applied
    print(f"populate: {populated.get('envelopes')} envelopes in {populated.get('seconds')} s")

    before = published(settings.kafka_bootstrap)
    started = time.perf_counter()
    with postgres.connect(cfg) as conn:
        report = workload.Workload(conn, seed=args.seed, burst_every=args.burst_every,
                                   burst_size=args.burst_size).run(args.transactions)
    committed = time.perf_counter() - started
    last, last_change = -1, time.perf_counter()
    while time.perf_counter() - last_change < 3:
        total = published(settings.kafka_bootstrap)
        if total != last:
            last, last_change = total, time.perf_counter()
        time.sleep(0.2)
    captured = last - before
    capture_s = last_change - started
    print(f"workload: {report.changes} row changes in {report.transactions} transactions, committed in {committed:.1f} s")
    print(f"capture:  {captured} records (incl. tombstones) in {capture_s:.1f} s = {captured / capture_s:,.0f} records/s")

    t = time.perf_counter()
    bronze.ingest(ctx)
    print(f"bronze:   {time.perf_counter() - t:.1f} s")
    rows = {t: ctx.tables.row_count(t) for t in ("silver.products", "silver.customers_history")
            if ctx.tables.exists(t)}
    print(f"silver before the run: {rows}")
    stats = _silver_run(silver, ctx)
    if stats:
        rate = stats["envelopes"] / stats["seconds"]
        print(f"silver:   {stats['envelopes']} envelopes applied and validated in {stats['seconds']} s "
              f"({stats['batches']} micro-batches) = {rate:,.0f} changes/s (target 20,000; capture {captured / capture_s:,.0f}/s)")
    with postgres.connect(cfg) as conn:
        diff = differences(conn, ctx.tables)
    print("equal to PostgreSQL:", all(d[1] == d[2] == 0 for d in diff.values()), diff)
    if args.stop:
        capture.stop_capture(settings)
        postgres.stop(cfg)
        broker.stop_broker(settings)


def _silver_run(silver, ctx) -> dict:  # noqa: ANN001
    """One whole silver_cdc run (`run`: the bronze gate, the MERGEs, the mirrors' suites per micro-batch)."""
    return silver.run(ctx)


if __name__ == "__main__":
    main()
