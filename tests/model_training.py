"""Shared by the model-training test modules: a promotion sequence run through the jobs on a fresh registry."""

from __future__ import annotations

from lakehouse import config


def train_in_sequence(settings: config.Settings, model_name: str, history: tuple[str, list[str]], job: str,
                      runs: dict[str, list[str]]) -> tuple:
    """A fresh registry for `model_name`, the history job, then one training `job` run per `runs` entry in order;
    returns (MLflow client, label -> the model version each run registered)."""
    from lakehouse.jobs_registry import run_job
    from lakehouse.ml.registry import configure_mlflow, mlflow_client

    configure_mlflow(settings)
    client = mlflow_client(settings)
    if client.search_registered_models(f"name='{model_name}'"):
        client.delete_registered_model(model_name)  # a fresh registry for the module's promotion sequence
    run_job(*history)
    steps = {}
    for label, argv in runs.items():
        run_job(job, argv)
        steps[label] = client.get_model_version(model_name, str(len(steps) + 1))
    return client, steps
