"""Bronze events: Kafka topics of every event family -> bronze.<family>_events (+ bronze.dead_letter), exactly once.

`--family X` reads topic X (one query per family, scale-out); `--family all` (default) reads every family's
topic with one query and routes records by topic. Records that cannot be events (oversized, not UTF-8, not
JSON, empty) go to bronze.dead_letter with a reason and their Kafka coordinates. Exactly once across crashes:
offsets in the query's checkpoint, every table commit keyed by (app id, batch id) (see lakehouse.ingest).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

if __package__ in (None, ""):  # spark-submit jobs/bronze_events.py
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from lakehouse.config import get_settings
from lakehouse.events.schemas import FAMILIES
from lakehouse.ingest import IngestSpec, ingest
from lakehouse.job import job_context, parser, require_kafka, run_main
from transformations.bronze.events import DEFAULT_MAX_BYTES


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--family", default="all", choices=["all", *FAMILIES])
    p.add_argument("--topic-prefix", default="", help="topics are <prefix><family>")
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="larger payloads are dead-lettered")
    p.add_argument("--trigger", choices=["available-now", "continuous"], default="available-now")
    p.add_argument("--interval", default="5 seconds")
    p.add_argument("--max-offsets-per-trigger", type=int, default=None)
    p.add_argument("--timeout", type=float, default=None, help="continuous: stop after this many seconds")
    args = p.parse_args(argv)

    spec = IngestSpec(family=args.family, topic_prefix=args.topic_prefix, max_bytes=args.max_bytes,
                      max_offsets_per_trigger=args.max_offsets_per_trigger)
    spec.families  # noqa: B018 - validate before starting Spark
    require_kafka(get_settings(), wait_s=5.0 if args.trigger == "continuous" else None)
    ctx = job_context(spec.app_id)
    ingest(ctx.spark, ctx.tables, ctx.settings, spec, args.trigger == "continuous", args.interval, args.timeout,
           register=True)


if __name__ == "__main__":
    sys.exit(run_main(main))
