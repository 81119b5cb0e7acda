"""Silver CDC: new bronze.erp_cdc_raw versions -> SCD1 current-state and SCD2 history tables by MERGE.

Per key the newest source LSN wins; re-delivered events are deduplicated; deletes remove rows (and leave a
tombstone in silver.cdc_tombstones); malformed or unknown-table envelopes go to silver.cdc_dead_letter with a
reason. Before anything is applied, the whole pending bronze range passes its structure suite (bronze.erp_cdc_raw,
all block: a failure applies nothing, the job exits non-zero and the next run validates the same range again).
The backlog is applied in chunks of at most --max-versions bronze versions, each committed before the
next is read. Exactly once: every target commit carries the transaction id (app id, last bronze version of the
chunk) and is skipped when already made; the dead-letter commit comes last and marks the chunk as done; a chunk
cut short by a crash is redone up to the same version."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import operator
import os
import sys
import time
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.job import (
    JobContext,
    job_context,
    parser,
    pending_range,
    require_tables,
    run_main,
)
from lakehouse.quality.gate import GateResult, run_gate
from lakehouse.quality.ops import raise_if_blocked, record_gate
from lakehouse.quality.suites import resolve_suite_path
from lakehouse.tables import MergeSpec
from transformations.silver.cdc import (
    DEAD_LETTER,
    DEAD_LETTER_SCHEMA,
    PII_MERGE,
    PII_SCHEMA,
    PII_TABLE,
    TABLES,
    TOMBSTONE_MERGE,
    TOMBSTONE_SCHEMA,
    TOMBSTONES,
    CdcTable,
    dead_letters_arrow,
    key_text,
    latest_changes,
    parse_batch,
    scd1_arrow,
    scd1_merge_kwargs,
    scd1_schema,
    scd2_merge_kwargs,
    scd2_rebuild_arrow,
    scd2_schema,
    tokenize_changes,
    tombstones_arrow,
)

SOURCE = "bronze.erp_cdc_raw"
APP_ID = "silver_cdc"
MAX_VERSIONS = 100  # bronze versions per chunk: bounds what one commit round holds in memory
PAUSE_ENV = "LAKEHOUSE_SILVER_CDC_PAUSE_S"  # fault-injection tests: pause after each step so a SIGKILL lands there
log = logging.getLogger(APP_ID)


def targets() -> list[str]:
    names = [t for spec in TABLES.values() for t in (spec.scd1, spec.scd2) if t]
    return [*names, TOMBSTONES, PII_TABLE, DEAD_LETTER]


def ensure_tables(ctx: JobContext) -> None:
    """Create every silver CDC table (empty) so each exists even before its first change."""
    ctx.tables.create(PII_TABLE, PII_SCHEMA)
    for spec in TABLES.values():
        if spec.scd1:
            ctx.tables.create(spec.scd1, scd1_schema(spec))
        if spec.scd2:
            ctx.tables.create(spec.scd2, scd2_schema(spec))
    ctx.tables.create(TOMBSTONES, TOMBSTONE_SCHEMA)
    ctx.tables.create(DEAD_LETTER, DEAD_LETTER_SCHEMA)


def _tombstones_of(ctx: JobContext, touched: dict[str, set[str]]) -> dict[str, dict[str, int]]:
    """{table: {key text: lsn}} of the stored tombstones of the touched keys only."""
    wanted = [pc.field("source_table") == t for t, keys in touched.items() if keys]
    if not wanted:
        return {}
    key_texts = sorted({k for keys in touched.values() for k in keys})
    cond = functools.reduce(operator.or_, wanted) & pc.field("key").isin(key_texts)
    stored = ctx.tables.read_arrow(TOMBSTONES, cond).to_pydict()
    out: dict[str, dict[str, int]] = {}
    for table, key, lsn in zip(stored["source_table"], stored["key"], stored["lsn"], strict=True):
        out.setdefault(table, {})[key] = lsn
    return out


def _history_of(ctx: JobContext, spec: CdcTable, keys: set[tuple]) -> pa.Table:
    """The stored SCD2 versions of `keys` only (the filter lets the reader skip files and row groups)."""
    if len(spec.keys) == 1:
        cond = pc.field(spec.keys[0]).isin(sorted(k[0] for k in keys))
    else:
        cond = functools.reduce(operator.and_, [
            pc.field(k).isin(sorted({key[i] for key in keys})) for i, k in enumerate(spec.keys)
        ])
    return ctx.tables.read_arrow(spec.scd2, cond)


def next_chunk(ctx: JobContext, max_versions: int | None) -> tuple[int | None, int] | None:
    """(after, up_to): the bronze versions of the next chunk, None when silver is caught up.

    A chunk cut short by a crash (a target already holds a batch id past the last finished chunk) is redone up
    to the same version, so each target applies each chunk once, under one transaction id."""
    side_writes = [(t, APP_ID) for t in targets() if t != DEAD_LETTER]
    return pending_range(ctx.tables, SOURCE, (DEAD_LETTER, APP_ID), side_writes, max_versions)


def apply_changes(ctx: JobContext, max_versions: int | None = MAX_VERSIONS) -> dict[str, int]:
    """Apply the bronze versions not processed yet, up to the current one, chunk by chunk (at most `max_versions`
    versions each; None: one chunk); returns {'bronze_version', 'envelopes', 'chunks', 'seconds'} (empty if there
    was nothing). A run does not chase a bronze job that keeps committing: the next run takes what came since."""
    started = time.perf_counter()
    until = ctx.tables.version(SOURCE)
    stats = {"envelopes": 0, "chunks": 0}
    if (first := next_chunk(ctx, max_versions)) is not None:
        validate_bronze(ctx, first[0], until)
    while (chunk := next_chunk(ctx, max_versions)) is not None:
        stats["envelopes"] += apply_chunk(ctx, *chunk)
        stats["chunks"] += 1
        stats["bronze_version"] = chunk[1]
        if chunk[1] >= until:
            break
    return {**stats, "seconds": round(time.perf_counter() - started, 2)} if stats["chunks"] else {}


def validate_bronze(ctx: JobContext, after: int | None, up_to: int) -> GateResult:
    """The structure gate over the whole pending bronze range (after, up_to], once per run before any chunk is
    applied (one Spark read and GX validation per run, not per chunk): a block applies nothing and raises."""
    gate = run_gate(ctx.tables.read_appends(SOURCE, after, up_to), SOURCE, SOURCE, ctx.run_id, table_version=up_to,
                    docs_dir=ctx.settings.quality_docs)
    record_gate(ctx.tables, gate, f"{APP_ID}:bronze", up_to, ctx.settings.data_docs_index)
    gate.release()
    log.info("%s v%s..v%s: %s in %.2f s (input %.2f s)", SOURCE, -1 if after is None else after, up_to,
             gate.message, gate.seconds, gate.input_seconds)
    raise_if_blocked(gate, "silver CDC tables")
    return gate


def apply_chunk(ctx: JobContext, done: int | None, current: int) -> int:
    """Apply bronze versions (done, current]; returns the number of envelopes.

    One read of the new bronze rows into Arrow; envelopes are parsed once; every target gets one MERGE from an
    Arrow table (delta-rs merges it without a Spark job), keyed by (APP_ID, current)."""
    tables = ctx.tables
    started = time.perf_counter()
    ensure_tables(ctx)
    bronze = tables.read_appends_arrow(SOURCE, done, current, ["topic", "partition", "offset", "key", "value"])
    t0 = time.perf_counter()
    batch = parse_batch(bronze)
    log.info("read %s bronze rows in %.2f s, parsed in %.2f s", bronze.num_rows, t0 - started,
             time.perf_counter() - t0)
    pause = float(os.environ.get(PAUSE_ENV) or 0)
    time.sleep(pause)
    pii = [tokenize_changes(changes, TABLES[name], ctx.settings.pii_salt)
           for name, changes in batch.changes.items() if changes and TABLES[name].pii]
    latest = {name: latest_changes(changes) for name, changes in batch.changes.items() if changes}
    touched = {name: {key_text(TABLES[name], k) for k in keys} for name, keys in latest.items()
               if TABLES[name].scd1}
    tombstones = _tombstones_of(ctx, touched)

    def merge(source: pa.Table, target: str, spec_kwargs: dict) -> None:
        if source.num_rows == 0:
            return
        t0 = time.perf_counter()
        if tables.merge_arrow(source, target, MergeSpec(**spec_kwargs), app_id=APP_ID, batch_id=current):
            log.info("merged %s rows into %s in %.2f s", source.num_rows, target, time.perf_counter() - t0)
            time.sleep(pause)

    new_tombstones = []
    for name, per_key in latest.items():
        spec = TABLES[name]
        if spec.scd1:
            merge(scd1_arrow(per_key, tombstones.get(name, {}), spec), spec.scd1, scd1_merge_kwargs(spec))
            new_tombstones.append(tombstones_arrow(per_key, spec))
        if spec.scd2 and not _committed(ctx, spec.scd2, current):
            history = _history_of(ctx, spec, set(per_key))
            merge(scd2_rebuild_arrow(history, batch.changes[name], spec), spec.scd2, scd2_merge_kwargs(spec))
    if new_tombstones:
        merge(pa.concat_tables(new_tombstones), TOMBSTONES, TOMBSTONE_MERGE)
    if pii:
        merge(pa.concat_tables(pii), PII_TABLE, PII_MERGE)
    # last: its transaction id marks the bronze version as processed (also when there is no dead letter)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    tables.write_batch_arrow(dead_letters_arrow(batch.dead, now), DEAD_LETTER, APP_ID, current)
    log.info("silver CDC: %s envelopes from %s v%s..v%s in %.2f s", batch.envelopes, SOURCE,
             -1 if done is None else done, current, time.perf_counter() - started)
    return batch.envelopes


def _committed(ctx: JobContext, target: str, batch_id: int) -> bool:
    """True when `target` already holds this bronze version (a rerun after a crash)."""
    committed = ctx.tables.committed_batch(target, APP_ID)
    return committed is not None and committed >= batch_id


def validate_mirror(ctx: JobContext) -> dict[str, GateResult]:
    """Validate every silver CDC table that has a suite, as it stands after the apply (warn-only suites: silver
    mirrors the system of record, so findings are reported in ops.quality_validations, never refused)."""
    version = ctx.tables.committed_batch(DEAD_LETTER, APP_ID)
    gates: dict[str, GateResult] = {}
    for spec in TABLES.values():
        for target in (spec.scd1, spec.scd2):
            if not target or not ctx.tables.exists(target) or not resolve_suite_path(target).is_file():
                continue
            gate = run_gate(ctx.tables.read(target), target, target, ctx.run_id, table_version=version,
                            docs_dir=ctx.settings.quality_docs)
            record_gate(ctx.tables, gate, f"{APP_ID}:{target}", version or 0, ctx.settings.data_docs_index)
            gate.release()
            log.info("%s: %s", target, gate.message)
            gates[target] = gate
    return gates


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--max-versions", type=int, default=MAX_VERSIONS, help="bronze versions per committed chunk")
    args = p.parse_args(argv)
    require_tables(SOURCE, hint="run the bronze_cdc job first")
    ctx = job_context(APP_ID)
    if apply_changes(ctx, args.max_versions):
        validate_mirror(ctx)
    for name in targets():
        if ctx.tables.exists(name):
            ctx.tables.register(name)


if __name__ == "__main__":
    sys.exit(run_main(main))
