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

import json
import logging
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.ml.demand_models import (
    Backtest,
    make_model,
    model_input,
    promotion_decision,
    rolling_origin_backtest,
)
from lakehouse.ml.registry import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    champion,
    configure_mlflow,
    experiment_id,
    mlflow_client,
    pip_requirements,
    trusted_types,
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
class Spec:
    """A model configuration: its kind and parameters."""

    kind: str
    params: dict[str, Any]

    @property
    def label(self) -> str:
        return self.kind if not self.params else f"{self.kind}{json.dumps(self.params, sort_keys=True)}"


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


def champion_spec(settings: Settings) -> tuple[str, Spec] | None:
    """(version, spec) of the current champion, from the parameters its run logged; None when there is none."""
    version = champion(settings, MODEL_NAME)
    if version is None:
        return None
    params = mlflow_client(settings).get_run(version.run_id).data.params
    return str(version.version), Spec(params["model_kind"], json.loads(params.get("model_params", "{}")))


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
    from mlflow.models import infer_signature

    started = time.perf_counter()
    configure_mlflow(settings)
    make_model(spec.kind, spec.params)  # a bad spec fails before any work
    champion = champion_spec(settings)
    contenders = {BASELINE_KIND: Spec(BASELINE_KIND, {}), spec.label: spec}
    roles: dict[str, list[str]] = {BASELINE_KIND: ["baseline"]}
    roles.setdefault(spec.label, []).append("challenger")
    if champion is not None:
        contenders.setdefault(champion[1].label, champion[1])
        roles.setdefault(champion[1].label, []).append(f"champion v{champion[0]}")
    names = {label: f"{label} ({', '.join(roles[label])})" for label in contenders}
    backtest = rolling_origin_backtest(
        examples, {names[label]: (lambda s=s: make_model(s.kind, s.params)) for label, s in contenders.items()},
        folds=folds, step_days=step_days)
    challenger_wape = backtest.wape(names[spec.label])
    if champion is None:
        promoted, reason = promotion_decision(challenger_wape, None, min_improvement)
    elif champion[1] == spec:
        promoted, reason = True, "the champion's configuration retrained on newer data"
    else:
        promoted, reason = promotion_decision(challenger_wape, backtest.wape(names[champion[1].label]),
                                              min_improvement)

    train = examples[examples[TARGET].notna() & examples["in_stock"].eq(True)]
    model = make_model(spec.kind, spec.params).fit(model_input(train), train[TARGET])
    example = model_input(train.head(5)).reset_index(drop=True)
    signature = infer_signature(example, model.predict(example))
    naive_wape = backtest.wape(names[BASELINE_KIND])
    overall = backtest.metrics[backtest.metrics["segment"] == "all"].set_index("model").loc[names[spec.label]]
    with mlflow.start_run(experiment_id=experiment_id(settings, EXPERIMENT_NAME),
                          run_name=f"{spec.kind}-train") as run:
        mlflow.log_params({
            "model_kind": spec.kind, "model_params": json.dumps(spec.params, sort_keys=True),
            "feature_table": feature_table, "feature_table_version": feature_version,
            "folds": folds, "fold_step_days": step_days,
            "fold_origins": ",".join(str(o) for o in backtest.origins), "train_rows": len(train),
            "sample_fraction": round(sample_fraction, 6), "min_improvement": min_improvement,
        })
        mlflow.log_metrics({
            "backtest_wape": challenger_wape, "backtest_mase": float(overall["mase"]),
            "backtest_bias": float(overall["bias"]), "backtest_coverage_80": float(overall["coverage_80"]),
            "naive_wape": naive_wape, "wape_vs_naive": challenger_wape / naive_wape,
        })
        mlflow.set_tags({"lineage.feature_table": f"{feature_table}@v{feature_version}",
                         **{f"lineage.source.{t}": f"v{v}" for t, v in (sources or {}).items()},
                         "promotion": "promoted" if promoted else "rejected", "promotion_reason": reason})
        mlflow.log_text(backtest.metrics.to_csv(index=False), "backtest/metrics.csv")
        mlflow.log_text(format_backtest(backtest.metrics), "backtest/metrics.txt")
        if feature_frame is not None:
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)  # the dataset's
            # schema names the table's integer columns; the model's own signature is all floats and strings
            mlflow.log_input(mlflow.data.from_spark(
                feature_frame, table_name=feature_table, version=str(feature_version),
                digest=f"{feature_table}@v{feature_version}", name=feature_table), context="training")
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops", skops_trusted_types=trusted_types(model),
            pip_requirements=pip_requirements(), signature=signature, input_example=example,
            registered_model_name=MODEL_NAME,
        )
    version = str(info.registered_model_version)
    client = mlflow_client(settings)
    client.set_registered_model_alias(MODEL_NAME, CHALLENGER_ALIAS, version)
    client.update_model_version(MODEL_NAME, version, description=f"{spec.label}: {reason}")
    if promoted:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, version)
    log.info("%s v%s (%s) in %.1f s: %s", MODEL_NAME, version, spec.label, time.perf_counter() - started, reason)
    return TrainingResult(run.info.run_id, version, spec, promoted, reason, backtest)


def parse_params(text: str | None) -> dict[str, Any]:
    """--params JSON object -> dict, with a clear error."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LakehouseError(f"--params is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LakehouseError("--params must be a JSON object, e.g. '{\"max_iter\": 200}'")
    return value
