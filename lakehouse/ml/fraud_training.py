"""Train, evaluate, register and promote payment fraud models in MLflow.

One training run:

1. reads the labelled attempts of one Delta version of `gold.fraud_features` (the training data version), at most
   `max_rows` of them (a hash sample of attempts beyond that: the features were computed on every attempt);
2. splits them in time (`time_split`) and fits, on the earlier part, the rules baseline, the challenger
   (`kind`, `params`) and the current champion's configuration; scores the later part with each and tabulates
   PR-AUC and recall at a 1 % false-positive rate, overall and per fraud pattern;
3. fits the challenger on every attempt, logs it (skops) with its signature, input example, the feature table and
   version as a dataset input, the history tables' versions as lineage tags and the evaluation table as an
   artifact; registers it as a new version of `MODEL_NAME` with the alias `challenger`;
4. moves the alias `champion` to it only when its test PR-AUC beats the champion configuration's (a challenger
   with the champion's own configuration is a refresh on newer data and replaces it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lakehouse.config import Settings
from lakehouse.ml.fraud_models import (
    BASELINE_KIND,
    MAX_FPR,
    evaluation_table,
    format_evaluation,
    make_model,
    model_input,
    time_split,
)
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
from transformations.gold.fraud_features import KEY, LABEL

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

MODEL_NAME = "fraud_payment"
EXPERIMENT_NAME = "fraud_payment"
DEFAULT_MAX_ROWS = 500_000


@dataclass(frozen=True)
class FraudTrainingResult:
    run_id: str
    version: str
    spec: Spec
    promoted: bool
    reason: str
    evaluation: pd.DataFrame  # evaluation_table of every model judged
    scoring_us_per_attempt: float  # the challenger scoring the test attempts in one batch, in-process


def figure(evaluation: pd.DataFrame, model: str, column: str, segment: str = "all") -> float:
    """One figure of an evaluation table."""
    return float(evaluation[(evaluation["model"] == model) & (evaluation["segment"] == segment)][column].iloc[0])


def bounded_attempts(features: DataFrame, max_rows: int = DEFAULT_MAX_ROWS) -> tuple[pd.DataFrame, float]:
    """The labelled attempts as pandas, a hash sample of them when there are more than `max_rows`, in time order;
    returns the frame and the fraction kept."""
    from pyspark.sql import functions as F

    labelled = features.where(F.col(LABEL).isNotNull())
    rows = labelled.count()
    fraction = 1.0 if rows <= max_rows else max_rows / rows
    if fraction < 1.0:
        labelled = labelled.where(F.pmod(F.xxhash64(KEY), F.lit(10_000)) < F.lit(int(fraction * 10_000)))
    frame = labelled.toPandas().sort_values(["event_time", KEY], kind="stable", ignore_index=True)
    return frame, fraction


def train_and_register(attempts: pd.DataFrame, spec: Spec, *, settings: Settings, feature_table: str,
                       feature_version: int, feature_frame: DataFrame | None = None,
                       sources: dict[str, int] | None = None, test_fraction: float = 0.3,
                       min_improvement: float = 0.0, max_fpr: float = MAX_FPR,
                       sample_fraction: float = 1.0) -> FraudTrainingResult:
    """Evaluate `spec` against the rules and the champion on later attempts, register it, promote it when it wins."""
    import mlflow

    started = time.perf_counter()
    configure_mlflow(settings)
    make_model(spec.kind, spec.params)  # a bad spec fails before any work
    train, test = time_split(attempts, test_fraction)
    champion = champion_spec(settings, MODEL_NAME)
    named = contenders(Spec(BASELINE_KIND, {}), spec, champion)
    scores: dict[str, np.ndarray] = {}
    for name, s in named.items():
        fitted = make_model(s.kind, s.params).fit(model_input(train), train[LABEL])
        began = time.perf_counter()
        scores[name] = fitted.predict(model_input(test))
        if s == spec:
            per_attempt_us = (time.perf_counter() - began) / len(test) * 1e6
    table = evaluation_table(test, scores, max_fpr)

    def overall(name: str, column: str) -> float:
        return figure(table, name, column)

    promoted, reason = judge(spec, champion, lambda s: overall(name_of(named, s), "pr_auc"), min_improvement,
                             metric="test PR-AUC", higher_is_better=True)
    model = make_model(spec.kind, spec.params).fit(model_input(attempts), attempts[LABEL])
    mine, rules = name_of(named, spec), name_of(named, Spec(BASELINE_KIND, {}))
    patterns = table[(table["model"] == mine) & (table["segment"] != "all")]
    with mlflow.start_run(experiment_id=experiment_id(settings, EXPERIMENT_NAME),
                          run_name=f"{spec.kind}-train") as run:
        mlflow.log_params({
            **spec.as_params(), "feature_table": feature_table, "feature_table_version": feature_version,
            "test_fraction": test_fraction, "test_from": str(test["event_time"].min()), "train_rows": len(train),
            "test_rows": len(test), "fit_rows": len(attempts), "max_fpr": max_fpr,
            "sample_fraction": round(sample_fraction, 6), "min_improvement": min_improvement,
        })
        mlflow.log_metrics({
            "test_pr_auc": overall(mine, "pr_auc"), "test_recall_at_fpr": overall(mine, "recall"),
            "test_fpr": overall(mine, "fpr"), "test_precision_at_fpr": overall(mine, "precision"),
            "rules_pr_auc": overall(rules, "pr_auc"), "rules_recall_at_fpr": overall(rules, "recall"),
            "pr_auc_vs_rules": overall(mine, "pr_auc") / max(overall(rules, "pr_auc"), 1e-9),
            "scoring_us_per_attempt": per_attempt_us,
            **{f"recall_{r.segment}": r.recall for r in patterns.itertuples(index=False)},
        })
        log_training_data(feature_table, feature_version, sources, feature_frame)
        mlflow.log_text(table.to_csv(index=False), "evaluation/metrics.csv")
        mlflow.log_text(format_evaluation(table), "evaluation/metrics.txt")
        version = register_model(model, model_input(attempts.head(5)).reset_index(drop=True), settings=settings,
                                 model_name=MODEL_NAME, label=spec.label, promoted=promoted, reason=reason)
    log.info("%s v%s (%s) in %.1f s: %s", MODEL_NAME, version, spec.label, time.perf_counter() - started, reason)
    return FraudTrainingResult(run.info.run_id, version, spec, promoted, reason, table, per_attempt_us)
