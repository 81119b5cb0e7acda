"""Train, backtest, register and promote sku x channel x warehouse demand models in MLflow.

One training run:

1. reads the forecast examples of one Delta version of `gold.demand_features` (the training data version), at most
   `max_rows` of them: larger tables are sampled by whole series (a hash of the series key), so driver memory is
   bounded whatever the table's size;
2. backtests on rolling origins, on the same folds: the seasonal naive baseline, the challenger (`kind`, `params`)
   and the current champion's configuration (read from its run) when it differs from the challenger's;
3. fits the challenger on every example, logs it (skops) with its signature, input example, the feature table and
   version as a dataset input, the source tables' versions as lineage tags and the backtest table as an artifact;
   registers it as a new version of `MODEL_NAME` with the alias `challenger`;
4. moves the alias `champion` to it only when its backtest WAPE beats the champion's (`promotion_decision`); a
   challenger with the champion's own configuration is a refresh on newer data and replaces it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from lakehouse.config import Settings
from lakehouse.ml.demand_models import Backtest, make_model, model_input, rolling_origin_backtest
from lakehouse.ml.registry import (
    Spec,
    champion_spec,
    configure_mlflow,
    contenders,
    experiment_id,
    judge,
    log_training_data,
    name_of,
    register_model,
)
from transformations.gold.demand_features import KEYS, SERIES, TARGET

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

MODEL_NAME = "demand_sku"
EXPERIMENT_NAME = "demand_sku"
BASELINE_KIND = "seasonal_naive"
DEFAULT_MAX_ROWS = 1_000_000


@dataclass(frozen=True)
class TrainingResult:
    run_id: str
    version: str
    spec: Spec
    promoted: bool
    reason: str
    backtest: Backtest


def bounded_examples(features: DataFrame, max_rows: int = DEFAULT_MAX_ROWS) -> tuple[pd.DataFrame, float]:
    """The observed examples as pandas, sampled by whole series when there are more than `max_rows`; returns the
    frame and the fraction of series kept."""
    from pyspark.sql import functions as F

    observed = features.where(F.col(TARGET).isNotNull())
    rows = observed.count()
    fraction = 1.0 if rows <= max_rows else max_rows / rows
    if fraction < 1.0:
        bucket = F.pmod(F.xxhash64(*SERIES), F.lit(10_000))
        observed = observed.where(bucket < F.lit(int(fraction * 10_000)))
    frame = observed.toPandas().sort_values([*KEYS, "horizon"], kind="stable", ignore_index=True)
    return frame, fraction  # in key order: the same examples train the same model whatever the partitioning


def format_backtest(metrics: pd.DataFrame) -> str:
    """The backtest table as fixed-width text (one line per model x segment)."""
    width = max([len("model"), *(len(m) for m in metrics["model"])])
    lines = [f"{'model':<{width}} {'segment':<12} {'WAPE':>7} {'MASE':>7} {'bias':>7} {'cover80':>8} {'rows':>7}"]
    for r in metrics.itertuples(index=False):
        lines.append(f"{r.model:<{width}} {r.segment:<12} {r.wape:>7.3f} {r.mase:>7.3f} {r.bias:>+7.3f} "
                     f"{r.coverage_80:>8.2f} {r.rows:>7d}")
    return "\n".join(lines)


def train_and_register(examples: pd.DataFrame, spec: Spec, *, settings: Settings, feature_table: str,
                       feature_version: int, feature_frame: DataFrame | None = None,
                       sources: dict[str, int] | None = None, folds: int = 4, step_days: int = 14,
                       min_improvement: float = 0.0, sample_fraction: float = 1.0) -> TrainingResult:
    """Backtest `spec` against the baseline and the champion, register it, promote it when it wins."""
    import mlflow

    started = time.perf_counter()
    configure_mlflow(settings)
    make_model(spec.kind, spec.params)  # a bad spec fails before any work
    champion = champion_spec(settings, MODEL_NAME)
    named = contenders(Spec(BASELINE_KIND, {}), spec, champion)
    backtest = rolling_origin_backtest(
        examples, {name: (lambda s=s: make_model(s.kind, s.params)) for name, s in named.items()},
        folds=folds, step_days=step_days)
    challenger_wape = backtest.wape(name_of(named, spec))
    promoted, reason = judge(spec, champion, lambda s: backtest.wape(name_of(named, s)), min_improvement)

    train = examples[examples[TARGET].notna() & examples["in_stock"].eq(True)]
    model = make_model(spec.kind, spec.params).fit(model_input(train), train[TARGET])
    naive_wape = backtest.wape(name_of(named, Spec(BASELINE_KIND, {})))
    overall = backtest.metrics[backtest.metrics["segment"] == "all"].set_index("model").loc[name_of(named, spec)]
    with mlflow.start_run(experiment_id=experiment_id(settings, EXPERIMENT_NAME),
                          run_name=f"{spec.kind}-train") as run:
        mlflow.log_params({
            **spec.as_params(), "feature_table": feature_table, "feature_table_version": feature_version,
            "folds": folds, "fold_step_days": step_days,
            "fold_origins": ",".join(str(o) for o in backtest.origins), "train_rows": len(train),
            "sample_fraction": round(sample_fraction, 6), "min_improvement": min_improvement,
        })
        mlflow.log_metrics({
            "backtest_wape": challenger_wape, "backtest_mase": float(overall["mase"]),
            "backtest_bias": float(overall["bias"]), "backtest_coverage_80": float(overall["coverage_80"]),
            "naive_wape": naive_wape, "wape_vs_naive": challenger_wape / naive_wape,
        })
        log_training_data(feature_table, feature_version, sources, feature_frame)
        mlflow.log_text(backtest.metrics.to_csv(index=False), "backtest/metrics.csv")
        mlflow.log_text(format_backtest(backtest.metrics), "backtest/metrics.txt")
        version = register_model(model, model_input(train.head(5)).reset_index(drop=True), settings=settings,
                                 model_name=MODEL_NAME, label=spec.label, promoted=promoted, reason=reason)
    log.info("%s v%s (%s) in %.1f s: %s", MODEL_NAME, version, spec.label, time.perf_counter() - started, reason)
    return TrainingResult(run.info.run_id, version, spec, promoted, reason, backtest)
