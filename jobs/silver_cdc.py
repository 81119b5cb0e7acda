"""Silver CDC: new bronze.erp_cdc_raw versions -> SCD1 current-state and SCD2 history tables by MERGE.

Per key the newest source LSN wins; re-delivered events are deduplicated; deletes remove rows (and leave a
tombstone in silver.cdc_tombstones); malformed or unknown-table envelopes go to silver.cdc_dead_letter with a
reason. Exactly once: every target commit carries the transaction id (app id, bronze version processed) and is
skipped when already made; the dead-letter commit comes last and marks the bronze version as done."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from pyspark.sql import functions as F

from lakehouse.job import JobContext, job_context, parser, require_tables, run_main
from lakehouse.tables import MergeSpec
from transformations.silver.cdc import (
    DEAD_LETTER,
    TABLES,
    TOMBSTONE_MERGE,
    TOMBSTONE_SCHEMA,
    TOMBSTONES,
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
    tombstone_rows,
    without_superseded,
)

SOURCE = "bronze.erp_cdc_raw"
APP_ID = "silver_cdc"
log = logging.getLogger(APP_ID)


def targets() -> list[str]:
    names = [t for spec in TABLES.values() for t in (spec.scd1, spec.scd2) if t]
    return [*names, TOMBSTONES, DEAD_LETTER]


def ensure_tables(ctx: JobContext) -> None:
    """Create every silver CDC table (empty) so each exists even before its first change."""
    for spec in TABLES.values():
        if spec.scd1:
            ctx.tables.create(spec.scd1, scd1_schema(spec))
        if spec.scd2:
            ctx.tables.create(spec.scd2, scd2_schema(spec))
    ctx.tables.create(TOMBSTONES, TOMBSTONE_SCHEMA)


def apply_changes(ctx: JobContext) -> dict[str, int]:
    """Apply bronze versions not yet processed; returns {'bronze_version', 'envelopes', 'seconds'} (empty if none)."""
    tables = ctx.tables
    done = tables.committed_batch(DEAD_LETTER, APP_ID)
    current = tables.version(SOURCE)
    if done is not None and done >= current:
        log.info("silver CDC is up to date with %s v%s", SOURCE, current)
        return {}
    started = time.perf_counter()
    ensure_tables(ctx)
    parsed = parse_envelopes(tables.read_appends(SOURCE, done, current)).cache()
    envelopes = parsed.count()
    tombstones = tables.read(TOMBSTONES).cache()
    rejected = [dead_letters(parsed.where(F.col("reason").isNotNull()))]
    new_tombstones = []

    def merge(df, target: str, spec_kwargs: dict) -> None:
        committed = tables.committed_batch(target, APP_ID)
        if committed is not None and committed >= current:
            return  # this target already has this bronze version (a rerun after a crash)
        t0 = time.perf_counter()
        tables.merge(df, target, MergeSpec(**spec_kwargs), app_id=APP_ID, batch_id=current)
        log.info("merged into %s in %.1f s", target, time.perf_counter() - t0)

    for spec in TABLES.values():
        changes, bad_keys = table_changes(parsed, spec)
        rejected.append(bad_keys)
        changes = changes.cache()
        if changes.isEmpty():
            changes.unpersist()
            continue
        if spec.scd1:
            latest = latest_per_key(changes, spec.keys)
            merge(scd1_source(without_superseded(latest, tombstones, spec), spec), spec.scd1, scd1_merge_kwargs(spec))
            new_tombstones.append(tombstone_rows(latest, spec))
        if spec.scd2:
            rebuilt = scd2_rebuild(tables.read(spec.scd2), changes, spec)
            merge(rebuilt, spec.scd2, scd2_merge_kwargs(spec))
        changes.unpersist()
    if new_tombstones:
        union = new_tombstones[0]
        for df in new_tombstones[1:]:
            union = union.unionByName(df)
        if not union.isEmpty():
            merge(union, TOMBSTONES, TOMBSTONE_MERGE)
    dead = rejected[0]
    for df in rejected[1:]:
        dead = dead.unionByName(df)
    # last: its transaction id marks the bronze version as processed
    tables.write_batch(dead.withColumn("dead_lettered_at", F.current_timestamp()), DEAD_LETTER, APP_ID, current)
    parsed.unpersist()
    tombstones.unpersist()
    seconds = time.perf_counter() - started
    log.info("silver CDC: %s envelopes from %s up to v%s in %.1f s", envelopes, SOURCE, current, seconds)
    return {"bronze_version": current, "envelopes": envelopes, "seconds": round(seconds, 2)}


def main(argv: Sequence[str] | None = None) -> None:
    parser(__doc__).parse_args(argv)
    require_tables(SOURCE, hint="run the bronze_cdc job first")
    ctx = job_context(APP_ID)
    apply_changes(ctx)
    for name in targets():
        if ctx.tables.exists(name):
            ctx.tables.register(name)


if __name__ == "__main__":
    sys.exit(run_main(main))
