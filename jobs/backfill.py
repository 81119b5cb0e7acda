"""Backfill: replay history files (JSON lines or Parquet, `<root>/<family>/...` in S3 or any path Spark reads)
through bronze, silver and gold in batch, with the pipeline's own transformations, exactly once.

1. bronze: new history files -> bronze.<family>_events / bronze.dead_letter (lakehouse.backfill);
2. silver: silver_events' queries, available-now, over what each family's bronze gained (gated, deduplicated on event id);
3. gold: gold_commerce's query, available-now, over the silver changes (positions of the touched keys, the other
   tables recomputed).

A step is left to the always-on pipeline when its stage (silver_events, gold_commerce) runs on this home: the
stage then takes the backfilled range like any other (two writers of the same tables would only conflict), and
the running streams are not touched (bronze appends under the backfill's own transaction id). `--bronze-only` stops
after step 1 on purpose. A rerun over the same history writes nothing.

`--from bronze --since T [--until U]` replays what bronze already holds instead (a logic fix, corrected reference
data, a changed suite): the rows ingested in [T, U) go through silver again (jobs.silver_replay), then gold."""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections.abc import Sequence

if __package__ in (None, ""):  # spark-submit jobs/backfill.py
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from jobs import gold_commerce, silver_events, silver_replay
from lakehouse.backfill import APP_ID, Backfill, BackfillReport
from lakehouse.events.schemas import FAMILIES
from lakehouse.ingest import DEAD_LETTER_TABLE, family_table
from lakehouse.job import JobContext, job_context, parser, run_main
from lakehouse.pipeline import stage_running
from lakehouse.services.s3 import S3Config, use_s3a
from transformations.bronze.events import DEFAULT_MAX_BYTES

log = logging.getLogger(APP_ID)


def run_backfill(ctx: JobContext, root: str, families: Sequence[str] | None = None, *, max_files: int | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, bronze_only: bool = False,
                 seconds: dict[str, float] | None = None) -> BackfillReport:
    """Bronze, then silver and gold (each unless its pipeline stage runs on this home); returns bronze's report.
    `seconds` (when given) receives each step's wall time: bronze, silver, gold."""
    seconds = {} if seconds is None else seconds
    if root.startswith("s3a://"):
        use_s3a(ctx.spark, S3Config.from_env())
    started = time.perf_counter()
    report = Backfill(ctx.spark, ctx.tables, ctx.settings, root, families=list(families or []) or None,
                      max_files=max_files, max_bytes=max_bytes).run()
    seconds["bronze"] = time.perf_counter() - started
    print(f"backfill bronze: {report.summary()}")
    ctx.tables.register_new([*(family_table(f) for f in report.families), DEAD_LETTER_TABLE], set())
    if bronze_only:
        return report
    if stage_running(ctx.settings, silver_events.APP_ID):
        print("the pipeline's silver_events stage runs on this home: it takes the backfilled bronze range")
        return report
    started = time.perf_counter()
    silver_events.process_all(ctx, families or FAMILIES)
    seconds["silver"] = time.perf_counter() - started
    _gold(ctx, seconds)
    return report


def _gold(ctx: JobContext, seconds: dict[str, float]) -> None:
    """gold_commerce's query over the new silver versions (available-now), unless its stage runs on this home."""
    if stage_running(ctx.settings, gold_commerce.APP_ID):
        print("the pipeline's gold_commerce stage runs on this home: it takes the new silver versions")
        return
    missing = [t for t in gold_commerce.SOURCES.values() if not ctx.tables.exists(t)]
    if missing:
        print(f"gold waits for {', '.join(missing)} (CDC and landing jobs); silver is up to date")
        return
    started = time.perf_counter()
    gold_commerce.run(ctx)
    seconds["gold"] = time.perf_counter() - started
    print("backfill done: silver and gold are up to date with bronze")


def run_replay(ctx: JobContext, since: dt.datetime, until: dt.datetime | None,
               families: Sequence[str] | None = None, seconds: dict[str, float] | None = None
               ) -> list[silver_replay.ReplayResult]:
    """Bronze rows ingested in [since, until) through silver again (jobs.silver_replay), then gold."""
    seconds = {} if seconds is None else seconds
    started = time.perf_counter()
    results = silver_replay.replay(ctx, families or FAMILIES, since, until)
    seconds["silver"] = time.perf_counter() - started
    for result in results:
        print(f"replay {result.summary()}")
    if not results:
        print("replay: no bronze rows ingested in that range")
        return results
    _gold(ctx, seconds)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--from", dest="root", required=True,
                   help="history root: s3a://bucket/prefix, a local folder, ...; files under <root>/<family>/; or "
                        "`bronze`: replay bronze rows ingested since --since")
    p.add_argument("--since", default=None, help="with --from bronze: ISO date or timestamp (UTC), inclusive")
    p.add_argument("--until", default=None, help="with --from bronze: ISO date or timestamp (UTC), exclusive")
    p.add_argument("--family", action="append", choices=FAMILIES, help="repeatable; default: every family")
    p.add_argument("--max-files-per-batch", type=int, default=None, help="default: all new files in one batch")
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="larger records are dead letters")
    p.add_argument("--bronze-only", action="store_true", help="stop after bronze (silver/gold run elsewhere)")
    args = p.parse_args(argv)
    if args.root == "bronze":
        if args.since is None:
            p.error("--from bronze needs --since (the first ingest time to replay)")
        since, until = silver_replay.time_range(args.since, args.until)  # before a Spark session starts
        run_replay(job_context(APP_ID), since, until, args.family)
        return
    if args.since or args.until:
        p.error("--since/--until go with --from bronze")
    run_backfill(job_context(APP_ID), args.root, args.family, max_files=args.max_files_per_batch,
                 max_bytes=args.max_bytes, bronze_only=args.bronze_only)


if __name__ == "__main__":
    sys.exit(run_main(main))
