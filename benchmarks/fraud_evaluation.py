"""Fraud models on a generated labelled history: PR-AUC and recall at 1 % false positives of the gradient-boosted
model against the rules baseline, and what scoring costs per payment attempt.

Runs the fraud_history and fraud_training jobs in this process on $LAKEHOUSE_HOME (a fresh home gives a fresh
registry: the rules become the first champion, the gradient-boosted model the challenger), prints the evaluation
table, then times both registered versions loaded by MLflow: one attempt at a time (a payment service's call) and
one Spark micro-batch of attempts through `mlflow.pyfunc.spark_udf` (how the pipeline scores).

    python benchmarks/fraud_evaluation.py --customers 3000 --days 90
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])

from lakehouse.jobs_registry import run_job  # noqa: E402


def single_event_ms(model, rows) -> tuple[float, float]:  # noqa: ANN001 - a pyfunc model, a pandas frame
    """p50 and p99 of predict() on one attempt at a time, in ms (after 20 warm-up calls)."""
    for i in range(20):
        model.predict(rows.iloc[[i]])
    times = []
    for i in range(len(rows)):
        started = time.perf_counter()
        model.predict(rows.iloc[[i]])
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def micro_batch_ms(spark, uri: str, features, rounds: int = 3) -> float:  # noqa: ANN001
    """ms per attempt of scoring `features` with spark_udf and writing the scores (best of `rounds`)."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    from transformations.gold.fraud_features import FEATURES

    predict = mlflow.pyfunc.spark_udf(spark, uri, env_manager="local", result_type="double")
    scored = features.select("payment_id", predict(F.struct(*FEATURES)).alias("score"))
    rows, best = features.count(), float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        scored.write.format("noop").mode("overwrite").save()
        best = min(best, time.perf_counter() - started)
    return best / rows * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", default="3000")
    p.add_argument("--days", default="90")
    p.add_argument("--seed", default="11")
    p.add_argument("--batch", type=int, default=5000, help="attempts in the timed micro-batch")
    args = p.parse_args()
    timings = {}
    for label, job, argv in (
        ("history", "fraud_history", ["--customers", args.customers, "--days", args.days, "--seed", args.seed]),
        ("rules", "fraud_training", ["--model", "rules"]),
        ("gradient_boosting", "fraud_training", ["--model", "gradient_boosting"]),
    ):
        started = time.perf_counter()
        run_job(job, argv)
        timings[label] = round(time.perf_counter() - started, 1)

    import mlflow.pyfunc

    from lakehouse.config import get_settings
    from lakehouse.ml.fraud_models import model_input
    from lakehouse.ml.fraud_training import MODEL_NAME
    from lakehouse.ml.registry import mlflow_client
    from lakehouse.spark import get_spark
    from lakehouse.tables import get_tables

    settings = get_settings()
    spark = get_spark("fraud-benchmark", settings)
    features = get_tables(spark, settings).read("gold.fraud_features").orderBy("event_time").limit(args.batch)
    features = features.cache()
    rows = model_input(features.limit(500).toPandas())
    client = mlflow_client(settings)
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    metrics = client.get_run(champion.run_id).data.metrics
    print(f"\nseconds: {timings}")
    print(f"champion v{champion.version}: test PR-AUC {metrics['test_pr_auc']:.3f} vs rules "
          f"{metrics['rules_pr_auc']:.3f} (x{metrics['pr_auc_vs_rules']:.2f}); recall at <= 1 % false positives "
          f"{metrics['test_recall_at_fpr']:.3f} vs rules {metrics['rules_recall_at_fpr']:.3f}")
    latency = {}
    for version in ("1", "2"):
        uri = f"models:/{MODEL_NAME}/{version}"
        p50, p99 = single_event_ms(mlflow.pyfunc.load_model(uri), rows)
        latency[version] = (p50, p99, micro_batch_ms(spark, uri, features))
        kind = client.get_run(client.get_model_version(MODEL_NAME, version).run_id).data.params["model_kind"]
        print(f"v{version} ({kind}): one attempt per call p50 {p50:.2f} ms, p99 {p99:.2f} ms; "
              f"micro-batch of {features.count()} attempts {latency[version][2]:.3f} ms per attempt")
    print(f"gradient boosting / rules: single p50 x{latency['2'][0] / latency['1'][0]:.2f}, "
          f"micro-batch x{latency['2'][2] / latency['1'][2]:.2f}")


if __name__ == "__main__":
    main()
