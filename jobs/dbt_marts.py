"""dbt marts: build the dbt project (dbt-spark, `session` target) on gold and silver, with its tests, then its docs.

Runs dbt in this process so that dbt's session-mode `getOrCreate` uses the platform's configured session. A
plain `build` is skipped when the sources' versions and the dbt project are what the last successful build used and
every mart exists (so a rerun on unchanged inputs changes no table); `--force` builds anyway. After a plain build
the docs site is generated (`dbt docs generate --static`: one self-contained page under `$LAKEHOUSE_HOME/dbt`)."""

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

log = logging.getLogger("dbt_marts")


def build_stamp(ctx: JobContext) -> dict[str, object]:
    """What a build depends on: the sources' Delta versions and a digest of the dbt project's files."""
    from lakehouse.dbt import DBT_PROJECT_DIR, dbt_sources

    digest = hashlib.sha256()
    for path in sorted(p for p in DBT_PROJECT_DIR.rglob("*") if p.is_file() and "target" not in p.parts):
        digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode() + b"\0" + path.read_bytes())
    return {"sources": {s: ctx.tables.version(s) for s in dbt_sources()}, "project": digest.hexdigest()}


def marts_exist(ctx: JobContext) -> bool:
    from lakehouse.dbt import DBT_PROJECT_DIR

    return all(ctx.tables.exists(f"marts.{p.stem}") for p in (DBT_PROJECT_DIR / "models" / "marts").rglob("*.sql"))


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("dbt_args", nargs="*", default=["build"], help="dbt command and arguments")
    p.add_argument("--force", action="store_true", help="build even when gold and the project are unchanged")
    args = p.parse_args(argv)
    from lakehouse.dbt import dbt_sources, run_dbt, summarize

    sources = dbt_sources()
    require_tables(*sources, hint="run the gold jobs first")
    ctx = job_context("dbt_marts")
    for source in sources:
        ctx.tables.register(source)

    dbt_args = args.dbt_args or ["build"]
    stamp_file = state_path(ctx.settings, "dbt_marts", "last_build.json")  # under the tables root
    stamp = build_stamp(ctx)
    plain_build = dbt_args == ["build"]
    previous = read_text(stamp_file)
    if plain_build and not args.force and previous is not None and json.loads(previous) == stamp \
            and marts_exist(ctx):
        log.info("marts are up to date with %s", stamp["sources"])
        return
    result = run_dbt(ctx.spark, [*dbt_args, "--quiet"])  # each node's line goes to dbt's log only
    print(f"dbt {' '.join(dbt_args)}: {summarize(result)} (log {ctx.settings.home / 'dbt' / 'logs'})", flush=True)
    if plain_build:
        run_dbt(ctx.spark, ["docs", "generate", "--static", "--quiet"])
        write_text(stamp_file, json.dumps(stamp))


if __name__ == "__main__":
    sys.exit(run_main(main))
