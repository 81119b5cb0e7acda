"""MLflow for every model of the platform: where runs and the registry live, how models are logged (skops, pinned
requirements, lineage of the training data), the aliases the pipeline scores with, and the rule every training run
applies before moving `champion`: the baseline, the challenger and the champion's configuration are measured on
the same data, and the challenger must be strictly better."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# jobs log; they do not draw progress bars
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from lakehouse.config import Settings  # noqa: E402
from lakehouse.errors import LakehouseError  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    from mlflow.tracking import MlflowClient
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"


@dataclass(frozen=True)
class Spec:
    """A model configuration: its kind and parameters (logged as the run's `model_kind` and `model_params`)."""

    kind: str
    params: dict[str, Any]

    @property
    def label(self) -> str:
        return self.kind if not self.params else f"{self.kind}{json.dumps(self.params, sort_keys=True)}"

    def as_params(self) -> dict[str, str]:
        return {"model_kind": self.kind, "model_params": json.dumps(self.params, sort_keys=True)}


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


def make_estimator(kinds: dict[str, type], kind: str, params: dict[str, Any] | None, family: str) -> Any:
    """A `kinds[kind]` built with `params`; a clear error for an unknown kind or parameter."""
    if kind not in kinds:
        raise LakehouseError(f"unknown {family} model {kind!r}; models are: {', '.join(kinds)}")
    try:
        return kinds[kind](**(params or {}))
    except TypeError as exc:
        raise LakehouseError(f"bad parameters for {kind}: {exc}") from None


def champion_spec(settings: Settings, model_name: str) -> tuple[str, Spec] | None:
    """(version, spec) of `model_name`'s champion, from the parameters its run logged; None when there is none."""
    version = champion(settings, model_name)
    if version is None:
        return None
    params = mlflow_client(settings).get_run(version.run_id).data.params
    return str(version.version), Spec(params["model_kind"], json.loads(params.get("model_params", "{}")))


def promotion_decision(challenger: float, champion: float | None, min_improvement: float = 0.0, *,
                       metric: str = "backtest WAPE", higher_is_better: bool = False) -> tuple[bool, str]:
    """Promote when no champion exists, or when the challenger's `metric` beats the champion's (measured on the
    same data) by at least `min_improvement` (a fraction of the champion's); returns (promote, reason)."""
    if not math.isfinite(challenger):
        return False, f"the challenger's {metric} is undefined"
    if champion is None:
        return True, "no champion yet"
    margin = f" x (1 {'+' if higher_is_better else '-'} {min_improvement:g})" if min_improvement else ""
    bar = champion * (1 + min_improvement) if higher_is_better else champion * (1 - min_improvement)
    better = challenger > bar if higher_is_better else challenger < bar
    if better:
        return True, f"{metric} {challenger:.4f} {'>' if higher_is_better else '<'} champion's {champion:.4f}{margin}"
    return False, f"{metric} {challenger:.4f} does not beat the champion's {champion:.4f}{margin}"


def contenders(baseline: Spec, challenger: Spec, champion: tuple[str, Spec] | None) -> dict[str, Spec]:
    """Name -> configuration of everything a training run judges on the same data: the baseline, the challenger
    and the champion's configuration; one configuration in several roles is judged once, named after all of them,
    e.g. "rules (baseline, champion v1)"."""
    specs = {baseline.label: baseline, challenger.label: challenger}
    roles: dict[str, list[str]] = {baseline.label: ["baseline"]}
    roles.setdefault(challenger.label, []).append("challenger")
    if champion is not None:
        specs.setdefault(champion[1].label, champion[1])
        roles.setdefault(champion[1].label, []).append(f"champion v{champion[0]}")
    return {f"{label} ({', '.join(roles[label])})": spec for label, spec in specs.items()}


def name_of(named: dict[str, Spec], spec: Spec) -> str:
    """The name `contenders` gave `spec`."""
    return next(name for name, s in named.items() if s == spec)


def judge(challenger: Spec, champion: tuple[str, Spec] | None, measured: Callable[[Spec], float],
          min_improvement: float = 0.0, *, metric: str = "backtest WAPE",
          higher_is_better: bool = False) -> tuple[bool, str]:
    """(promote, reason): `promotion_decision` on the figures `measured` gives each configuration; a challenger
    with the champion's own configuration is a refresh on newer data and replaces it."""
    if champion is not None and champion[1] == challenger:
        return True, "the champion's configuration retrained on newer data"
    return promotion_decision(measured(challenger), None if champion is None else measured(champion[1]),
                              min_improvement, metric=metric, higher_is_better=higher_is_better)


def log_training_data(feature_table: str, feature_version: int, sources: dict[str, int] | None = None,
                      feature_frame: DataFrame | None = None) -> None:
    """Lineage of the active run: the feature table and its Delta version (also as the run's dataset input when
    the frame is given) and the versions of the tables it was built from."""
    import warnings

    import mlflow

    mlflow.set_tags({"lineage.feature_table": f"{feature_table}@v{feature_version}",
                     **{f"lineage.source.{t}": f"v{v}" for t, v in (sources or {}).items()}})
    if feature_frame is not None:
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)  # the dataset's schema
        # names the table's integer columns; a model's own signature is all floats and strings
        mlflow.log_input(mlflow.data.from_spark(
            feature_frame, table_name=feature_table, version=str(feature_version),
            digest=f"{feature_table}@v{feature_version}", name=feature_table), context="training")


def register_model(model: object, example: pd.DataFrame, *, settings: Settings, model_name: str, label: str,
                   promoted: bool, reason: str) -> str:
    """Log `model` (skops, signature from `example`) in the active run with the promotion decision as tags,
    register it as a new version of `model_name` aliased `challenger` (and `champion` when promoted); returns the
    version."""
    import mlflow
    from mlflow.models import infer_signature

    mlflow.set_tags({"promotion": "promoted" if promoted else "rejected", "promotion_reason": reason})
    info = mlflow.sklearn.log_model(
        model, name="model", serialization_format="skops", skops_trusted_types=trusted_types(model),
        pip_requirements=pip_requirements(), signature=infer_signature(example, model.predict(example)),
        input_example=example, registered_model_name=model_name,
    )
    version = str(info.registered_model_version)
    client = mlflow_client(settings)
    client.set_registered_model_alias(model_name, CHALLENGER_ALIAS, version)
    client.update_model_version(model_name, version, description=f"{label}: {reason}")
    if promoted:
        client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
    return version


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
