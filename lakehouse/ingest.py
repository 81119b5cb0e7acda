"""Kafka -> bronze for the event families: what one ingest query reads and writes, its micro-batch writer and
the run itself (jobs.bronze_events is the command-line wrapper).

`family="all"` reads every family's topic with one `subscribePattern` query and routes records by topic; a
family name reads that family's topic only (one query per family, scale-out). Records that cannot be events
(oversized, not UTF-8, not JSON, empty) go to the dead-letter table with a reason and their Kafka coordinates.

Classification (`transformations.bronze.events.classify`) is Spark expressions only, on the records Spark's
Kafka connector delivers: nothing crosses to Python. A micro-batch is one Spark job that classifies, caches and
counts it per table, then one concurrent write per table that receives rows (`write_split`).

Exactly once: Kafka offsets live in the query's checkpoint, and every table write of a micro-batch is
committed with the Delta transaction id (app id, batch id), so a replayed batch is skipped per table. The app
id is `bronze_events_<family|all>`; use one mode per deployment (`check_single_mode` refuses to mix them).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.events.schemas import FAMILIES
from lakehouse.py4j_refs import collect_cycles
from lakehouse.sources.kafka import consumer_options
from lakehouse.tables import DeltaTables
from lakehouse.tables.split import write_split
from transformations.bronze.events import (
    DEAD_LETTER_COLUMNS,
    DEFAULT_MAX_BYTES,
    EVENT_BRONZE_COLUMNS,
    classify,
)

DEAD_LETTER_TABLE = "bronze.dead_letter"
ROUTE_COLUMN = "_route"  # family name for good records, DEAD_LETTER_ROUTE for the rest
DEAD_LETTER_ROUTE = "\x00dead_letter"  # cannot be a family name
log = logging.getLogger("bronze_events")


def family_table(family: str) -> str:
    return f"bronze.{family}_events"


@dataclass
class IngestSpec:
    """What one bronze_events query reads and writes (tests override topics, tables and checkpoint)."""

    family: str = "all"  # a family name or "all"
    topic_prefix: str = ""
    tables: dict[str, str] = field(default_factory=dict)  # family -> table (default bronze.<family>_events)
    dead_letter_table: str = DEAD_LETTER_TABLE
    checkpoint: str | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    max_offsets_per_trigger: int | None = None
    starting_offsets: str = "earliest"

    @property
    def families(self) -> list[str]:
        if self.family == "all":
            return list(FAMILIES)
        if self.family not in FAMILIES:
            raise LakehouseError(f"unknown family {self.family!r}; families are all, {', '.join(FAMILIES)}")
        return [self.family]

    @property
    def app_id(self) -> str:
        return f"bronze_events_{self.family}"

    def table(self, family: str) -> str:
        return self.tables.get(family) or family_table(family)

    def output_tables(self) -> list[str]:
        return [self.table(f) for f in self.families] + [self.dead_letter_table]

    def topic_to_family(self) -> dict[str, str]:
        return {f"{self.topic_prefix}{f}": f for f in self.families}


@dataclass
class BatchStats:
    batch_id: int
    rows: int = 0
    by_table: dict[str, int] = field(default_factory=dict)
    read_write_s: float = 0.0


def check_single_mode(tables: DeltaTables, spec: IngestSpec) -> None:
    """Refuse to mix `--family all` and per-family queries on the same tables (that would duplicate rows)."""
    others = ["bronze_events_all"] if spec.family != "all" else [f"bronze_events_{f}" for f in FAMILIES]
    for fam in spec.families:
        name = spec.table(fam)
        if not tables.exists(name):
            continue
        for other in others:
            if other != spec.app_id and tables.committed_batch(name, other) is not None:
                raise LakehouseError(
                    f"{name} is already written by {other}; run bronze_events in one mode (all or per family)"
                )


def classify_and_route(records: DataFrame, routes: dict[str, str], max_bytes: int,
                       ingested_at: dt.datetime) -> DataFrame:
    """Kafka rows -> classified bronze rows + the route column (family, or the dead-letter route)."""
    rows = classify(records, routes, max_bytes, ingested_at)
    route = F.when(F.col("reason").isNull(), F.col("event_family")).otherwise(F.lit(DEAD_LETTER_ROUTE))
    return rows.withColumn(ROUTE_COLUMN, route)


def make_batch_writer(
    tables: DeltaTables, spec: IngestSpec, stats: list[BatchStats], registered: set[str] | None = None
) -> Callable[[DataFrame, int], None]:
    """The foreachBatch function: classify the batch and write every non-empty family table and the dead letters
    (`write_split`), every table commit keyed by (app id, batch id). With `registered`, a table written that is
    not in it is registered in the catalog right after the batch's commits (`register_new`): selectable by name
    while the query runs."""
    routes = spec.topic_to_family()
    outputs = {fam: (spec.table(fam), EVENT_BRONZE_COLUMNS) for fam in spec.families}
    outputs[DEAD_LETTER_ROUTE] = (spec.dead_letter_table, DEAD_LETTER_COLUMNS)

    def write(batch: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        st = BatchStats(batch_id)
        routed = classify_and_route(batch, routes, spec.max_bytes, dt.datetime.now(dt.UTC))
        counts = write_split(tables, routed, ROUTE_COLUMN, outputs, spec.app_id, batch_id,
                             partition_by=["ingest_date"])
        st.rows = sum(counts.values())
        for key, (name, _) in outputs.items():
            if counts.get(key):
                st.by_table[name] = counts[key]
        if registered is not None:
            tables.register_new(st.by_table, registered)
        st.read_write_s = time.perf_counter() - started
        stats.append(st)
        log.info("batch %s: %s rows in %.1f s %s", batch_id, st.rows, st.read_write_s, st.by_table)
        collect_cycles()

    return write


def family_topic_options(spark: SparkSession, settings: Settings, spec: IngestSpec, continuous: bool
                         ) -> dict[str, str]:
    """Kafka stream options for the spec's family topics (headers included: bronze keeps them), with
    `consumer_options` (the settings' Kafka client options: authentication, $LAKEHOUSE_KAFKA_OPTIONS)."""
    options = {
        **consumer_options(settings),
        "startingOffsets": spec.starting_offsets,
        "includeHeaders": "true",
        "failOnDataLoss": "true",
    }
    if spec.family == "all":
        # anchored: Spark's Kafka source keeps every topic the pattern is *found in*, so an unanchored pattern
        # with the empty prefix also read `erp.public.inventory` (CDC) and `inventory.positions` (our output)
        names = "|".join(re.escape(f) for f in spec.families)
        options["subscribePattern"] = f"^{re.escape(spec.topic_prefix)}({names})$"
    else:
        options["subscribe"] = f"{spec.topic_prefix}{spec.family}"
    if spec.max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(spec.max_offsets_per_trigger)
    return options


def ingest(
    spark: SparkSession, tables: DeltaTables, settings: Settings, spec: IngestSpec, continuous: bool = False,
    interval: str = "5 seconds", timeout: float | None = None, register: bool = False,
) -> list[BatchStats]:
    """Run the bronze query (available-now until caught up, or continuous); returns per-batch stats. With
    `register`, the output tables are registered in the catalog: those that exist before the query starts, the
    others as soon as a micro-batch creates them."""
    from lakehouse.sources.kafka import kafka_format
    from lakehouse.streaming import run_query

    check_single_mode(tables, spec)
    stats: list[BatchStats] = []
    options = family_topic_options(spark, settings, spec, continuous)
    records = spark.readStream.format(kafka_format(spark)).options(**options).load()
    registered: set[str] | None = None
    if register:
        registered = set()
        tables.register_new(spec.output_tables(), registered)
    writer_fn = make_batch_writer(tables, spec, stats, registered)
    checkpoint = spec.checkpoint or settings.checkpoint(spec.app_id)

    def start(trigger: dict[str, object]):
        return (
            records.writeStream.queryName(f"{spec.app_id}_{time.time_ns()}")
            .foreachBatch(writer_fn)
            .option("checkpointLocation", checkpoint)
            .trigger(**trigger)
            .start()
        )

    run_query(spark, start, continuous=continuous, interval=interval, timeout=timeout)
    return stats
