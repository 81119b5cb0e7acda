"""Demand models per sku x channel x warehouse: build gold.demand_features from the demand tables, backtest a model
against seasonal naive and the champion on rolling origins, register it in MLflow (alias `challenger`) and promote
it to `champion` only when its backtest WAPE beats the champion's. Prints the backtest table."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from pyspark.sql import functions as F

from lakehouse.job import job_context, parser, require_tables, run_main
from lakehouse.ml.demand_history import TABLES
from lakehouse.ml.demand_models import MODEL_KINDS, make_model
from lakehouse.ml.demand_training import (
    DEFAULT_MAX_ROWS,
    MODEL_NAME,
    bounded_examples,
    format_backtest,
    train_and_register,
)
from lakehouse.ml.registry import Spec, parse_params
from transformations.gold.demand_features import MAX_HORIZON, forecast_examples, origins_every

FEATURE_TABLE = "gold.demand_features"


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--model", choices=sorted(MODEL_KINDS), default="gradient_boosting")
    p.add_argument("--params", help="the model's parameters as a JSON object")
    p.add_argument("--folds", type=int, default=4, help="backtest origins")
    p.add_argument("--step-days", type=int, default=14, help="days between backtest origins")
    p.add_argument("--origin-every", type=int, default=7, help="days between training origins")
    p.add_argument("--min-improvement", type=float, default=0.0,
                   help="fraction by which the challenger's WAPE must beat the champion's")
    p.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, help="examples read into the trainer at most")
    args = p.parse_args(argv)
    spec = Spec(args.model, parse_params(args.params))
    make_model(spec.kind, spec.params)  # a bad configuration fails before any work
    require_tables(*TABLES.values(), hint="run the demand_history job first")
    ctx = job_context("demand_training")
    frames = {key: ctx.tables.read(table) for key, table in TABLES.items()}
    sources = {table: ctx.tables.version(table) for table in TABLES.values()}
    dates = tuple(frames["sales"].agg(F.min("date"), F.max("date")).first())
    first_origin = dates[0] + dt.timedelta(days=35)  # five weeks of same-weekday lags behind every origin
    examples = forecast_examples(
        frames["sales"], frames["prices"], frames["promotions"], frames["weather"], frames["competitor"],
        last_date=dates[1], origins=origins_every(dates[1], args.origin_every, first_origin), horizon=MAX_HORIZON)
    ctx.tables.overwrite(examples, FEATURE_TABLE)
    ctx.tables.register(FEATURE_TABLE)
    version = ctx.tables.version(FEATURE_TABLE)
    features = ctx.tables.read(FEATURE_TABLE, version=version)
    pdf, fraction = bounded_examples(features, args.max_rows)
    result = train_and_register(
        pdf, spec, settings=ctx.settings, feature_table=FEATURE_TABLE, feature_version=version,
        feature_frame=features, sources=sources, folds=args.folds, step_days=args.step_days,
        min_improvement=args.min_improvement, sample_fraction=fraction)
    print(f"backtest origins: {', '.join(str(o) for o in result.backtest.origins)} (horizon {MAX_HORIZON} days)")
    print(format_backtest(result.backtest.metrics))
    verdict = "champion" if result.promoted else "challenger only"
    print(f"{MODEL_NAME} v{result.version} ({spec.label}): {verdict} - {result.reason}")


if __name__ == "__main__":
    sys.exit(run_main(main))
