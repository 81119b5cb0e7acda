"""dbt marts: build the dbt project (dbt-spark, session profile) on top of gold, with its tests.

Runs dbt in this process so that dbt's session-mode `getOrCreate` uses the platform's configured session."""

from __future__ import annotations

import sys
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from lakehouse.job import job_context, parser, require_tables, run_main

SOURCES = ["gold.sales_daily"]


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("dbt_args", nargs="*", default=["build"], help="dbt command and arguments")
    args = p.parse_args(argv)
    require_tables(*SOURCES, hint="run the gold jobs first")
    ctx = job_context("dbt_marts")
    for source in SOURCES:
        ctx.tables.register(source)
    from lakehouse.dbt import run_dbt

    run_dbt(ctx.spark, args.dbt_args or ["build"])


if __name__ == "__main__":
    sys.exit(run_main(main))
