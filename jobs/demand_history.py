"""Generate daily demand history with known effects (lakehouse.ml.demand_history) into the tables demand models
read: silver.demand_daily, silver.demand_prices, silver.promotions, silver.weather_daily, silver.competitor_prices.

Each run overwrites them with the history of its arguments (same arguments and catalogue, same rows). When the ERP
catalogue (silver.products) is there, each sku's history is in its category and currency and ends at its price."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from pyspark.sql import functions as F

from lakehouse.job import job_context, parser, run_main
from lakehouse.ml.demand_history import BUILDERS, CHANNELS, TABLES, HistoryConfig

CATALOGUE = "silver.products"


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    default = HistoryConfig()
    p.add_argument("--skus", type=int, default=default.skus)
    p.add_argument("--channels", default=",".join(default.channels), help=f"of {', '.join(CHANNELS)}")
    p.add_argument("--warehouses-per-region", type=int, default=default.warehouses_per_region)
    p.add_argument("--days", type=int, default=default.days)
    p.add_argument("--end", type=dt.date.fromisoformat, default=default.end, help="the last day of sales")
    p.add_argument("--seed", type=int, default=default.seed)
    args = p.parse_args(argv)
    config = HistoryConfig(skus=args.skus, channels=tuple(c.strip() for c in args.channels.split(",") if c.strip()),
                           warehouses_per_region=args.warehouses_per_region, days=args.days, end=args.end,
                           seed=args.seed)
    config.validate()
    ctx = job_context("demand_history")
    if ctx.tables.exists(CATALOGUE):
        listed = ctx.tables.read(CATALOGUE).where(F.col("sku").isin(config.sku_codes()))  # --skus rows at most
        config = dataclasses.replace(config, catalogue=tuple(
            (r.sku, r.category, float(r.price), r.currency)
            for r in listed.select("sku", "category", "price", "currency").collect()))
    for key, table in TABLES.items():
        ctx.tables.overwrite(BUILDERS[key](ctx.spark, config), table)
        ctx.tables.register(table)
    print(f"demand history: {len(config.series())} series x {config.days} days ({config.start} .. {config.end}) "
          f"-> {ctx.tables.row_count(TABLES['sales'])} rows in {TABLES['sales']}")


if __name__ == "__main__":
    sys.exit(run_main(main))
