"""The demand jobs against real Delta tables and the home's MLflow registry: generated history -> features ->
seasonal naive becomes the first champion -> the gradient-boosted challenger beats it by more than 20 % WAPE and is
promoted -> a weak challenger is registered but not promoted; what the registry keeps about each version."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from model_training import train_in_sequence

from lakehouse.jobs_registry import run_job
from lakehouse.ml.demand_history import TABLES
from lakehouse.ml.demand_models import MODEL_INPUTS, PREDICTIONS, model_input
from lakehouse.ml.demand_training import MODEL_NAME

HISTORY = ["--skus", "6", "--channels", "web,store", "--warehouses-per-region", "1", "--days", "365",
           "--end", "2024-02-29", "--seed", "5"]
GBM = json.dumps({"max_iter": 150, "quantile_max_iter": 60})
WEAK = json.dumps({"max_iter": 2, "quantile_max_iter": 2})


@pytest.fixture(scope="module")
def trained(spark, settings, tables):
    return train_in_sequence(settings, MODEL_NAME, ("demand_history", HISTORY), "demand_training", {
        "naive": ["--model", "seasonal_naive", "--folds", "3"], "gbm": ["--params", GBM, "--folds", "3"],
        "weak": ["--params", WEAK, "--folds", "3"]})


def test_history_tables_hold_every_series_and_day(trained, tables) -> None:
    sales = tables.read(TABLES["sales"])
    assert sales.count() == 6 * 2 * 3 * 365
    assert sales.select("sku", "channel", "warehouse_id").distinct().count() == 36


def test_champion_moves_only_to_a_better_backtest(trained) -> None:
    client, steps = trained
    runs = {k: client.get_run(v.run_id) for k, v in steps.items()}
    assert [str(steps[k].version) for k in ("naive", "gbm", "weak")] == ["1", "2", "3"]
    assert runs["naive"].data.tags["promotion"] == "promoted"
    assert runs["naive"].data.tags["promotion_reason"] == "no champion yet"
    naive_wape = runs["gbm"].data.metrics["naive_wape"]
    gbm_wape = runs["gbm"].data.metrics["backtest_wape"]
    assert runs["gbm"].data.tags["promotion"] == "promoted"
    assert runs["gbm"].data.metrics["wape_vs_naive"] == pytest.approx(gbm_wape / naive_wape)
    assert gbm_wape <= 0.8 * naive_wape  # the goal: at least 20 % lower WAPE than seasonal naive
    weak = runs["weak"].data
    assert weak.tags["promotion"] == "rejected"
    assert weak.tags["promotion_reason"] == (
        f"backtest WAPE {weak.metrics['backtest_wape']:.4f} does not beat the champion's {gbm_wape:.4f}")
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "2"
    assert str(client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == "3"
    # every run backtested on the same folds: the baseline's WAPE is the same figure each time
    assert runs["weak"].data.metrics["naive_wape"] == naive_wape == runs["naive"].data.metrics["backtest_wape"]


def test_registry_keeps_training_data_version_lineage_and_backtest(trained, tables) -> None:
    import mlflow

    client, steps = trained
    run = client.get_run(steps["gbm"].run_id)
    features_version = int(run.data.params["feature_table_version"])
    assert run.data.params["feature_table"] == "gold.demand_features"
    assert run.data.tags["lineage.feature_table"] == f"gold.demand_features@v{features_version}"
    assert {t: run.data.tags[f"lineage.source.{t}"] for t in TABLES.values()} == {
        t: f"v{tables.version(t)}" for t in TABLES.values()}
    inputs = run.inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [
        ("gold.demand_features", f"gold.demand_features@v{features_version}")]
    source = json.loads(inputs[0].dataset.source)
    assert (source["delta_table_name"], source["delta_table_version"]) == ("gold.demand_features",
                                                                           str(features_version))
    # the third run rebuilt the features: a newer version than the second's
    assert int(client.get_run(steps["weak"].run_id).data.params["feature_table_version"]) == features_version + 1
    table = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/backtest/metrics.txt")
    assert "gradient_boosting" in table and "seasonal_naive (baseline, champion v1)" in table
    model = mlflow.models.get_model_info(f"models:/{MODEL_NAME}@champion")
    assert [c.name for c in model.signature.inputs] == MODEL_INPUTS
    assert model.saved_input_example_info is not None


def test_champion_loads_by_alias_and_predicts_four_ordered_columns(trained, tables) -> None:
    import mlflow.pyfunc

    features = tables.read("gold.demand_features").where("units IS NOT NULL").limit(200).toPandas()
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    pred = pd.DataFrame(model.predict(model_input(features)), columns=PREDICTIONS)
    assert len(pred) == 200
    assert (pred >= 0).all().all()
    assert (pred["p10"] <= pred["p50"]).all() and (pred["p50"] <= pred["p90"]).all()


def test_bad_parameters_fail_before_any_work() -> None:
    from lakehouse.errors import LakehouseError

    with pytest.raises(LakehouseError, match="--params must be a JSON object"):
        run_job("demand_training", ["--params", "[1, 2]"])
    with pytest.raises(LakehouseError, match="bad parameters for gradient_boosting: .*'depth'"):
        run_job("demand_training", ["--params", '{"depth": 3}'])
