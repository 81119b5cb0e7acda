"""MLflow for every model of the platform: where runs and the registry live, how models are logged (skops, pinned
requirements), and the alias the pipeline scores with."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

# jobs log; they do not draw progress bars
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from lakehouse.config import Settings  # noqa: E402

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"


def champion(settings: Settings, model_name: str):  # noqa: ANN201 - mlflow's ModelVersion, imported lazily
    """The registered version holding the `champion` alias of `model_name`; None when there is none."""
    from mlflow.exceptions import MlflowException

    configure_mlflow(settings)
    try:
        return mlflow_client(settings).get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException:
        return None


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


def experiment_id(settings: Settings, name: str) -> str:
    """The id of experiment `name`, created on first use (its artifacts under the home when the store is embedded)."""
    client = mlflow_client(settings)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if not settings.mlflow_embedded:  # the tracking server decides where artifacts go
        return client.create_experiment(name)
    location = Path(settings.mlflow_artifacts) / name
    return client.create_experiment(name, artifact_location=location.resolve().as_uri())


def trusted_types(model: object) -> list[str]:
    """Types skops does not trust by default but that this (our own) model contains."""
    import skops.io as sio

    return sorted(sio.get_untrusted_types(data=sio.dumps(model)))


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model (skips MLflow's slow subprocess-based inference)."""
    from importlib.metadata import version

    return [f"{dist}=={version(dist)}" for dist in ("mlflow", "scikit-learn", "skops", "numpy", "pandas")]


def check_worker_python(spark: SparkSession) -> None:
    """Warn when a local session's Python workers are not this interpreter (they would lack mlflow/sklearn)."""
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
