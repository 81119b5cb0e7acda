"""Bronze CDC: the ERP topics (erp.public.*) -> bronze.erp_cdc_raw, raw Debezium envelopes, exactly once.

Same shape and guarantees as bronze_orders: Kafka offsets in this query's checkpoint, every micro-batch
committed with the Delta transaction id (app id, batch id); tombstones are kept as rows with a null value.
Subscribes by pattern, so a table the platform does not model (a new topic) lands here too and silver
dead-letters it instead of it being lost."""

from __future__ import annotations

import sys
from collections.abc import Sequence

if __package__ in (None, ""):  # spark-submit jobs/bronze_cdc.py
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from lakehouse.cdc import TOPIC_PATTERN, all_topics
from lakehouse.config import get_settings
from lakehouse.job import JobContext, job_context, parser, require_kafka, run_main
from lakehouse.sources.kafka_admin import create_topics
from lakehouse.streaming import run_kafka_to_table
from transformations.bronze.kafka_records import kafka_to_bronze

TABLE = "bronze.erp_cdc_raw"
APP_ID = "bronze_cdc"


def ingest(ctx: JobContext, continuous: bool = False, interval: str = "5 seconds",
           max_offsets: int | None = None, timeout: float | None = None, checkpoint: str | None = None) -> None:
    """Ingest every topic matching TOPIC_PATTERN into bronze (available-now by default, or micro-batches every
    `interval`); topics created later are picked up from their first offset."""
    create_topics(ctx.settings.kafka_bootstrap, all_topics(), partitions=2)  # Debezium's partition count
    run_kafka_to_table(
        ctx, TOPIC_PATTERN, TABLE, APP_ID, kafka_to_bronze, continuous=continuous, interval=interval,
        max_offsets=max_offsets, timeout=timeout, checkpoint=checkpoint, partition_by=["ingest_date"], pattern=True,
        register=True,
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--trigger", choices=["available-now", "continuous"], default="available-now")
    p.add_argument("--interval", default="5 seconds")
    p.add_argument("--max-offsets-per-trigger", type=int, default=None)
    p.add_argument("--timeout", type=float, default=None, help="continuous: stop after this many seconds")
    p.add_argument("--checkpoint", default=None, help="default: <tables root>/_checkpoints/bronze_cdc")
    args = p.parse_args(argv)
    require_kafka(get_settings(), wait_s=5.0 if args.trigger == "continuous" else None)
    ctx = job_context(APP_ID)
    ingest(ctx, args.trigger == "continuous", args.interval, args.max_offsets_per_trigger, args.timeout,
           args.checkpoint)


if __name__ == "__main__":
    sys.exit(run_main(main))
