"""Silver CDC: bronze.erp_cdc_raw -> SCD1 current-state and SCD2 history tables by Delta MERGE, as a Structured
Streaming query on the bronze Delta table (lakehouse.delta_stream): available-now by default (take what is there,
then stop), or `--trigger continuous` (a micro-batch every `--interval`, as the pipeline's stage).

Distributed end to end: envelopes are parsed by Spark, changes are deduplicated per key by LSN and applied by
one MERGE per target over the micro-batch's changes only; the driver holds one small row per ERP table of a batch
(its counts, message-key columns and, for tables without a spec, column names), never a table or a history.

What each ERP table becomes is declared by its spec (`lakehouse/cdc/tables/<table>.json`, see
lakehouse.cdc.specs); a captured table without a spec is mirrored as SCD1 on the primary key Debezium reports
(silver.erp_<table>, text columns, new columns added as they appear). Per key the newest source LSN wins;
re-delivered events are deduplicated; deletes remove rows (and leave a tombstone in silver.cdc_tombstones);
malformed envelopes go to silver.cdc_dead_letter with a reason. Before anything of a micro-batch is applied, the
batch passes its structure suite (bronze.erp_cdc_raw, all block: a failure applies nothing and fails the query;
the next start replays the same batch, see lakehouse.streaming.run_query). A micro-batch holds at most
`--max-files` bronze files (Delta's maxFilesPerTrigger; its default 1,000). Exactly once: every target commit
carries the transaction id (the query's app id, batch id) and is skipped when already made, and a batch cut short
by a crash is replayed from the checkpoint with the same bronze rows. After the apply, the warn-only suites of
the mirrors validate the rows of the keys the batch changed (not whole tables). A query started without a
checkpoint on a home whose silver_cdc ran before it was a stream starts after the bronze version those runs
reached."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.cdc.specs import MIRROR_PREFIX, mirror_spec
from lakehouse.delta_stream import DeltaStream, after_marker, run_available_now, run_continuously
from lakehouse.governance.erasure import pii_stats
from lakehouse.job import JobContext, add_trigger_arguments, job_context, parser, require_tables, run_main
from lakehouse.quality.gate import GateResult, run_gate
from lakehouse.quality.ops import gate_writes, raise_if_blocked, record_gate
from lakehouse.quality.suites import resolve_suite_path
from lakehouse.tables import MergeSpec
from lakehouse.tables.concurrent import commit_all, run_concurrently
from transformations.silver.cdc import (
    DEAD_LETTER,
    DEAD_LETTER_COLUMNS,
    DEAD_LETTER_SCHEMA,
    PII_MERGE,
    PII_SCHEMA,
    PII_TABLE,
    TABLES,
    TOMBSTONE_MERGE,
    TOMBSTONE_SCHEMA,
    TOMBSTONES,
    CdcTable,
    batch_tables,
    dead_letters,
    latest_per_key,
    parse_envelopes,
    scd1_merge_kwargs,
    scd1_schema,
    scd1_source,
    scd2_merge_kwargs,
    scd2_rebuild,
    scd2_schema,
    table_changes,
    tokenize_changes,
    tombstone_rows,
    without_superseded,
)

SOURCE = "bronze.erp_cdc_raw"
APP_ID = "silver_cdc"
BRONZE_COLUMNS = ["topic", "partition", "offset", "key", "value"]
PAUSE_ENV = "LAKEHOUSE_SILVER_CDC_PAUSE_S"  # fault-injection tests: pause after each step so a SIGKILL lands there
log = logging.getLogger(APP_ID)


def targets(tables=None) -> list[str]:  # noqa: ANN001 - DeltaTables
    """Every silver CDC table: the specs' targets, the generic mirrors `tables` holds, the side tables."""
    names = [t for spec in TABLES.values() for t in (spec.scd1, spec.scd2) if t]
    mirrors = [n for n in (tables.list_names() if tables else []) if n.startswith(MIRROR_PREFIX) and n not in names]
    return [*names, *mirrors, TOMBSTONES, PII_TABLE, DEAD_LETTER]


def ensure_tables(ctx: JobContext) -> None:
    """Create every silver CDC table of the specs (empty) so each exists even before its first change."""
    ctx.tables.create(PII_TABLE, PII_SCHEMA, properties=pii_stats(PII_SCHEMA))  # raw values: not in the log
    for spec in TABLES.values():
        if spec.scd1:
            ctx.tables.create(spec.scd1, scd1_schema(spec), _partitions(spec, spec.scd1))
        if spec.scd2:
            ctx.tables.create(spec.scd2, scd2_schema(spec), _partitions(spec, spec.scd2))
    ctx.tables.create(TOMBSTONES, TOMBSTONE_SCHEMA)
    ctx.tables.create(DEAD_LETTER, DEAD_LETTER_SCHEMA, properties=pii_stats(DEAD_LETTER_SCHEMA))


def _partitions(spec: CdcTable, target: str) -> list[str] | None:
    """The spec's partition columns that the target carries (SCD2 targets hold keys and tracked columns only)."""
    carried = scd1_schema(spec).fieldNames() if target == spec.scd1 else scd2_schema(spec).fieldNames()
    return [c for c in spec.partition_by if c in carried] or None


def validate_bronze(ctx: JobContext, bronze: DataFrame, app: str, batch_id: int) -> GateResult:
    """The structure gate over a micro-batch of bronze, before any of it is applied: a block raises."""
    gate = run_gate(bronze, SOURCE, SOURCE, ctx.run_id, table_version=batch_id, docs_dir=ctx.settings.quality_docs)
    record_gate(ctx.tables, gate, f"{app}:bronze", batch_id, ctx.settings.data_docs_index)
    gate.release()
    log.info("%s batch %s: %s in %.2f s (input %.2f s)", SOURCE, batch_id, gate.message, gate.seconds,
             gate.input_seconds)
    raise_if_blocked(gate, "silver CDC tables")
    return gate


def resolve_spec(ctx: JobContext, table: str, key_columns: list[str] | None,
                 column_sets: list[list[str]]) -> CdcTable:
    """The spec of an ERP table in a batch: its spec file (primary key defaulting to the message key), or the
    generic SCD1 mirror, whose table is created or given the batch's new columns here."""
    keys = list(key_columns or [])
    spec = TABLES.get(table)
    if spec is not None:
        return spec if spec.keys else dataclasses.replace(spec, keys=tuple(keys))
    columns = [c for cols in sorted(column_sets, key=lambda c: (-len(c), c)) for c in cols]
    target = f"{MIRROR_PREFIX}{table}"
    stored = ctx.tables.read(target).columns if ctx.tables.exists(target) else None
    spec = mirror_spec(table, keys, list(dict.fromkeys(columns)), [c for c in stored or [] if not c.startswith("_")])
    if spec.keys:
        schema = scd1_schema(spec)
        if stored is None:
            ctx.tables.create(target, schema)
        elif new := [f for f in schema.fields if f.name not in stored]:
            ctx.tables.add_columns(target, new)
    return spec


Merge = Callable[[DataFrame, str, dict, int], None]


def apply_table(ctx: JobContext, parsed: DataFrame, spec: CdcTable, merge: Merge,
                changes_count: int) -> tuple[DataFrame, DataFrame | None, DataFrame | None]:
    """MERGE one ERP table's changes into its targets; returns (dead letters, new tombstones, PII rows)."""
    changes, bad = table_changes(parsed, spec)
    if not spec.keys:
        return bad, None, None
    pii = None
    if spec.pii:
        changes, pii = tokenize_changes(changes, spec, ctx.settings.pii_salt)
    tombstones = None
    if spec.scd1:
        latest = latest_per_key(changes, spec.keys)
        stored = ctx.tables.read(TOMBSTONES)
        merge(scd1_source(without_superseded(latest, stored, spec), spec), spec.scd1, scd1_merge_kwargs(spec),
              changes_count)
        tombstones = tombstone_rows(latest, spec)
    if spec.scd2:
        history = ctx.tables.read(spec.scd2)
        merge(scd2_rebuild(history, changes, spec), spec.scd2, scd2_merge_kwargs(spec), changes_count)
    return bad, tombstones, pii


def _union(frames: list[DataFrame]) -> DataFrame:
    return functools.reduce(DataFrame.unionByName, frames)


def apply_batch(ctx: JobContext, bronze: DataFrame, app: str, batch_id: int) -> int:
    """Apply a micro-batch of bronze envelopes; returns their number.

    The envelopes are parsed once and kept on the executors; every target gets one MERGE of the batch's changes,
    keyed by (app, batch_id), the ERP tables' MERGEs at once, then the tombstones' and PII's; the dead-letter
    commit comes last."""
    tables = ctx.tables
    started = time.perf_counter()
    parsed = parse_envelopes(bronze).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        batch = [r.asDict() for r in batch_tables(parsed, list(TABLES)).collect()]
        envelopes = sum(r["envelopes"] for r in batch)
        log.info("read %s bronze envelopes of %s tables in %.2f s", envelopes, len(batch),
                 time.perf_counter() - started)
        pause = float(os.environ.get(PAUSE_ENV) or 0)
        time.sleep(pause)

        def merge(source: DataFrame, target: str, spec_kwargs: dict, rows: int) -> None:
            t0 = time.perf_counter()
            if tables.merge(source, target, MergeSpec(**spec_kwargs), app_id=app, batch_id=batch_id):
                log.info("merged %s rows into %s in %.2f s", rows, target, time.perf_counter() - t0)
                time.sleep(pause)

        dead = [parsed.where(F.col("reason").isNotNull()).select(*DEAD_LETTER_COLUMNS)]
        tombstones, pii = [], []
        changed = [(resolve_spec(ctx, r["table"], r["key_columns"], r["column_sets"]), r) for r in batch if r["changes"]]
        # the tables' MERGEs at once (each ERP table has targets of its own; each MERGE is keyed and idempotent)
        applied = run_concurrently(ctx.spark, [functools.partial(apply_table, ctx, parsed, spec, merge, row["changes"])
                                               for spec, row in changed])
        for (_, row), (bad, tomb, restricted) in zip(changed, applied, strict=True):
            dead.append(bad)
            tombstones += [tomb] if tomb is not None and row["deletes"] else []
            pii += [restricted] if restricted is not None else []
        last = []
        if tombstones:
            last.append(functools.partial(merge, _union(tombstones), TOMBSTONES, TOMBSTONE_MERGE,
                                          sum(r["deletes"] for r in batch)))
        if pii:
            last.append(functools.partial(merge, _union(pii), PII_TABLE, PII_MERGE, 0))
        run_concurrently(ctx.spark, last)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        tables.write_batch(dead_letters(_union(dead), now), DEAD_LETTER, app, batch_id)
    finally:
        parsed.unpersist()
    log.info("silver CDC: %s envelopes of batch %s in %.2f s", envelopes, batch_id, time.perf_counter() - started)
    return envelopes


def _mirror_keys(target: str) -> list[str] | None:
    """The primary key of a spec's target (None for tables the specs do not name)."""
    for spec in TABLES.values():
        if target == spec.scd1:
            return list(spec.keys)
        if target == spec.scd2:
            return [*spec.keys, "_lsn_from"]
    return None


def changed_rows(ctx: JobContext, target: str, since: int | None) -> DataFrame | None:
    """The current rows of every key `target` changed after version `since` (all rows when None); None when
    nothing changed. For SCD2 targets a key is (primary key, `_lsn_from`): each changed version."""
    tables = ctx.tables
    now = tables.version(target)
    if since is None:
        return tables.read(target)
    if now <= since:
        return None
    keys = _mirror_keys(target)
    touched = tables.read_changes(target, since, now).select(*keys).distinct()
    return tables.read(target, version=now).join(touched, keys, "left_semi")


def validate_mirror(ctx: JobContext, since: dict[str, int | None] | None = None, app: str = APP_ID,
                    batch_id: int = 0) -> dict[str, GateResult]:
    """Validate the silver CDC tables that have a suite, as they stand after the apply (warn-only suites: silver
    mirrors the system of record, so findings are reported in ops.quality_validations, never refused), recorded
    with (app, batch_id).

    `since` ({target: version before the batch}): only the rows of the keys the batch changed; None: whole
    tables."""
    gates: dict[str, GateResult] = {}
    for spec in TABLES.values():
        for target in (spec.scd1, spec.scd2):
            if not target or not ctx.tables.exists(target) or not resolve_suite_path(target).is_file():
                continue
            rows = ctx.tables.read(target) if since is None else changed_rows(ctx, target, since.get(target))
            if rows is None:
                continue
            gate = run_gate(rows, target, target, ctx.run_id, table_version=batch_id,
                            docs_dir=ctx.settings.quality_docs)
            gate.release()
            log.info("%s: %s (%s rows)", target, gate.message, gate.rows)
            gates[target] = gate
    # every mirror's results in one commit per ops table, after the last suite
    commit_all(ctx.tables, gate_writes(ctx.tables, list(gates.values()), f"{app}:mirror", batch_id,
                                       ctx.settings.data_docs_index))
    return gates


def process_batch(ctx: JobContext, bronze: DataFrame, app: str, batch_id: int) -> dict[str, object]:
    """One micro-batch: the bronze gate, the apply, the mirrors' suites over what it changed; returns
    {'envelopes', 'since' (each target's version before it, None if it did not exist), 'seconds'}."""
    started = time.perf_counter()
    since = {t: ctx.tables.version(t) if ctx.tables.exists(t) else None for t in targets(ctx.tables)}
    bronze = bronze.select(*BRONZE_COLUMNS).persist(StorageLevel.MEMORY_AND_DISK)  # gated, then parsed
    try:
        validate_bronze(ctx, bronze, app, batch_id)
        ensure_tables(ctx)
        envelopes = apply_batch(ctx, bronze, app, batch_id)
    finally:
        bronze.unpersist()
    validate_mirror(ctx, since, app, batch_id)
    return {"envelopes": envelopes, "since": since, "seconds": round(time.perf_counter() - started, 2)}


def stream(ctx: JobContext, max_files: int | None = None, done: Callable[[dict[str, object]], None] | None = None,
           register: bool = False) -> DeltaStream:
    """The job's query on bronze.erp_cdc_raw; each batch's stats go to `done` and, with `register`, its tables to
    the catalog."""
    registered: set[str] = set()

    def batch(bronze: DataFrame, app: str, batch_id: int) -> None:
        stats = process_batch(ctx, bronze, app, batch_id)
        if register:
            ctx.tables.register_new(targets(ctx.tables), registered)
        if done is not None:
            done(stats)

    options = {"maxFilesPerTrigger": str(max_files)} if max_files else {}
    return DeltaStream(SOURCE, APP_ID, batch, functools.partial(after_marker, ctx, DEAD_LETTER, APP_ID), options)


def run(ctx: JobContext, max_files: int | None = None) -> dict[str, object]:
    """Apply what bronze holds that silver has not (available-now: micro-batches of at most `max_files` bronze
    files), then stop; returns {'envelopes', 'batches', 'since' (each target's version before the first batch),
    'seconds'}, empty when there was nothing to apply."""
    started = time.perf_counter()
    batches: list[dict[str, object]] = []
    run_available_now(ctx, APP_ID, [stream(ctx, max_files, batches.append)])
    if not batches:
        return {}
    return {"envelopes": sum(int(b["envelopes"]) for b in batches), "batches": len(batches),
            "since": batches[0]["since"], "seconds": round(time.perf_counter() - started, 2)}


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--max-files", type=int, default=None, help="bronze files per micro-batch (default: Delta's)")
    add_trigger_arguments(p)
    args = p.parse_args(argv)
    if args.trigger == "continuous":  # waits for bronze
        ctx = job_context(APP_ID)
        run_continuously(ctx, APP_ID, [stream(ctx, args.max_files, register=True)], args.interval, args.timeout)
        return
    require_tables(SOURCE, hint="run the bronze_cdc job first")
    ctx = job_context(APP_ID)
    run(ctx, args.max_files)
    ctx.tables.register_new(targets(ctx.tables), set())  # also when there was nothing new


if __name__ == "__main__":
    sys.exit(run_main(main))
