"""Real-time inventory: reservation events and ERP stock changes from Kafka -> positions per sku x warehouse on
the topic `inventory.positions`, oversell alerts on `inventory.alerts`, seconds after the event
(benchmarks/inventory_freshness.py).

One Structured Streaming query reads the raw `inventory` topic and the ERP's Debezium topic for its `inventory`
table, checks events as silver does (dead-letter rules of bronze, the family's JSON Schema, the catalogue, the
quarantine expectations of the silver.inventory_events suite; rejected events are left to bronze and silver,
which keep them with their reasons), drops re-deliveries of an event id, and folds the movements into positions
(transformations.gold.realtime_inventory) in a stateful aggregation whose state lives in the RocksDB state store.
Every micro-batch publishes the positions it changed (key `<sku>|<warehouse_id>`; the last one per key is the
current position) and an alert for each of those whose available_to_sell is negative.

The per-channel table gold.inventory_positions is maintained from silver by gold_commerce; summed over channels it
equals the last position of every key here (tests/e2e/test_demo.py checks that on the demo's streams).

Delivery is at least once: after a crash a micro-batch may be published again, with the same positions (the
query resumes from its checkpoint; positions are states, so a repeat changes no consumer's view). Re-deliveries
of an event are recognised for `--dedupe-hours` of Kafka time (state kept that long; silver recognises them
forever). The catalogue and warehouse codes are those of the query's start, refreshed by a restart when they
change (`run`): an event of a sku added to the ERP in the meantime is judged against the catalogue as it was.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

if __package__ in (None, ""):  # spark-submit jobs/inventory_realtime.py
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import cdc
from lakehouse.cdc.specs import load_specs
from lakehouse.config import get_settings
from lakehouse.job import JobContext, job_context, parser, require_kafka, require_tables, run_main
from lakehouse.quality.gate import split_rows
from lakehouse.quality.suites import load_suite
from lakehouse.sources.kafka import producer_options, read_kafka_stream
from lakehouse.sources.kafka_admin import create_topics
from lakehouse.streaming import run_query
from transformations.bronze.events import DEFAULT_MAX_BYTES, dead_letter_reason
from transformations.gold.realtime_inventory import (
    position_records,
    positions,
    reservation_movements,
    stock_movements,
)
from transformations.silver.cdc import parse_envelopes, table_changes
from transformations.silver.conformance import SCHEMA_VIOLATION, with_schema_violation, with_sku_check
from transformations.silver.events import parse_inventory_events
from transformations.silver.orders import PARSE_ERROR, RAW

APP_ID = "inventory_realtime"
POSITIONS_TOPIC, ALERTS_TOPIC = "inventory.positions", "inventory.alerts"
EVENTS_SUITE = "silver.inventory_events"
CATALOGUE, WAREHOUSES = "silver.products", "silver.warehouses"
ROCKSDB = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"


def reservations(records: DataFrame, max_bytes: int, catalogue: DataFrame, dedupe: str) -> DataFrame:
    """Kafka records of the inventory topic -> reservation movements of the events silver would keep (catalogue:
    its distinct skus)."""
    kept = records.where(dead_letter_reason(F.col("value"), max_bytes).isNull())
    parsed = parse_inventory_events(kept.withColumn("ingested_at", F.col("timestamp")))  # Kafka time: produced
    checked = with_schema_violation(parsed, RAW, "inventory").where(F.col(PARSE_ERROR).isNull())
    checked = with_sku_check(checked, catalogue)
    valid, _ = split_rows(checked, load_suite(EVENTS_SUITE).by_severity("quarantine"))
    events = (valid.drop(RAW, SCHEMA_VIOLATION, "unknown_sku").withColumnRenamed("ingested_at", "produced_at")
              .withWatermark("produced_at", dedupe).dropDuplicatesWithinWatermark(["event_id"]))
    return reservation_movements(events)


def stock(records: DataFrame, warehouses: DataFrame) -> DataFrame:
    """Kafka records of the ERP inventory topic -> stock movements (produced_at: the commit time in the ERP)."""
    changes, _ = table_changes(parse_envelopes(records), load_specs()["inventory"])
    return stock_movements(changes.withColumn("produced_at", F.col("_source_ts")), warehouses)


def references(ctx: JobContext) -> tuple[DataFrame, DataFrame]:
    """The catalogue's skus and the warehouse codes, as silver and gold read them."""
    return (ctx.tables.read(CATALOGUE).select("sku").distinct(),
            ctx.tables.read(WAREHOUSES).select("warehouse_id", "code"))


def fingerprint(frames: tuple[DataFrame, ...]) -> tuple:
    """Row count and XOR of row hashes of each frame (small; equal when the rows are)."""
    return tuple(tuple(df.agg(F.count(F.lit(1)), F.bit_xor(F.xxhash64(*df.columns))).first()) for df in frames)


def run(ctx: JobContext, topic_prefix: str = "", continuous: bool = False, interval: str = "500 milliseconds",
        timeout: float | None = None, max_bytes: int = DEFAULT_MAX_BYTES, dedupe_hours: float = 24.0,
        checkpoint: str | None = None, check_every: float = 30.0) -> None:
    """Run the query (available-now by default: fold what is there, publish, stop).

    The catalogue and the warehouse codes are read when the query starts and cached: reading the two Delta
    tables in every micro-batch took ~1 s of a 2.7 s micro-batch (2 cores). Continuous, their Delta versions are
    looked at every `check_every` s; when their rows changed, the query restarts from its checkpoint with them."""
    settings, spark = ctx.settings, ctx.spark
    events_topic, stock_topic = f"{topic_prefix}inventory", cdc.topic("inventory")
    create_topics(settings.kafka_bootstrap, [events_topic, stock_topic, POSITIONS_TOPIC, ALERTS_TOPIC],
                  partitions=2)
    spark.conf.set("spark.sql.streaming.stateStore.providerClass", ROCKSDB)
    # state partitions (fixed when the checkpoint is created): one per core, so a micro-batch is one wave of
    # tasks; each partition's state commit costs ~0.1 s a micro-batch (2 cores: 2.4 s micro-batches with 4, 1.3 s
    # with 2)
    spark.conf.set("spark.sql.shuffle.partitions", str(spark.sparkContext.defaultParallelism))
    # a commit writes the micro-batch's changes instead of a snapshot of the state (measured ~1 s -> ~0.4 s)
    spark.conf.set("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled", "true")
    records = read_kafka_stream(spark, settings, f"{events_topic},{stock_topic}", {"failOnDataLoss": "true"})
    dedupe = f"{dedupe_hours * 3600:.0f} seconds"
    cached: list[DataFrame] = []
    seen: dict[str, tuple] = {}

    def start(trigger: dict[str, object]):  # noqa: ANN202 - a StreamingQuery
        for df in cached:
            df.unpersist()
        cached[:] = [df.cache() for df in references(ctx)]
        catalogue, warehouses = cached
        seen.update(versions=(ctx.tables.version(CATALOGUE), ctx.tables.version(WAREHOUSES)),
                    rows=fingerprint((catalogue, warehouses)))
        movements = reservations(records.where(F.col("topic") == events_topic), max_bytes, catalogue, dedupe) \
            .unionByName(stock(records.where(F.col("topic") == stock_topic), warehouses))
        out = position_records(positions(movements), POSITIONS_TOPIC, ALERTS_TOPIC)
        return (out.writeStream.queryName(APP_ID).format("kafka").outputMode("update")
                .options(**producer_options(settings))
                .option("checkpointLocation", checkpoint or settings.checkpoint(APP_ID))
                .trigger(**trigger).start())

    def references_changed() -> bool:
        versions = (ctx.tables.version(CATALOGUE), ctx.tables.version(WAREHOUSES))
        if versions == seen["versions"]:
            return False
        seen["versions"] = versions
        return fingerprint(references(ctx)) != seen["rows"]

    run_query(spark, start, continuous=continuous, interval=interval, timeout=timeout,
              restart_when=references_changed, check_every=check_every)


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--trigger", choices=["available-now", "continuous"], default="available-now")
    p.add_argument("--interval", default="500 milliseconds", help="continuous: time between micro-batch starts")
    p.add_argument("--timeout", type=float, default=None, help="continuous: stop after this many seconds")
    p.add_argument("--topic-prefix", default="", help="prefix of the event topics (as the generator's)")
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="bronze's dead-letter size limit")
    p.add_argument("--dedupe-hours", type=float, default=24.0, help="how long re-deliveries are recognised")
    p.add_argument("--checkpoint", default=None, help="default: <tables root>/_checkpoints/inventory_realtime")
    p.add_argument("--check-every", type=float, default=30.0,
                   help="continuous: seconds between looks at the catalogue and warehouses (restart on a change)")
    args = p.parse_args(argv)
    require_kafka(get_settings(), wait_s=5.0 if args.trigger == "continuous" else None)
    require_tables(CATALOGUE, WAREHOUSES, hint="run silver_cdc first (the catalogue and warehouses)",
                   wait_s=5.0 if args.trigger == "continuous" else None)
    ctx = job_context(APP_ID)
    run(ctx, args.topic_prefix, args.trigger == "continuous", args.interval, args.timeout, args.max_bytes,
        args.dedupe_hours, args.checkpoint, args.check_every)


if __name__ == "__main__":
    sys.exit(run_main(main))
