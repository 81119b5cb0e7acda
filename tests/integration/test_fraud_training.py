"""The fraud jobs against real Delta tables and the home's MLflow registry: labelled history -> features -> the
rules baseline becomes the first champion -> the gradient-boosted challenger beats its PR-AUC and recall at 1 %
false positives and is promoted -> a weak challenger is registered but not promoted; what the registry keeps."""

from __future__ import annotations

import json

import pytest
from model_training import train_in_sequence

from lakehouse.jobs_registry import run_job
from lakehouse.ml.fraud_history import PATTERNS, TABLES
from lakehouse.ml.fraud_models import model_input
from lakehouse.ml.fraud_training import MODEL_NAME
from transformations.gold.fraud_features import FEATURES

HISTORY = ["--customers", "1500", "--days", "60", "--end", "2026-10-31", "--seed", "4", "--card-testers", "6",
           "--bots", "6", "--takeovers", "30", "--mismatches", "40"]
WEAK = json.dumps({"max_iter": 1, "learning_rate": 0.01, "max_leaf_nodes": 2})


@pytest.fixture(scope="module")
def trained(spark, settings, tables):
    return train_in_sequence(settings, MODEL_NAME, ("fraud_history", HISTORY), "fraud_training",
                             {"rules": ["--model", "rules"], "gbm": [], "weak": ["--params", WEAK]})


def test_history_holds_every_pattern_labelled(trained, tables) -> None:
    attempts = tables.read(TABLES["attempts"])
    counts = {r.fraud_pattern: r["count"] for r in attempts.groupBy("fraud_pattern").count().collect()}
    assert set(counts) == {"none", *PATTERNS}
    assert counts["account_takeover"] == 30
    assert 0.02 < sum(v for k, v in counts.items() if k != "none") / sum(counts.values()) < 0.08
    assert attempts.select("payment_id").distinct().count() == attempts.count()
    assert tables.read("gold.fraud_features").count() == attempts.count()


def test_champion_moves_only_to_a_better_pr_auc_and_the_model_beats_the_rules(trained) -> None:
    client, steps = trained
    runs = {k: client.get_run(v.run_id).data for k, v in steps.items()}
    assert [str(steps[k].version) for k in ("rules", "gbm", "weak")] == ["1", "2", "3"]
    assert (runs["rules"].tags["promotion"], runs["rules"].tags["promotion_reason"]) == ("promoted",
                                                                                        "no champion yet")
    gbm, rules_pr_auc = runs["gbm"].metrics, runs["gbm"].metrics["rules_pr_auc"]
    assert runs["gbm"].tags["promotion_reason"] == (
        f"test PR-AUC {gbm['test_pr_auc']:.4f} > champion's {rules_pr_auc:.4f}")
    assert gbm["test_pr_auc"] > rules_pr_auc + 0.2
    assert gbm["test_recall_at_fpr"] > gbm["rules_recall_at_fpr"]
    assert gbm["test_fpr"] <= 0.01 and gbm["pr_auc_vs_rules"] == pytest.approx(gbm["test_pr_auc"] / rules_pr_auc)
    assert {f"recall_{p}" for p in PATTERNS} <= set(gbm)
    weak = runs["weak"]
    assert weak.tags["promotion"] == "rejected"
    assert weak.tags["promotion_reason"] == (
        f"test PR-AUC {weak.metrics['test_pr_auc']:.4f} does not beat the champion's {gbm['test_pr_auc']:.4f}")
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "2"
    assert str(client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == "3"
    # every run judged on the same later attempts: the rules' figure is the same each time
    assert weak.metrics["rules_pr_auc"] == rules_pr_auc == runs["rules"].metrics["test_pr_auc"]


def test_registry_keeps_training_data_version_lineage_and_evaluation(trained, tables) -> None:
    import mlflow

    client, steps = trained
    run = client.get_run(steps["gbm"].run_id)
    version = int(run.data.params["feature_table_version"])
    assert run.data.tags["lineage.feature_table"] == f"gold.fraud_features@v{version}"
    assert {t: run.data.tags[f"lineage.source.{t}"] for t in TABLES.values()} == {
        t: f"v{tables.version(t)}" for t in TABLES.values()}
    assert [(i.dataset.name, i.dataset.digest) for i in run.inputs.dataset_inputs] == [
        ("gold.fraud_features", f"gold.fraud_features@v{version}")]
    table = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/evaluation/metrics.txt")
    assert "gradient_boosting (challenger)" in table and "rules (baseline, champion v1)" in table
    assert all(p in table for p in PATTERNS)
    model = mlflow.models.get_model_info(f"models:/{MODEL_NAME}@champion")
    assert [c.name for c in model.signature.inputs] == FEATURES


def test_champion_loads_by_alias_and_scores_fraud_above_honest(trained, tables) -> None:
    import mlflow.pyfunc

    features = tables.read("gold.fraud_features").orderBy("payment_id").toPandas()
    scores = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion").predict(model_input(features))
    assert len(scores) == len(features) and ((scores >= 0) & (scores <= 1)).all()
    by_label = features.assign(score=scores).groupby("is_fraud")["score"].median()
    assert by_label[True] > 0.5 > 0.05 > by_label[False]


def test_bad_parameters_fail_before_any_work() -> None:
    from lakehouse.errors import LakehouseError

    with pytest.raises(LakehouseError, match="bad parameters for gradient_boosting: .*'depth'"):
        run_job("fraud_training", ["--params", '{"depth": 3}'])
