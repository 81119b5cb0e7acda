"""dbt marts: build the dbt project (dbt-spark, session profile) on top of gold, with its tests.

Runs dbt in this process so that dbt's session-mode `getOrCreate` uses the platform's configured session. A
plain `build` is skipped when the gold sources' versions and the dbt project are what the last successful build
used and every mart exists (so a rerun on unchanged gold changes no table); `--force` builds anyway."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from lakehouse.job import JobContext, job_context, parser, require_tables, run_main
from lakehouse.state import read_text, state_path, write_text

SOURCES = ["gold.sales"]
log = logging.getLogger("dbt_marts")


def build_stamp(ctx: JobContext) -> dict[str, object]:
    """What a build depends on: the sources' Delta versions and a digest of the dbt project's files."""
    from lakehouse.dbt import DBT_PROJECT_DIR

    digest = hashlib.sha256()
    for path in sorted(p for p in DBT_PROJECT_DIR.rglob("*") if p.is_file() and "target" not in p.parts):
        digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode() + b"\0" + path.read_bytes())
    return {"sources": {s: ctx.tables.version(s) for s in SOURCES}, "project": digest.hexdigest()}


def marts_exist(ctx: JobContext) -> bool:
    from lakehouse.dbt import DBT_PROJECT_DIR

    return all(ctx.tables.exists(f"marts.{p.stem}") for p in (DBT_PROJECT_DIR / "models" / "marts").glob("*.sql"))


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("dbt_args", nargs="*", default=["build"], help="dbt command and arguments")
    p.add_argument("--force", action="store_true", help="build even when gold and the project are unchanged")
    args = p.parse_args(argv)
    require_tables(*SOURCES, hint="run the gold jobs first")
    ctx = job_context("dbt_marts")
    for source in SOURCES:
        ctx.tables.register(source)
    from lakehouse.dbt import run_dbt

    dbt_args = args.dbt_args or ["build"]
    stamp_file = state_path(ctx.settings, "dbt_marts", "last_build.json")  # under the tables root
    stamp = build_stamp(ctx)
    plain_build = dbt_args == ["build"]
    previous = read_text(stamp_file)
    if plain_build and not args.force and previous is not None and json.loads(previous) == stamp \
            and marts_exist(ctx):
        log.info("marts are up to date with %s", stamp["sources"])
        return
    run_dbt(ctx.spark, dbt_args)
    if plain_build:
        write_text(stamp_file, json.dumps(stamp))


if __name__ == "__main__":
    sys.exit(run_main(main))
