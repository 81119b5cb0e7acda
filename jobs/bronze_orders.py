"""Bronze orders: Kafka topic `orders` -> bronze.orders_raw, exactly once across restarts.

Exactly-once in one place: Kafka offsets live in this query's checkpoint, and every micro-batch is committed
with the Delta transaction id (app id, batch id), so a batch replayed after a crash is skipped."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

if __package__ in (None, ""):  # spark-submit jobs/bronze_orders.py
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from lakehouse.config import get_settings
from lakehouse.job import job_context, parser, run_main
from lakehouse.services.broker import require_broker
from lakehouse.sources.kafka import read_kafka_stream
from lakehouse.streaming import run_until_caught_up
from transformations.bronze.kafka_records import kafka_to_bronze

TABLE = "bronze.orders_raw"
APP_ID = "bronze_orders"
log = logging.getLogger(APP_ID)


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--topic", default="orders")
    p.add_argument("--trigger", choices=["available-now", "continuous"], default="available-now",
                   help="available-now: ingest what is there and stop; continuous: micro-batch every --interval")
    p.add_argument("--interval", default="5 seconds")
    p.add_argument("--max-offsets-per-trigger", type=int, default=None)
    p.add_argument("--timeout", type=float, default=None, help="continuous: stop after this many seconds")
    args = p.parse_args(argv)

    require_broker(get_settings().kafka_bootstrap)  # fail fast, before a Spark session starts
    ctx = job_context(APP_ID)
    options = {"failOnDataLoss": "true"}
    if args.max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(args.max_offsets_per_trigger)
    records = read_kafka_stream(ctx.spark, ctx.settings, args.topic, options)

    def write(batch, batch_id: int) -> None:
        written = ctx.tables.write_batch(kafka_to_bronze(batch), TABLE, APP_ID, batch_id, partition_by=["ingest_date"])
        log.info("batch %s %s", batch_id, "committed" if written else "already committed: skipped")

    def start(trigger: dict[str, object]):
        writer = (
            records.writeStream.queryName(APP_ID)
            .foreachBatch(write)
            .option("checkpointLocation", ctx.settings.checkpoint(APP_ID))
        )
        return writer.trigger(**trigger).start()

    if args.trigger == "available-now":
        run_until_caught_up(lambda: start({"availableNow": True}), ctx.settings.checkpoint(APP_ID))
    else:
        query = start({"processingTime": args.interval})
        if args.timeout is not None:
            query.awaitTermination(args.timeout)
            query.stop()
        else:
            query.awaitTermination()
    if ctx.tables.exists(TABLE):
        ctx.tables.register(TABLE)


if __name__ == "__main__":
    sys.exit(run_main(main))
