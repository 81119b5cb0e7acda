"""Silver replay: bronze rows ingested in a time range -> silver again, with today's transformations, suites and
reference data (a logic fix, a corrected catalogue or FX rate, a changed suite), then gold.

Per family (`lakehouse backfill --from bronze --since T [--until U]`):

1. the bronze.<family>_events rows with `since <= ingested_at < until` pass the family's bronze suite, are
   conformed as silver_events conforms them (lateness against the watermark the stream had reached just before
   the range: the latest event time silver holds for earlier offsets of each Kafka partition) and pass the silver
   suite; a blocking failure stops the replay before anything is written;
2. silver.<family>_events takes the outcome by one MERGE on event id: events that pass are updated (or inserted,
   e.g. once quarantined), events now quarantined are deleted;
3. silver.events_quarantine takes it by one MERGE on the Kafka coordinates: the range's quarantine rows are
   replaced (rows that now pass are deleted, new reasons updated or inserted);
4. the gates' results go to ops.quality_results / ops.quality_validations (app id silver_replay:<family>).

Then gold_commerce's query (available-now, or its running stage) brings gold to the new silver versions: the
replay's updates and deletes are in the silver change data feeds it reads (positions of the keys the replay
touched, the other tables recomputed). Each MERGE sets the rows to what the range gives, so a replay cut short is
completed by running it again, and a replay run twice changes nothing the second time. The stream's watermarks are
not moved (the range's events were seen before). It may run beside the always-on pipeline: a MERGE that Delta
refuses because the silver_events stage committed to the same table meanwhile is made again (`retry_on_conflict`),
and a micro-batch that loses to the replay fails and is run again from its checkpoint
(lakehouse.streaming.run_query)."""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.silver_events import CHECK_COLUMNS, QUARANTINE, conformed, gate_batch, rejected_events, silver_table
from lakehouse.errors import LakehouseError
from lakehouse.ingest import family_table as bronze_table
from lakehouse.job import JobContext
from lakehouse.quality.gate import GateResult
from lakehouse.quality.ops import gate_writes, raise_if_blocked
from lakehouse.tables import MergeSpec
from lakehouse.tables.concurrent import commit_all, retry_on_conflict
from transformations.silver.conformance import WATERMARK_KEY
from transformations.silver.events import split_parse_errors

APP_ID = "silver_replay"
KEEP = "_replay_keep"  # source rows of the silver MERGE: true = set the event, false = delete it
COORDINATES = ["source_topic", "source_partition", "source_offset"]
log = logging.getLogger(APP_ID)


@dataclass
class ReplayResult:
    family: str
    rows: int  # bronze rows in the range
    valid: int  # events in silver for the range after the replay
    quarantined: int  # quarantine rows for the range after the replay

    def summary(self) -> str:
        return f"{self.family}: {self.rows:,} bronze rows -> {self.valid:,} in silver, {self.quarantined:,} quarantined"


def parse_time(text: str) -> dt.datetime:
    """An ISO date or timestamp (UTC when it has no offset) -> an aware datetime; a clear error otherwise."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise LakehouseError(
            f"not an ISO date or timestamp: {text!r} (e.g. 2026-11-01 or 2026-11-01T06:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def time_range(since: str, until: str | None) -> tuple[dt.datetime, dt.datetime | None]:
    """`--since` / `--until` as the replay's [since, until) (checked before any Spark session starts)."""
    start, end = parse_time(since), parse_time(until) if until else None
    if end is not None and end <= start:
        raise LakehouseError(f"--until {until} is not after --since {since}: the range is empty")
    return start, end


def in_range(df: DataFrame, since: dt.datetime, until: dt.datetime | None) -> DataFrame:
    """Rows with since <= ingested_at < until (no upper bound when `until` is None)."""
    kept = df.where(F.col("ingested_at") >= F.lit(since))
    return kept if until is None else kept.where(F.col("ingested_at") < F.lit(until))


def prior_watermarks(silver: DataFrame, bronze_range: DataFrame) -> DataFrame:
    """Per Kafka partition of the range, the latest event time silver holds for offsets before the range's first:
    the watermark the stream had reached when it first processed the range (rows silver quarantined are not in
    it, a slight under-estimate)."""
    starts = bronze_range.groupBy(F.col("topic").alias("source_topic"), F.col("partition").alias(
        "source_partition")).agg(F.min("offset").alias("_start"))
    earlier = silver.join(starts, WATERMARK_KEY).where(F.col("source_offset") < F.col("_start"))
    return earlier.groupBy(*WATERMARK_KEY).agg(F.max("event_time").alias("max_event_time"))


def silver_changes(valid: DataFrame, quarantined: DataFrame) -> DataFrame:
    """The silver MERGE's source: every event that passed (KEEP true) and the ids of those now quarantined (false)."""
    dropped = quarantined.select("event_id").where(F.col("event_id").isNotNull()).distinct()
    keep = valid.withColumn(KEEP, F.lit(True))
    return keep.unionByName(dropped.withColumn(KEEP, F.lit(False)), allowMissingColumns=True)


def quarantine_changes(bronze_range: DataFrame, rejected: DataFrame) -> DataFrame:
    """The quarantine MERGE's source: one row per bronze coordinate of the range, with its new quarantine row's
    columns (reason null: the row passes now, and its old quarantine row goes)."""
    coordinates = bronze_range.select(F.col("topic").alias("source_topic"),
                                      F.col("partition").alias("source_partition"),
                                      F.col("offset").alias("source_offset"))
    return coordinates.join(rejected, COORDINATES, "left")


SILVER_MERGE = MergeSpec(on="t.event_id = s.event_id", delete_when=f"NOT s.{KEEP}", update_when=f"s.{KEEP}",
                         insert_when=f"s.{KEEP}")


def quarantine_merge(target: str) -> MergeSpec:
    on = " AND ".join([f"t.target_table = '{target}'", *(f"t.{c} = s.{c}" for c in COORDINATES)])
    return MergeSpec(on=on, delete_when="s.reason IS NULL", update_when="s.reason IS NOT NULL",
                     insert_when="s.reason IS NOT NULL")


def _gate(ctx: JobContext, release: ExitStack, df: DataFrame, suite: str, batch_id: int) -> GateResult:
    """silver_events' gate, its cached input released with the replay's other caches."""
    gate = gate_batch(ctx, df, suite, batch_id)
    release.callback(gate.release)
    return gate


def replay_family(ctx: JobContext, family: str, since: dt.datetime, until: dt.datetime | None = None
                  ) -> ReplayResult | None:
    """Replay the family's bronze rows ingested in [since, until) through silver (None: no rows in the range)."""
    tables, source, target = ctx.tables, bronze_table(family), silver_table(family)
    if not tables.exists(source) or not tables.exists(target):
        log.info("%s or %s does not exist: nothing to replay", source, target)
        return None
    batch_id = int(time.time())  # the gates' records of this replay (a later replay records its own)
    app = f"{APP_ID}:{family}"
    with ExitStack() as release:
        bronze = in_range(tables.read(source), since, until).cache()
        release.callback(bronze.unpersist)
        rows = bronze.count()
        if not rows:
            return None
        gates = [_gate(ctx, release, bronze, source, batch_id)]
        if not gates[0].blocked:
            prior = prior_watermarks(tables.read(target), bronze)
            checked = conformed(ctx, family, bronze, prior).cache()
            release.callback(checked.unpersist)
            events, unparseable = split_parse_errors(checked)
            gates.append(_gate(ctx, release, events, target, batch_id))
        commit_all(tables, gate_writes(tables, gates, app, batch_id, ctx.settings.data_docs_index))
        for gate in gates:
            raise_if_blocked(gate, target)
        gate = gates[1]
        rejected = rejected_events(ctx, unparseable, gate, target).cache()
        release.callback(rejected.unpersist)
        # silver first: cut short between the two, an event moving out of the quarantine is in both until the
        # replay is run again, never in neither
        changes = silver_changes(gate.valid.drop(*CHECK_COLUMNS), gate.quarantined)
        retry_on_conflict(lambda: tables.merge(changes, target, SILVER_MERGE), f"replay {target}")
        retry_on_conflict(lambda: tables.merge(quarantine_changes(bronze, rejected), QUARANTINE,
                                               quarantine_merge(target)), f"replay {QUARANTINE}")
        result = ReplayResult(family, rows, gate.valid.count(), rejected.count())
    log.info("replayed %s", result.summary())
    return result


def replay(ctx: JobContext, families: Sequence[str], since: dt.datetime, until: dt.datetime | None = None
           ) -> list[ReplayResult]:
    """`replay_family` for each family, one after another (each family's MERGEs are its own)."""
    return [r for family in families if (r := replay_family(ctx, family, since, until)) is not None]
