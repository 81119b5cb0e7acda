"""Silver events: bronze.<family>_events -> silver.<family>_events for every event family, and
bronze.settlements_raw (processor settlement reports from the landing zone) -> silver.settlements, as Structured
Streaming queries on the bronze Delta tables (lakehouse.delta_stream): available-now by default (take what is
there, then stop), or `--trigger continuous` (a micro-batch every `--interval`, as the pipeline's stage).

Per family and micro-batch: the bronze batch passes its structure suite (bronze.<family>_events), then payloads are
typed with the family's schema, checked against the JSON Schema of their declared version, deduplicated on
event id (within the batch here, across batches by the insert-only MERGE), flagged late against a per-partition
event-time watermark, checked against the product catalogue (silver.products, from CDC) and converted to the
reporting currency with the FX rate valid at event time (silver.fx_rates_history, from CDC). The silver suite
then quarantines rows (silver.events_quarantine, with the reason), warns, or blocks the batch: the family's
silver table is left unchanged and its query fails; the next start replays the same micro-batch (an available-now
run raises the error once the other queries are done and the job exits non-zero; continuous, the query starts
again from its checkpoint after a backoff, see lakehouse.streaming.run_query).

A query on bronze.dead_letter checks the new dead letters against their structure suite (warn-only: findings go
to ops.quality_validations; the records are already set aside).

Exactly once: every write of a micro-batch carries the transaction id (the query's app id, batch id), and a
batch cut short is replayed with the same bronze rows and batch id (the query's checkpoint). A query started
without a checkpoint on a home the former version-range runs kept starts after the bronze version they reached.

The queries (families, settlement reports, dead letters) run at once in one driver: each has its own target and
transaction ids, so on a small cluster one's Delta commits and small Spark jobs overlap another's.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from functools import partial

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.delta_stream import DeltaStream, after_marker, run_available_now, run_continuously
from lakehouse.events.schemas import FAMILIES
from lakehouse.ingest import DEAD_LETTER_TABLE as DEAD_LETTERS
from lakehouse.ingest import family_table as bronze_table
from lakehouse.job import JobContext, add_trigger_arguments, job_context, parser, run_main
from lakehouse.quality.gate import REASON_COLUMN, GateResult, run_gate
from lakehouse.quality.ops import RESULTS, VALIDATIONS, gate_writes, raise_if_blocked, validated_up_to
from lakehouse.quality.suites import load_suite
from lakehouse.tables import MergeSpec
from lakehouse.tables.concurrent import Commit, commit_all
from transformations.silver.conformance import (
    SCHEMA_VIOLATION,
    next_watermarks,
    with_catalogue_check,
    with_lateness,
    with_schema_violation,
)
from transformations.silver.enrichment import to_reporting_currency
from transformations.silver.events import PARSERS, dedupe_events, split_parse_errors
from transformations.silver.orders import PARSE_ERROR, RAW, quarantine_rows
from transformations.silver.settlements import SETTLEMENT_COLUMNS, parse_settlements

APP_ID = "silver_events"
QUARANTINE = "silver.events_quarantine"
WATERMARKS = "ops.event_watermarks"
SETTLEMENTS_SOURCE = "bronze.settlements_raw"
SETTLEMENTS = "silver.settlements"
DEAD_LETTER_FAMILY = "dead_letter"  # its query is silver_events_dead_letter
CATALOGUE = "silver.products"
FX_HISTORY = "silver.fx_rates_history"
REPORTING_CURRENCY = "EUR"
AMOUNT_COLUMNS = {"orders": "total_amount", "payments": "amount"}  # converted to the reporting currency
log = logging.getLogger(APP_ID)

WATERMARK_SCHEMA = T.StructType([
    T.StructField("family", T.StringType()), T.StructField("source_topic", T.StringType()),
    T.StructField("source_partition", T.IntegerType()), T.StructField("max_event_time", T.TimestampType()),
])
CHECK_COLUMNS = (RAW, SCHEMA_VIOLATION, "unknown_sku", "watermark")  # checked by the gate, not kept in silver
FX_SCHEMA = "currency string, rate_to_eur decimal(18,8), valid_from timestamp"
# families run at once replace their slices of the watermarks one at a time (concurrent overwrites of one
# table conflict in Delta, whatever their predicates)
_watermarks_lock = threading.Lock()


def silver_table(family: str) -> str:
    return f"silver.{family}_events"


def _reference(ctx: JobContext, name: str, fallback_schema: str, columns: list[str]) -> DataFrame:
    """A CDC reference table, or an empty frame (with a warning) before the CDC pipeline has produced it."""
    if ctx.tables.exists(name):
        return ctx.tables.read(name).select(*columns)
    log.warning("%s does not exist yet: the checks that need it see no rows", name)
    return ctx.spark.createDataFrame([], fallback_schema)


def gate_batch(ctx: JobContext, df: DataFrame, suite: str, batch_id: int) -> GateResult:
    """Validate one batch against `suite` (its Data Docs under the home), recorded and logged with its batch id
    (a micro-batch id, or a replay's batch id)."""
    gate = run_gate(df, suite, suite, ctx.run_id, table_version=batch_id, docs_dir=ctx.settings.quality_docs)
    log.info("%s batch %s: %s in %.2f s (GX on %s)", suite, batch_id, gate.message, gate.seconds, gate.engine)
    return gate


def _records(ctx: JobContext, gates: list[GateResult], app: str, batch_id: int) -> list[Commit]:
    """The commits that keep a batch's gate results (one per ops table, made with the batch's side writes)."""
    return gate_writes(ctx.tables, gates, app, batch_id, ctx.settings.data_docs_index)


def _passed(ctx: JobContext, release: ExitStack, gates: list[GateResult], df: DataFrame, suite: str, app: str,
            batch_id: int) -> GateResult:
    """`gate_batch`, whose cached input `release` frees, added to the batch's `gates`. When it blocked, the batch's
    gates are recorded and the batch fails, the suite's table left unchanged."""
    gate = gate_batch(ctx, df, suite, batch_id)
    release.callback(gate.release)
    gates.append(gate)
    if gate.blocked:
        commit_all(ctx.tables, _records(ctx, gates, app, batch_id))
    raise_if_blocked(gate, suite)
    return gate


def conformed(ctx: JobContext, family: str, bronze: DataFrame, prior_watermarks: DataFrame) -> DataFrame:
    """Parsed, deduplicated and checked events of one bronze batch (parse errors included, flagged)."""
    parsed = with_schema_violation(PARSERS[family](bronze), RAW, family)
    events = with_lateness(dedupe_events(parsed), prior_watermarks)
    catalogue = _reference(ctx, CATALOGUE, "sku string", ["sku"])
    events = with_catalogue_check(events, catalogue)
    if family in AMOUNT_COLUMNS:
        fx = _reference(ctx, FX_HISTORY, FX_SCHEMA, ["currency", "rate_to_eur", "valid_from"])
        events = to_reporting_currency(events, fx, AMOUNT_COLUMNS[family], "currency", "event_time",
                                       REPORTING_CURRENCY)
    return events


def _replace_watermarks(ctx: JobContext, marks: DataFrame, family: str, app: str, batch_id: int) -> bool:
    """Replace the family's slice of the watermarks with its marks after a batch (once per batch)."""
    with _watermarks_lock:
        return ctx.tables.write_batch(marks.select(*WATERMARK_SCHEMA.fieldNames()), WATERMARKS, app, batch_id,
                                      mode="overwrite", replace_where=f"family = '{family}'")


def rejected_events(ctx: JobContext, unparseable: DataFrame, gate: GateResult, target: str) -> DataFrame:
    """The quarantine rows of a family's batch: payloads that did not parse, and events the silver gate set aside
    (the reason with the schema violation, when there is one)."""
    detailed = gate.quarantined.withColumn(REASON_COLUMN, F.concat_ws(": ", REASON_COLUMN, SCHEMA_VIOLATION))
    return quarantine_rows(unparseable, PARSE_ERROR, target, ctx.run_id).unionByName(
        quarantine_rows(detailed, REASON_COLUMN, target, ctx.run_id))


def process_family(ctx: JobContext, family: str, bronze: DataFrame, app: str, batch_id: int) -> None:
    """Take one micro-batch of bronze.<family>_events into silver (every write keyed by (app, batch_id))."""
    tables, source, target = ctx.tables, bronze_table(family), silver_table(family)
    gates: list[GateResult] = []  # recorded with the side writes, made at once before the MERGE
    with ExitStack() as release:  # every cache of the batch is released, also when a gate blocks
        bronze = bronze.cache()
        release.callback(bronze.unpersist)
        _passed(ctx, release, gates, bronze, source, app, batch_id)
        prior = (tables.read(WATERMARKS).where(F.col("family") == family) if tables.exists(WATERMARKS)
                 else ctx.spark.createDataFrame([], WATERMARK_SCHEMA))
        checked = conformed(ctx, family, bronze, prior).cache()
        release.callback(checked.unpersist)
        events, unparseable = split_parse_errors(checked)
        gate = _passed(ctx, release, gates, events, target, app, batch_id)
        rejected = rejected_events(ctx, unparseable, gate, target)
        marks = next_watermarks(checked, prior).withColumn("family", F.lit(family))
        # the family's marks after this batch (earlier ones carried): its slice of the table is replaced whole
        commit_all(tables, [*_records(ctx, gates, app, batch_id),
                            (QUARANTINE, lambda: tables.write_batch(rejected, QUARANTINE, app, batch_id)),
                            (WATERMARKS, lambda: _replace_watermarks(ctx, marks, family, app, batch_id))])
        tables.merge(gate.valid.drop(*CHECK_COLUMNS), target, MergeSpec(on="t.event_id = s.event_id", update=False),
                     app_id=app, batch_id=batch_id)
    log.info("%s: batch %s of %s processed (%s rows)", target, batch_id, source, gates[0].rows)


def process_settlements(ctx: JobContext, bronze: DataFrame, app: str, batch_id: int) -> None:
    """A micro-batch of bronze.settlements_raw (landing-zone report lines) -> silver.settlements, gated like the
    event families; a line is identified by (object_key, line_number), kept in the quarantine as
    source_topic/source_offset."""
    tables = ctx.tables
    gates: list[GateResult] = []  # recorded with the side writes, made at once before the MERGE
    with ExitStack() as release:  # every cache of the batch is released, also when a gate blocks
        _passed(ctx, release, gates, bronze, SETTLEMENTS_SOURCE, app, batch_id)
        lines = parse_settlements(bronze).withColumns({
            "source_topic": F.col("object_key"),
            "source_partition": F.lit(None).cast("int"), "source_offset": F.col("line_number").cast("long"),
        }).cache()
        release.callback(lines.unpersist)
        parsed, unparseable = split_parse_errors(lines)
        gate = _passed(ctx, release, gates, parsed, SETTLEMENTS, app, batch_id)
        rejected = quarantine_rows(unparseable, PARSE_ERROR, SETTLEMENTS, ctx.run_id).unionByName(
            quarantine_rows(gate.quarantined, REASON_COLUMN, SETTLEMENTS, ctx.run_id))
        commit_all(tables, [*_records(ctx, gates, app, batch_id),
                            (QUARANTINE, lambda: tables.write_batch(rejected, QUARANTINE, app, batch_id))])
        tables.merge(gate.valid.select(*SETTLEMENT_COLUMNS), SETTLEMENTS,
                     MergeSpec(on="t.object_key = s.object_key AND t.line_number = s.line_number", update=False),
                     app_id=app, batch_id=batch_id)


def validate_dead_letters(ctx: JobContext, dead_letters: DataFrame, app: str, batch_id: int) -> GateResult:
    """Validate a micro-batch of new bronze.dead_letter rows with the current suite (warn-only: recorded in
    ops.quality_validations, never stopping silver)."""
    gate = gate_batch(ctx, dead_letters, DEAD_LETTERS, batch_id)
    gate.release()
    commit_all(ctx.tables, _records(ctx, [gate], app, batch_id))
    return gate


def _after_former_validation(ctx: JobContext, source: str = DEAD_LETTERS) -> int | None:
    """The dead-letter version after the last one the former runs validated with the current suite (None: none)."""
    done = validated_up_to(ctx.tables, f"{APP_ID}:{DEAD_LETTER_FAMILY}", load_suite(DEAD_LETTERS).fingerprint)
    return None if done is None else done + 1


def streams(ctx: JobContext, families: Sequence[str], registered: set[str]) -> list[DeltaStream]:
    """The job's queries: one per family, the settlement reports, the dead letters. The tables a batch writes are
    registered in the catalog after it (once per process: `registered`)."""

    def then_register(process, names):  # noqa: ANN001, ANN202 - a ProcessBatch and what it writes
        def batch(df: DataFrame, app: str, batch_id: int) -> None:
            process(df, app, batch_id)
            ctx.tables.register_new(names, registered)
        return batch

    ops = (QUARANTINE, RESULTS, VALIDATIONS)
    return [
        *(DeltaStream(bronze_table(f), f"{APP_ID}_{f}",
                      then_register(partial(process_family, ctx, f), (silver_table(f), WATERMARKS, *ops)),
                      partial(after_marker, ctx, silver_table(f), APP_ID)) for f in families),
        DeltaStream(SETTLEMENTS_SOURCE, f"{APP_ID}_settlements",
                    then_register(partial(process_settlements, ctx), (SETTLEMENTS, *ops)),
                    partial(after_marker, ctx, SETTLEMENTS, APP_ID)),
        DeltaStream(DEAD_LETTERS, f"{APP_ID}_{DEAD_LETTER_FAMILY}",
                    then_register(partial(validate_dead_letters, ctx), ops), partial(_after_former_validation, ctx)),
    ]


def process_all(ctx: JobContext, families: Sequence[str], registered: set[str] | None = None) -> int:
    """Take what is new in bronze into silver (available-now: every query until it has read what is there, all
    at once), then stop; returns the bronze rows read. A family whose gate blocks does not hold the others back:
    its error is raised once all are done."""
    runs = run_available_now(ctx, APP_ID, streams(ctx, families, set() if registered is None else registered))
    return sum(r.rows for r in runs)


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--family", action="append", choices=FAMILIES, help="repeatable; default: every family")
    add_trigger_arguments(p)
    args = p.parse_args(argv)
    ctx = job_context(APP_ID)
    families = args.family or FAMILIES
    if args.trigger == "continuous":
        run_continuously(ctx, APP_ID, streams(ctx, families, set()), args.interval, args.timeout)
    else:
        process_all(ctx, families)


if __name__ == "__main__":
    sys.exit(run_main(main))
