"""Generate a labelled payment history (lakehouse.ml.fraud_history: honest customers and guests, card testing, bot
bursts, account takeovers, country mismatches) into the tables fraud models read: silver.fraud_payment_attempts,
silver.fraud_clickstream, silver.fraud_account_events. Each run overwrites them (same arguments, same rows)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])


from lakehouse.job import job_context, parser, run_main
from lakehouse.ml.fraud_history import BUILDERS, TABLES, FraudHistoryConfig


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    default = FraudHistoryConfig()
    p.add_argument("--customers", type=int, default=default.customers)
    p.add_argument("--days", type=int, default=default.days)
    p.add_argument("--end", type=dt.date.fromisoformat, default=default.end, help="the last day of the history")
    p.add_argument("--seed", type=int, default=default.seed)
    p.add_argument("--card-testers", type=int, default=default.card_testers)
    p.add_argument("--bots", type=int, default=default.bots)
    p.add_argument("--takeovers", type=int, default=default.takeovers)
    p.add_argument("--mismatches", type=int, default=default.mismatches)
    args = p.parse_args(argv)
    config = FraudHistoryConfig(customers=args.customers, days=args.days, end=args.end, seed=args.seed,
                                card_testers=args.card_testers, bots=args.bots, takeovers=args.takeovers,
                                mismatches=args.mismatches)
    ctx = job_context("fraud_history")
    for key, table in TABLES.items():
        ctx.tables.overwrite(BUILDERS[key](ctx.spark, config), table)
        ctx.tables.register(table)
    counts = {r.fraud_pattern: r["count"] for r in
              ctx.tables.read(TABLES["attempts"]).groupBy("fraud_pattern").count().collect()}
    fraud = sum(n for pattern, n in counts.items() if pattern != "none")
    print(f"fraud history: {sum(counts.values())} payment attempts ({config.start} .. {config.end}), {fraud} "
          f"fraudulent: " + ", ".join(f"{p} {n}" for p, n in sorted(counts.items()) if p != "none")
          + f" -> {TABLES['attempts']}")


if __name__ == "__main__":
    sys.exit(run_main(main))
