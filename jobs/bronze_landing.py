"""Bronze landing files: S3 landing bucket -> bronze.shipment_manifests_raw / bronze.settlements_raw, exactly once.

Exactly-once in one place (lakehouse/sources/landing.py): each batch's object list (key, ETag) is recorded in
the checkpoint before it is read, and committed with the Delta transaction id (app id, batch id); a crash
replays the recorded batch, which a committed table skips. Bad files/lines -> bronze.landing_dead_letter."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

if __package__ in (None, ""):  # spark-submit jobs/bronze_landing.py
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from lakehouse.job import job_context, parser, run_main
from lakehouse.services.s3 import S3Config, require_s3, s3_client
from lakehouse.sources.landing import DEAD_LETTER_TABLE, KINDS, LandingIngestor, get_kind

log = logging.getLogger("bronze_landing")


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--kind", required=True, choices=sorted(KINDS))
    p.add_argument("--bucket", default=None, help="landing bucket (default $LAKEHOUSE_LANDING_BUCKET or 'landing')")
    p.add_argument("--prefix", default=None, help="key prefix (default: the kind's, e.g. settlements/)")
    p.add_argument("--max-files-per-batch", type=int, default=100)
    p.add_argument("--max-batches", type=int, default=None, help="stop after this many new batches")
    args = p.parse_args(argv)

    kind = get_kind(args.kind)
    cfg = require_s3(S3Config.from_env())  # fail fast, before a Spark session starts
    ctx = job_context(kind.app_id)
    ingestor = LandingIngestor(
        ctx.spark, ctx.tables, s3_client(cfg), kind, args.bucket or cfg.bucket,
        ctx.settings.checkpoint(kind.app_id), prefix=args.prefix, max_files=args.max_files_per_batch,
    )
    report = ingestor.run(max_batches=args.max_batches)
    log.info("%s: %s", kind.table, report.summary())
    for name in (kind.table, DEAD_LETTER_TABLE):
        if ctx.tables.exists(name):
            ctx.tables.register(name)


if __name__ == "__main__":
    sys.exit(run_main(main))
