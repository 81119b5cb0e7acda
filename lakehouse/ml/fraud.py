"""Fraud anomaly model: an isolation forest over per-order signals, registered in MLflow (alias `champion`) and
scored by Spark inside the gold micro-batch, giving `anomaly_score` 0-100 (higher = more unusual).

Features (all numeric, computed by `transformations.gold.fraud.fraud_signals`): log amount, orders in the last
hour, amount z-score, prior chargebacks, currency mismatch. Logged with skops; the scorer class is this
project's own, declared trusted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest

from lakehouse.config import Settings, get_settings
from lakehouse.errors import LakehouseError
from lakehouse.ml.registry import (
    CHAMPION_ALIAS,
    champion,
    check_worker_python,
    configure_mlflow,
    experiment_id,
    mlflow_client,
    pip_requirements,
    trusted_types,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)
MODEL_NAME = "fraud_anomaly"
EXPERIMENT_NAME = "fraud_anomaly"
FEATURES = ["log_amount", "orders_last_hour", "amount_zscore", "prior_chargebacks", "currency_mismatch"]
RANDOM_STATE = 42


@dataclass(frozen=True)
class TrainedModel:
    """A registered model version and how it did."""

    run_id: str
    model_uri: str  # models:/<name>/<version>
    version: str
    metrics: dict[str, float] = field(default_factory=dict)
    model_name: str = MODEL_NAME


class AnomalyScorer(BaseEstimator):
    """Isolation forest whose `predict` is the anomaly score 0-100 (MLflow's pyfunc calls `predict`)."""

    def __init__(self, n_estimators: int = 100, random_state: int = RANDOM_STATE) -> None:
        self.n_estimators = n_estimators
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: object = None) -> AnomalyScorer:
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.random_state).fit(
            np.asarray(X, dtype="float64"))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.round(-self.forest_.score_samples(np.asarray(X, dtype="float64")) * 100, 2)


def feature_columns() -> list[Column]:
    """The model's inputs from a fraud_signals frame, as Spark columns (same order as FEATURES)."""
    from pyspark.sql import functions as F

    return [
        F.log1p(F.greatest(F.col("total_amount").cast("double"), F.lit(0.0))).alias("log_amount"),
        F.col("orders_last_hour").cast("double").alias("orders_last_hour"),
        F.coalesce(F.col("amount_zscore").cast("double"), F.lit(0.0)).alias("amount_zscore"),
        F.col("prior_chargebacks").cast("double").alias("prior_chargebacks"),
        F.col("currency_mismatch").cast("double").alias("currency_mismatch"),
    ]


def train_fraud_model(signals: DataFrame, settings: Settings | None = None) -> TrainedModel:
    """Fit on the given fraud signals, log with skops, register MODEL_NAME and alias it `champion`."""
    import mlflow
    from mlflow.models import infer_signature

    settings = settings or get_settings()
    started = time.perf_counter()
    X = signals.select(*feature_columns()).orderBy(*feature_columns()).toPandas()  # same fit on any partitioning
    if X.empty:
        raise LakehouseError("no fraud signals to train the anomaly model on")
    model = AnomalyScorer().fit(X)
    configure_mlflow(settings)
    example = X.head(5).reset_index(drop=True)
    with mlflow.start_run(experiment_id=experiment_id(settings, EXPERIMENT_NAME), run_name="fraud-train") as run:
        mlflow.log_params({"model": "isolation_forest", "n_estimators": model.n_estimators,
                           "random_state": RANDOM_STATE, "features": ",".join(FEATURES)})
        mlflow.log_metrics({"train_rows": float(len(X))})
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops", skops_trusted_types=trusted_types(model),
            pip_requirements=pip_requirements(), signature=infer_signature(example, model.predict(example)),
            input_example=example, registered_model_name=MODEL_NAME,
        )
    version = str(info.registered_model_version)
    mlflow_client(settings).set_registered_model_alias(
        MODEL_NAME, CHAMPION_ALIAS, version)
    log.info("trained %s v%s on %d orders in %.1f s", MODEL_NAME, version, len(X), time.perf_counter() - started)
    return TrainedModel(run.info.run_id, f"models:/{MODEL_NAME}/{version}", version, {"train_rows": float(len(X))},
                        MODEL_NAME)


def champion_uri(settings: Settings) -> str | None:
    """models:/fraud_anomaly/<version> of the champion, or None when no model is registered yet."""
    version = champion(settings, MODEL_NAME)
    return None if version is None else f"models:/{MODEL_NAME}/{version.version}"


def score_anomalies(signals: DataFrame, settings: Settings | None = None) -> DataFrame:
    """`signals` + anomaly_score (0-100) and anomaly_model_version, scored with the champion (trained first on
    these signals when none is registered)."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    settings = settings or get_settings()
    spark = signals.sparkSession
    check_worker_python(spark)
    uri = champion_uri(settings) or train_fraud_model(signals, settings).model_uri
    predict = mlflow.pyfunc.spark_udf(spark, uri, env_manager="local", result_type="double")
    return signals.withColumns({
        "anomaly_score": F.round(predict(F.struct(*feature_columns())), 2),
        "anomaly_model_version": F.lit(uri.rsplit("/", 1)[1]),
    })
