"""Benchmark: the always-on pipeline under SIGKILLs (lakehouse.chaos), with the load of a flash-sale day.

    lakehouse demo   # once: services, seeded ERP, catalogue; it leaves the pipeline running
    LAKEHOUSE_HOME=<that home> .venv/bin/python benchmarks/chaos.py [--kills 20] [--seconds 600]
        [--orders-per-min 10000] [--erp-per-s 2] [--seed N] [--drain 1800] [--quiet-s 60]

Produces the generator's stream (all families, no faults) in real time while the ERP workload commits, kills
--kills times (the broker once, PostgreSQL once, the rest over the stages and the CDC capture; seeded: --seed
replays a schedule), waits until the pipeline is quiet, stops it and checks every invariant. Prints the schedule
(again on a failure), what each kill took down and for how long, what died on its own and was restarted, and
per family the counts; exits 1 when an invariant does not hold. The pipeline is left stopped.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lakehouse import chaos, pipeline  # noqa: E402
from lakehouse.config import get_settings  # noqa: E402
from lakehouse.events.generator import DEFAULT_FAMILY_MIX, StreamConfig, generate_stream, unused_first_order  # noqa: E402
from lakehouse.job import job_context, require_kafka, require_tables  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--orders-per-min", type=int, default=10_000)
    ap.add_argument("--erp-per-s", type=float, default=2.0, help="ERP transactions per second")
    ap.add_argument("--seed", type=int, default=None, help="replay a schedule (default: a new one, printed)")
    ap.add_argument("--drain", type=float, default=1800, help="seconds to wait for the pipeline to catch up")
    ap.add_argument("--quiet-s", type=float, default=60, help="the capture quiet this long counts as caught up")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    settings = get_settings()
    require_kafka(settings)
    require_tables("silver.products", "silver.inventory", hint="run `lakehouse demo` on this home first")
    schedule = chaos.kill_schedule(seed, args.kills, args.seconds)
    print(f"schedule: {chaos.describe(seed, schedule)}", flush=True)
    rate = args.orders_per_min / 60 / DEFAULT_FAMILY_MIX["orders"]
    stream = generate_stream(StreamConfig(seed=seed, rate=rate, duration_s=args.seconds, faults={},
                                          first_order=unused_first_order(settings.kafka_bootstrap),
                                          start=datetime.now(UTC) + timedelta(seconds=30)))
    drill = chaos.ChaosDrill(settings)
    started = time.monotonic()
    start = drill.run(schedule, stream, erp_per_s=args.erp_per_s, drain_s=args.drain, seed=seed,
                      quiet_s=args.quiet_s)
    caught_up = time.monotonic() - started
    pipeline.stop(settings)
    result = chaos.verify(job_context("chaos-verify"), stream, start)

    print(f"\n{stream.report.produced:,} events in {args.seconds} s ({args.orders_per_min:,} orders/min), "
          f"{drill.log.erp_transactions:,} ERP transactions ({drill.log.erp_failures} refused while PostgreSQL was "
          f"down); caught up {caught_up - args.seconds:.0f} s after the load ended")
    print("kills: " + ", ".join(f"{k.at:.0f}s {k.target} (pid {pid}, back in {down:.1f} s)"
                                for k, pid, down in drill.log.killed))
    print(f"restarted after dying on their own: {dict(drill.log.died_on_their_own) or 'none'}")
    print(f"drain polls the broker did not answer: {drill.log.unanswered_polls or 'none'}")
    print(f"{'family':12s} {'kafka':>8s} {'bronze+dl':>10s} {'twice':>6s} {'events':>8s} {'silver':>8s}")
    for family, f in result["families"].items():
        print(f"{family:12s} {f['kafka_records']:8,} {f['bronze_and_dead_letter']:10,} {f['coordinates_twice']:6,} "
              f"{f['events']:8,} {f['in_silver']:8,}")
    print("gold vs a batch recompute (missing, extra): " + ", ".join(f"{t} {d}" for t, d in result["gold"].items()))
    print("ERP mirror vs PostgreSQL (rows, missing, extra): " + ", ".join(f"{t} {d}" for t, d in result["cdc"].items()))
    wrong = chaos.broken(result)
    if wrong:
        print("\nINVARIANTS BROKEN:\n  " + "\n  ".join(wrong) + f"\nreplay: --seed {seed} --kills {args.kills} "
              f"--seconds {args.seconds}\nschedule: {chaos.describe(seed, schedule)}")
        return 1
    print("\nevery invariant holds (the pipeline is stopped: `lakehouse pipeline start` resumes it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
