"""Silver events: new versions of bronze.<family>_events -> silver.<family>_events for every event family, and
bronze.settlements_raw (processor settlement reports from the landing zone) -> silver.settlements.

Per family and run: the bronze batch passes its structure suite (bronze.<family>_events), then payloads are
typed with the family's schema, checked against the JSON Schema of their declared version, deduplicated on
event id (within the batch here, across batches by the insert-only MERGE), flagged late against a per-partition
event-time watermark, checked against the product catalogue (silver.products, from CDC) and converted to the
reporting currency with the FX rate valid at event time (silver.fx_rates_history, from CDC). The silver suite
then quarantines rows (silver.events_quarantine, with the reason), warns, or blocks the batch (the family's
silver table is left unchanged and the job exits non-zero; the next run retries the same bronze range; with
`--every` the stage reports the failure and runs again, see lakehouse.job.repeat).

Once per run, the bronze.dead_letter rows added since the last validation are checked against their structure
suite (warn-only: findings go to ops.quality_validations; the records are already set aside).

Exactly once: every write of a batch carries the transaction id (app id, bronze version); the MERGE into
silver.<family>_events is last and marks the range done; an interrupted range is redone with its original end.

The families, the settlement reports and the dead letters of a run are processed at once, from driver threads:
each has its own target and transaction ids, so on a small cluster one's Delta commits and small Spark jobs
overlap another's (the run's wall time is no longer the sum of each family's fixed costs).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from functools import partial
from typing import NamedTuple

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.events.schemas import FAMILIES
from lakehouse.ingest import DEAD_LETTER_TABLE as DEAD_LETTERS
from lakehouse.ingest import family_table as bronze_table
from lakehouse.job import (
    JobContext,
    add_repeat_arguments,
    job_context,
    parser,
    pending_range,
    repeat,
    run_main,
    versions_behind,
)
from lakehouse.progress import RunReport
from lakehouse.quality.gate import REASON_COLUMN, GateResult, run_gate
from lakehouse.quality.ops import RESULTS, VALIDATIONS, gate_writes, raise_if_blocked, validated_up_to
from lakehouse.quality.suites import load_suite
from lakehouse.tables import MergeSpec
from lakehouse.tables.concurrent import Commit, commit_all, run_concurrently
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
DEAD_LETTER_FAMILY = "dead_letter"  # its validations are recorded as silver_events:dead_letter
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


class Processed(NamedTuple):
    """A bronze range one run took into silver."""

    version: int  # the bronze version it ends at
    rows: int  # bronze rows in it


def silver_table(family: str) -> str:
    return f"silver.{family}_events"


def _app(family: str) -> str:
    return f"{APP_ID}:{family}"


def _reference(ctx: JobContext, name: str, fallback_schema: str, columns: list[str]) -> DataFrame:
    """A CDC reference table, or an empty frame (with a warning) before the CDC pipeline has produced it."""
    if ctx.tables.exists(name):
        return ctx.tables.read(name).select(*columns)
    log.warning("%s does not exist yet: the checks that need it see no rows", name)
    return ctx.spark.createDataFrame([], fallback_schema)


def gate_batch(ctx: JobContext, df: DataFrame, suite: str, version: int) -> GateResult:
    """Validate one batch against `suite` (its Data Docs under the home), logged with the bronze version."""
    gate = run_gate(df, suite, suite, ctx.run_id, table_version=version, docs_dir=ctx.settings.quality_docs)
    log.info("%s v%s: %s in %.2f s", suite, version, gate.message, gate.seconds)
    return gate


def _records(ctx: JobContext, gates: list[GateResult], family: str, version: int) -> list[Commit]:
    """The commits that keep a batch's gate results (one per ops table, made with the batch's side writes)."""
    return gate_writes(ctx.tables, gates, _app(family), version, ctx.settings.data_docs_index)


def _passed(ctx: JobContext, release: ExitStack, gates: list[GateResult], df: DataFrame, suite: str, family: str,
            version: int) -> GateResult:
    """`gate_batch`, whose cached input `release` frees, added to the batch's `gates`. When it blocked, the batch's
    gates are recorded and the job stops, the suite's table left unchanged."""
    gate = gate_batch(ctx, df, suite, version)
    release.callback(gate.release)
    gates.append(gate)
    if gate.blocked:
        commit_all(ctx.tables, _records(ctx, gates, family, version))
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


def _replace_watermarks(ctx: JobContext, marks: DataFrame, family: str, version: int) -> bool:
    """Replace the family's slice of the watermarks with its marks after bronze `version` (once per version)."""
    with _watermarks_lock:
        return ctx.tables.write_batch(marks.select(*WATERMARK_SCHEMA.fieldNames()), WATERMARKS, _app(family),
                                      version, mode="overwrite", replace_where=f"family = '{family}'")


def rejected_events(ctx: JobContext, unparseable: DataFrame, gate: GateResult, target: str) -> DataFrame:
    """The quarantine rows of a family's batch: payloads that did not parse, and events the silver gate set aside
    (the reason with the schema violation, when there is one)."""
    detailed = gate.quarantined.withColumn(REASON_COLUMN, F.concat_ws(": ", REASON_COLUMN, SCHEMA_VIOLATION))
    return quarantine_rows(unparseable, PARSE_ERROR, target, ctx.run_id).unionByName(
        quarantine_rows(detailed, REASON_COLUMN, target, ctx.run_id))


def process_family(ctx: JobContext, family: str) -> Processed | None:
    """Process the next bronze range of one family (None: up to date)."""
    tables, source, target = ctx.tables, bronze_table(family), silver_table(family)
    if not tables.exists(source):
        log.info("%s does not exist yet", source)
        return None
    side = [(QUARANTINE, _app(family)), (WATERMARKS, _app(family))]
    todo = pending_range(tables, source, (target, APP_ID), side)
    if todo is None:
        log.info("%s is up to date with %s", target, source)
        return None
    after, version = todo
    gates: list[GateResult] = []  # recorded with the side writes, made at once before the marker
    with ExitStack() as release:  # every cache of the batch is released, also when a gate blocks
        bronze = tables.read_appends(source, after, version).cache()
        release.callback(bronze.unpersist)
        _passed(ctx, release, gates, bronze, source, family, version)
        prior = (tables.read(WATERMARKS).where(F.col("family") == family) if tables.exists(WATERMARKS)
                 else ctx.spark.createDataFrame([], WATERMARK_SCHEMA))
        checked = conformed(ctx, family, bronze, prior).cache()
        release.callback(checked.unpersist)
        events, unparseable = split_parse_errors(checked)
        gate = _passed(ctx, release, gates, events, target, family, version)
        rejected = rejected_events(ctx, unparseable, gate, target)
        marks = next_watermarks(checked, prior).withColumn("family", F.lit(family))
        # the family's marks after this batch (earlier ones carried): its slice of the table is replaced whole
        commit_all(tables, [*_records(ctx, gates, family, version),
                            (QUARANTINE, lambda: tables.write_batch(rejected, QUARANTINE, _app(family), version)),
                            (WATERMARKS, lambda: _replace_watermarks(ctx, marks, family, version))])
        # last: its transaction id marks the bronze range as processed
        tables.merge(gate.valid.drop(*CHECK_COLUMNS), target, MergeSpec(on="t.event_id = s.event_id", update=False),
                     app_id=APP_ID, batch_id=version)
    log.info("%s: processed %s up to v%s", target, source, version)
    return Processed(version, gates[0].rows or 0)


def process_settlements(ctx: JobContext) -> Processed | None:
    """bronze.settlements_raw (landing-zone report lines) -> silver.settlements, gated like the event families;
    a line is identified by (object_key, line_number), kept in the quarantine as source_topic/source_offset."""
    tables = ctx.tables
    if not tables.exists(SETTLEMENTS_SOURCE):
        return None
    todo = pending_range(tables, SETTLEMENTS_SOURCE, (SETTLEMENTS, APP_ID), [(QUARANTINE, _app("settlements"))])
    if todo is None:
        return None
    after, version = todo
    gates: list[GateResult] = []  # recorded with the side writes, made at once before the marker
    with ExitStack() as release:  # every cache of the batch is released, also when a gate blocks
        bronze = tables.read_appends(SETTLEMENTS_SOURCE, after, version)
        _passed(ctx, release, gates, bronze, SETTLEMENTS_SOURCE, "settlements", version)
        lines = parse_settlements(bronze).withColumns({
            "source_topic": F.col("object_key"),
            "source_partition": F.lit(None).cast("int"), "source_offset": F.col("line_number").cast("long"),
        }).cache()
        release.callback(lines.unpersist)
        parsed, unparseable = split_parse_errors(lines)
        gate = _passed(ctx, release, gates, parsed, SETTLEMENTS, "settlements", version)
        rejected = quarantine_rows(unparseable, PARSE_ERROR, SETTLEMENTS, ctx.run_id).unionByName(
            quarantine_rows(gate.quarantined, REASON_COLUMN, SETTLEMENTS, ctx.run_id))
        commit_all(tables, [*_records(ctx, gates, "settlements", version),
                            (QUARANTINE, lambda: tables.write_batch(rejected, QUARANTINE, _app("settlements"),
                                                                    version))])
        tables.merge(gate.valid.select(*SETTLEMENT_COLUMNS), SETTLEMENTS,
                     MergeSpec(on="t.object_key = s.object_key AND t.line_number = s.line_number", update=False),
                     app_id=APP_ID, batch_id=version)
    return Processed(version, gates[0].rows or 0)


def validate_dead_letters(ctx: JobContext) -> GateResult | None:
    """Validate the bronze.dead_letter rows added since the last validation with the current suite (warn-only:
    recorded in ops.quality_validations, never stopping silver); None when there is nothing new."""
    tables = ctx.tables
    if not tables.exists(DEAD_LETTERS):
        return None
    after = validated_up_to(tables, _app(DEAD_LETTER_FAMILY), load_suite(DEAD_LETTERS).fingerprint)
    current = tables.version(DEAD_LETTERS)
    if after is not None and after >= current:
        return None
    gate = gate_batch(ctx, tables.read_appends(DEAD_LETTERS, after, current), DEAD_LETTERS, current)
    gate.release()
    commit_all(tables, _records(ctx, [gate], DEAD_LETTER_FAMILY, current))
    return gate


def process_all(ctx: JobContext, families: Sequence[str], registered: set[str]) -> RunReport:
    """One run: the pending bronze range of each of `families`, the settlement reports and the new dead letters,
    all at once (their targets differ; shared tables take appends, the watermarks one family at a time, GX one
    validation at a time); then the tables not registered yet (`registered`) are registered in the catalog.
    Returns the bronze rows taken and the bronze versions committed meanwhile (left to the next run).

    A family whose gate blocks does not hold the others back: the run raises its error once all are done."""
    *done, _ = run_concurrently(ctx.spark, [*[partial(process_family, ctx, family) for family in families],
                                            partial(process_settlements, ctx), partial(validate_dead_letters, ctx)])
    ctx.tables.register_new((*[silver_table(f) for f in FAMILIES], SETTLEMENTS, QUARANTINE, RESULTS,
                             VALIDATIONS, WATERMARKS), registered)
    sources = [(bronze_table(f), silver_table(f)) for f in families] + [(SETTLEMENTS_SOURCE, SETTLEMENTS)]
    return RunReport(rows=sum(p.rows for p in done if p is not None),
                     backlog_versions=sum(versions_behind(ctx.tables, s, (t, APP_ID)) for s, t in sources))


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--family", action="append", choices=FAMILIES, help="repeatable; default: every family")
    add_repeat_arguments(p)
    args = p.parse_args(argv)
    ctx = job_context(APP_ID)
    registered: set[str] = set()
    repeat(lambda: process_all(ctx, args.family or FAMILIES, registered), args.every, args.timeout)


if __name__ == "__main__":
    sys.exit(run_main(main))
