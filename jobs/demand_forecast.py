"""Demand forecast: train on gold.sales (the commerce model's placed orders per day x channel x region x
currency), register in MLflow (alias `champion`), score the next days per channel into gold.demand_forecast.

Thin on purpose: one global model over day-of-week, trend and channel; retrained on each run that sees a new
gold version (a run on the same gold version is skipped)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from lakehouse.job import job_context, parser, require_tables, run_main, source_version_to_process
from lakehouse.ml.demand import forecast_frame, score_forecast, train_demand_model

SOURCE = "gold.sales"
TABLE = "gold.demand_forecast"
APP_ID = "demand_forecast:gold.sales"  # per source: a home that forecast gold.sales_daily retrains


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--horizon-days", type=int, default=7)
    args = p.parse_args(argv)
    require_tables(SOURCE, hint="run the gold_commerce job first")
    ctx = job_context(APP_ID)
    source_version = source_version_to_process(ctx, SOURCE, TABLE, APP_ID)
    if source_version is None:
        return
    sales = ctx.tables.read(SOURCE, version=source_version)
    model = train_demand_model(sales, settings=ctx.settings)
    forecast = score_forecast(ctx.spark, forecast_frame(ctx.spark, sales, args.horizon_days), model.model_uri,
                              settings=ctx.settings)
    ctx.tables.write_batch(forecast, TABLE, APP_ID, source_version, mode="overwrite")
    ctx.tables.register(TABLE)
    print(f"{TABLE}: scored with {model.model_uri} (metrics {model.metrics})")


if __name__ == "__main__":
    sys.exit(run_main(main))
