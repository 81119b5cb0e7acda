"""Bronze orders: Kafka topic `orders` -> bronze.orders_raw, exactly once across restarts
(see lakehouse.streaming.run_kafka_to_table: offsets in the checkpoint + Delta txn id per micro-batch)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

if __package__ in (None, ""):  # spark-submit jobs/bronze_orders.py
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from lakehouse.config import get_settings
from lakehouse.job import job_context, parser, require_kafka, run_main
from lakehouse.streaming import run_kafka_to_table
from transformations.bronze.kafka_records import kafka_to_bronze

TABLE = "bronze.orders_raw"
APP_ID = "bronze_orders"


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--topic", default="orders")
    p.add_argument("--trigger", choices=["available-now", "continuous"], default="available-now",
                   help="available-now: ingest what is there and stop; continuous: micro-batch every --interval")
    p.add_argument("--interval", default="5 seconds")
    p.add_argument("--max-offsets-per-trigger", type=int, default=None)
    p.add_argument("--timeout", type=float, default=None, help="continuous: stop after this many seconds")
    args = p.parse_args(argv)

    require_kafka(get_settings())  # fail fast, before a Spark session starts
    ctx = job_context(APP_ID)
    run_kafka_to_table(
        ctx, args.topic, TABLE, APP_ID, kafka_to_bronze,
        continuous=args.trigger == "continuous", interval=args.interval,
        max_offsets=args.max_offsets_per_trigger, timeout=args.timeout, partition_by=["ingest_date"],
    )
    if ctx.tables.exists(TABLE):
        ctx.tables.register(TABLE)


if __name__ == "__main__":
    sys.exit(run_main(main))
