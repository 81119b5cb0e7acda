"""Silver orders: new bronze.orders_raw versions -> parsed, deduplicated, gated silver.orders.

Unparseable payloads and rows failing `quarantine` expectations go to silver.orders_quarantine with their
reason; a `block` failure leaves every target unchanged and stops the job loudly. Exactly once: each target
commit carries the transaction id (app id, bronze version processed), and the next run starts after the
version silver.orders last committed."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from lakehouse.job import job_context, parser, require_tables, run_main
from lakehouse.quality.gate import run_gate
from lakehouse.quality.ops import RESULTS, VALIDATIONS, raise_if_blocked, record_gate
from lakehouse.tables import MergeSpec
from transformations.silver.orders import (
    PARSE_ERROR,
    dedupe_events,
    parse_order_events,
    quarantine_rows,
    split_parse_errors,
    to_silver_columns,
)

SOURCE = "bronze.orders_raw"
TABLE = "silver.orders"
QUARANTINE = "silver.orders_quarantine"
APP_ID = "silver_orders"
log = logging.getLogger(APP_ID)


def main(argv: Sequence[str] | None = None) -> None:
    parser(__doc__).parse_args(argv)
    require_tables(SOURCE, hint="run the bronze_orders job first")
    ctx = job_context(APP_ID)
    tables = ctx.tables
    done = tables.committed_batch(TABLE, APP_ID)
    current = tables.version(SOURCE)
    if done is not None and done >= current:
        log.info("%s is up to date with %s v%s", TABLE, SOURCE, current)
        return

    parsed = parse_order_events(tables.read_appends(SOURCE, done, current)).cache()
    events, unparseable = split_parse_errors(parsed)
    gate = run_gate(dedupe_events(events), TABLE, TABLE, ctx.run_id, table_version=current,
                    docs_dir=ctx.settings.quality_docs)
    record_gate(tables, gate, f"{APP_ID}:results", current, ctx.settings.data_docs_index)
    raise_if_blocked(gate, TABLE)
    rejected = quarantine_rows(unparseable, PARSE_ERROR, TABLE, ctx.run_id).unionByName(
        quarantine_rows(gate.quarantined, "_quarantine_reason", TABLE, ctx.run_id)
    )
    tables.write_batch(rejected, QUARANTINE, APP_ID, current)
    # last: its transaction id marks the bronze version as processed
    tables.merge(to_silver_columns(gate.valid), TABLE, MergeSpec(on="t.event_id = s.event_id", update=False),
                 app_id=APP_ID, batch_id=current)
    gate.release()
    parsed.unpersist()
    for name in (TABLE, QUARANTINE, RESULTS, VALIDATIONS):
        tables.register(name)
    log.info("%s: processed %s up to v%s (%s)", TABLE, SOURCE, current, gate.message)


if __name__ == "__main__":
    sys.exit(run_main(main))
