"""Demand forecast: daily units per channel, trained on `gold.sales`, registered in MLflow, scored by Spark.

Features are deliberately simple and computable both in pandas (training) and in Spark SQL (scoring):

* `channel`      - one-hot encoded (unknown channels at scoring time get an all-zero vector),
* `day_of_week`  - 0 = Monday ... 6 = Sunday, one-hot encoded (weekly pattern),
* `day_index`    - days since `EPOCH` (linear trend).

The model is a `Pipeline(ColumnTransformer -> Ridge)`, logged with skops serialization, registered under
`model_name`, and the new version gets the alias `champion`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

# jobs log; they do not draw progress bars
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from lakehouse.config import Settings, get_settings
from lakehouse.errors import LakehouseError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

EXPERIMENT_NAME = "demand_forecast"
DEFAULT_MODEL_NAME = "demand_forecast"
CHAMPION_ALIAS = "champion"
EPOCH = dt.date(2020, 1, 1)
FEATURE_COLUMNS = ["channel", "day_of_week", "day_index"]
TARGET_COLUMN = "units"
HOLDOUT_DAYS = 7
MIN_TRAIN_DAYS_FOR_HOLDOUT = 14  # holdout only when at least this many days remain for training
RANDOM_STATE = 42
RIDGE_ALPHA = 0.1


@dataclass(frozen=True)
class TrainedModel:
    """A registered model version and how it did."""

    run_id: str
    model_uri: str  # models:/<name>/<version>
    version: str
    metrics: dict[str, float] = field(default_factory=dict)
    model_name: str = DEFAULT_MODEL_NAME


# --- features ----------------------------------------------------------------------------------


def build_features(pdf: pd.DataFrame) -> pd.DataFrame:
    """Aggregate units per order_date x channel (across currencies) and add model features.

    Returns columns order_date (datetime.date), channel, day_of_week (int64, Monday=0), day_index (int64, days
    since EPOCH), units (int64), sorted by order_date, channel. Pure: the input is not modified.
    """
    missing = {"order_date", "channel", "units"} - set(pdf.columns)
    if missing:
        raise LakehouseError(f"sales data lacks columns: {', '.join(sorted(missing))}")
    if pdf.empty:
        return pd.DataFrame(
            {
                "order_date": pd.Series(dtype=object),
                "channel": pd.Series(dtype=object),
                "day_of_week": pd.Series(dtype="int64"),
                "day_index": pd.Series(dtype="int64"),
                TARGET_COLUMN: pd.Series(dtype="int64"),
            }
        )
    work = pdf[["order_date", "channel", "units"]].copy()
    work["order_date"] = pd.to_datetime(work["order_date"]).dt.normalize()
    work["units"] = pd.to_numeric(work["units"]).fillna(0).astype("int64")
    out = (
        work.groupby(["order_date", "channel"], as_index=False, sort=True)["units"]
        .sum()
        .sort_values(["order_date", "channel"], kind="mergesort")
        .reset_index(drop=True)
    )
    out["day_of_week"] = out["order_date"].dt.dayofweek.astype("int64")
    out["day_index"] = (out["order_date"] - pd.Timestamp(EPOCH)).dt.days.astype("int64")
    out["order_date"] = out["order_date"].dt.date
    out["units"] = out["units"].astype("int64")
    return out[["order_date", "channel", "day_of_week", "day_index", TARGET_COLUMN]]


def build_pipeline() -> Pipeline:
    """Unfitted pipeline: one-hot(channel, day_of_week) + scaled day_index -> Ridge regression."""
    prep = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), ["channel", "day_of_week"]),
            ("trend", StandardScaler(), ["day_index"]),
        ]
    )
    return Pipeline([("prep", prep), ("model", Ridge(alpha=RIDGE_ALPHA, random_state=RANDOM_STATE))])


def _split_holdout(features: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Time-based split: the last HOLDOUT_DAYS days, when enough earlier days remain."""
    days = sorted(features["order_date"].unique())
    if len(days) < MIN_TRAIN_DAYS_FOR_HOLDOUT + HOLDOUT_DAYS:
        return None
    cutoff = days[-HOLDOUT_DAYS]
    return features[features["order_date"] < cutoff], features[features["order_date"] >= cutoff]


# --- MLflow --------------------------------------------------------------------------------------


def configure_mlflow(settings: Settings) -> None:
    """Point MLflow at the environment's tracking/registry URIs ($MLFLOW_TRACKING_URI, $MLFLOW_REGISTRY_URI,
    a Databricks workspace), or at the embedded SQLite store under $LAKEHOUSE_HOME."""
    import mlflow

    if settings.mlflow_embedded:
        (settings.home / "mlflow").mkdir(parents=True, exist_ok=True)
        settings.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    # MLflow also writes the URIs it is given into $MLFLOW_TRACKING_URI/$MLFLOW_REGISTRY_URI; left there, one
    # home's embedded store would read as the user's choice to every later Settings of this process
    users = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_registry_uri)
    for name, value in users.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def mlflow_client(settings: Settings) -> MlflowClient:
    """A client of the tracking and registry URIs `configure_mlflow` uses."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_registry_uri)


def experiment_id(settings: Settings, name: str = EXPERIMENT_NAME) -> str:
    client = mlflow_client(settings)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if not settings.mlflow_embedded:  # the tracking server decides where artifacts go
        return client.create_experiment(name)
    location = Path(settings.mlflow_artifacts) / name
    return client.create_experiment(name, artifact_location=location.resolve().as_uri())


def trusted_types(pipeline: Pipeline) -> list[str]:
    """Types skops does not trust by default but that this (our own) pipeline contains."""
    import skops.io as sio

    return sorted(sio.get_untrusted_types(data=sio.dumps(pipeline)))


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model (skips MLflow's slow subprocess-based inference)."""
    from importlib.metadata import version

    return [f"{dist}=={version(dist)}" for dist in ("mlflow", "scikit-learn", "skops", "numpy", "pandas")]


def train_demand_model(
    sales_df: DataFrame, model_name: str = DEFAULT_MODEL_NAME, settings: Settings | None = None
) -> TrainedModel:
    """Train on gold sales, log to MLflow (experiment `demand_forecast`), register and alias `champion`."""
    import mlflow
    from mlflow.models import infer_signature
    from pyspark.sql import functions as F

    settings = settings or get_settings()
    started = time.perf_counter()
    daily = (
        sales_df.where("order_date IS NOT NULL AND channel IS NOT NULL")
        .groupBy("order_date", "channel")
        .agg(F.sum("units").cast("long").alias("units"))
        .toPandas()
    )
    features = build_features(daily)
    if features.empty:
        raise LakehouseError("no sales rows to train the demand model on")
    n_days = int(features["order_date"].nunique())

    metrics: dict[str, float] = {}
    split = _split_holdout(features)
    if split is not None:
        train, holdout = split
        candidate = build_pipeline().fit(train[FEATURE_COLUMNS], train[TARGET_COLUMN].astype("float64"))
        pred = np.clip(candidate.predict(holdout[FEATURE_COLUMNS]), 0, None)
        metrics["holdout_mae"] = float(mean_absolute_error(holdout[TARGET_COLUMN], pred))
        metrics["holdout_rows"] = float(len(holdout))

    # The registered model is refit on every day available.
    X, y = features[FEATURE_COLUMNS], features[TARGET_COLUMN].astype("float64")
    pipeline = build_pipeline().fit(X, y)
    train_pred = np.clip(pipeline.predict(X), 0, None)
    metrics["train_mae"] = float(mean_absolute_error(y, train_pred))
    metrics["mae"] = metrics.get("holdout_mae", metrics["train_mae"])
    metrics["train_rows"] = float(len(features))
    metrics["train_days"] = float(n_days)

    configure_mlflow(settings)
    experiment = experiment_id(settings)
    example = X.head(5).reset_index(drop=True)
    with warnings.catch_warnings():  # integer feature columns never hold missing values here
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        signature = infer_signature(example, pipeline.predict(example))
    with mlflow.start_run(experiment_id=experiment, run_name=f"{model_name}-train") as run:
        mlflow.log_params(
            {
                "model": "ridge",
                "alpha": RIDGE_ALPHA,
                "random_state": RANDOM_STATE,
                "features": ",".join(FEATURE_COLUMNS),
                "epoch": EPOCH.isoformat(),
                "first_date": str(features["order_date"].min()),
                "last_date": str(features["order_date"].max()),
                "channels": ",".join(sorted(features["channel"].unique())),
                "holdout_days": HOLDOUT_DAYS if split is not None else 0,
            }
        )
        mlflow.log_metrics(metrics)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            serialization_format="skops",
            skops_trusted_types=trusted_types(pipeline),
            pip_requirements=pip_requirements(),
            signature=signature,
            input_example=example,
            registered_model_name=model_name,
        )
        run_id = run.info.run_id
    version = str(info.registered_model_version)
    client = mlflow_client(settings)
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
    log.info(
        "trained %s v%s on %d days in %.1fs: %s",
        model_name,
        version,
        n_days,
        time.perf_counter() - started,
        metrics,
    )
    return TrainedModel(
        run_id=run_id,
        model_uri=f"models:/{model_name}/{version}",
        version=version,
        metrics=metrics,
        model_name=model_name,
    )


# --- scoring -------------------------------------------------------------------------------------


def forecast_frame(spark: SparkSession, sales_df: DataFrame, horizon_days: int = 7) -> DataFrame:
    """(forecast_date, channel) for the `horizon_days` days after the last order_date, for every channel seen."""
    from pyspark.sql import functions as F

    if horizon_days < 1:
        raise LakehouseError(f"horizon_days must be >= 1, got {horizon_days}")
    last = sales_df.agg(F.max(F.col("order_date").cast("date")).alias("d")).first()
    if last is None or last["d"] is None:
        raise LakehouseError("no sales rows: cannot build a forecast frame")
    last_date: dt.date = last["d"]
    dates = spark.createDataFrame(
        [(last_date + dt.timedelta(days=i),) for i in range(1, horizon_days + 1)], "forecast_date date"
    )
    channels = sales_df.select(F.col("channel").cast("string").alias("channel")).where("channel IS NOT NULL")
    return dates.crossJoin(channels.distinct()).orderBy("forecast_date", "channel")


def _resolve_model(model_uri: str, settings: Settings) -> tuple[str, str]:
    """(name, version) for models:/name/version or models:/name@alias; ("", "") for other URIs."""
    if not model_uri.startswith("models:/"):
        return "", ""
    ref = model_uri[len("models:/") :].strip("/")
    client = mlflow_client(settings)
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, str(client.get_model_version_by_alias(name, alias).version)
    name, _, version = ref.partition("/")
    if version.isdigit():
        return name, version
    if version.lower() == "latest":
        latest = max(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        return name, str(latest)
    raise LakehouseError(f"cannot resolve model URI {model_uri!r}")


def add_features(df: DataFrame, date_col: str = "forecast_date") -> DataFrame:
    """Spark twin of `build_features`' feature columns (day_of_week Monday=0, day_index since EPOCH)."""
    from pyspark.sql import functions as F

    return df.withColumn("day_of_week", F.weekday(F.col(date_col)).cast("long")).withColumn(
        "day_index", F.datediff(F.col(date_col), F.lit(EPOCH)).cast("long")
    )


def check_worker_python(spark: SparkSession) -> None:
    """Warn when a local session's Python workers are not this interpreter (they would lack mlflow/sklearn)."""
    import os
    import sys

    sc = spark.sparkContext
    worker = getattr(sc, "pythonExec", None) or os.environ.get("PYSPARK_PYTHON") or "python3"
    if sc.master.startswith("local") and os.path.abspath(worker) != os.path.abspath(sys.executable):
        log.warning(
            "Spark Python workers run %s, not %s: they may miss mlflow/scikit-learn/skops. "
            "Start the session with lakehouse.spark.get_spark (it sets PYSPARK_PYTHON).",
            worker,
            sys.executable,
        )


def score_forecast(
    spark: SparkSession, future_df: DataFrame, model_uri: str, settings: Settings | None = None
) -> DataFrame:
    """Predict units for (forecast_date, channel) rows with the model at `model_uri` (via `spark_udf`).

    Output: forecast_date date, channel string, predicted_units double (>= 0), model_name string,
    model_version string, scored_at timestamp (one UTC instant for the whole batch).
    """
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    settings = settings or get_settings()
    check_worker_python(spark)
    configure_mlflow(settings)
    name, version = _resolve_model(model_uri, settings)
    predict = mlflow.pyfunc.spark_udf(spark, model_uri, env_manager="local", result_type="double")
    scored_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    feats = add_features(
        future_df.select(F.col("forecast_date").cast("date"), F.col("channel").cast("string"))
    )
    prediction = predict(F.struct(*[F.col(c) for c in FEATURE_COLUMNS]))
    return feats.select(
        "forecast_date",
        "channel",
        F.greatest(F.coalesce(prediction, F.lit(0.0)), F.lit(0.0)).cast("double").alias("predicted_units"),
        F.lit(name or model_uri).alias("model_name"),
        F.lit(version).cast("string").alias("model_version"),
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
    )


def model_info(model_uri: str, settings: Settings | None = None) -> dict[str, Any]:
    """Name and version behind a models:/ URI (for job logs)."""
    name, version = _resolve_model(model_uri, settings or get_settings())
    return {"model_name": name, "model_version": version, "model_uri": model_uri}
