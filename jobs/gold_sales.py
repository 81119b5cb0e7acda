"""Gold sales: silver.orders -> gold.sales_daily (day x channel x currency), gated by its suite.

Thin on purpose: recomputed in full on every run (a full overwrite is one Delta commit, so readers never see
a partial table)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from lakehouse.job import job_context, parser, require_tables, run_main, source_version_to_process
from lakehouse.quality.gate import run_gate
from lakehouse.quality.ops import raise_if_blocked, record_gate
from transformations.gold.sales import sales_daily

SOURCE = "silver.orders"
TABLE = "gold.sales_daily"
APP_ID = "gold_sales"


def main(argv: Sequence[str] | None = None) -> None:
    parser(__doc__).parse_args(argv)
    require_tables(SOURCE, hint="run the silver_orders job first")
    ctx = job_context(APP_ID)
    source_version = source_version_to_process(ctx, SOURCE, TABLE, APP_ID)
    if source_version is None:
        return
    sales = sales_daily(ctx.tables.read(SOURCE, version=source_version))
    gate = run_gate(sales, TABLE, TABLE, ctx.run_id, table_version=source_version,
                    docs_dir=ctx.settings.quality_docs)
    record_gate(ctx.tables, gate, f"{APP_ID}:results", source_version, ctx.settings.data_docs_index)
    raise_if_blocked(gate, TABLE)
    ctx.tables.write_batch(gate.valid, TABLE, APP_ID, source_version, mode="overwrite")
    gate.release()
    ctx.tables.register(TABLE)


if __name__ == "__main__":
    sys.exit(run_main(main))
