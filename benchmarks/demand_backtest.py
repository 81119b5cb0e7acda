"""Demand models on a generated year: backtest WAPE/MASE/bias of the gradient-boosted model against seasonal naive.

Runs the demand_history and demand_training jobs in this process on $LAKEHOUSE_HOME (a fresh home gives a fresh
registry: seasonal naive becomes the first champion, the gradient-boosted model the challenger) and prints both
backtest tables and the WAPE ratio (goal: <= 0.80).

    python benchmarks/demand_backtest.py --skus 20 --channels web,mobile_app,amazon,store --days 365
"""

from __future__ import annotations

import argparse
import sys
import time

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])

from lakehouse.jobs_registry import run_job  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skus", default="20")
    p.add_argument("--channels", default="web,mobile_app,amazon,store")
    p.add_argument("--days", default="365")
    p.add_argument("--seed", default="7")
    args = p.parse_args()
    timings = {}
    for label, job, argv in (
        ("history", "demand_history", ["--skus", args.skus, "--channels", args.channels, "--days", args.days,
                                       "--seed", args.seed]),
        ("seasonal_naive", "demand_training", ["--model", "seasonal_naive"]),
        ("gradient_boosting", "demand_training", ["--model", "gradient_boosting"]),
    ):
        started = time.perf_counter()
        run_job(job, argv)
        timings[label] = round(time.perf_counter() - started, 1)
    from lakehouse.config import get_settings
    from lakehouse.ml.demand_training import MODEL_NAME
    from lakehouse.ml.registry import mlflow_client

    client = mlflow_client(get_settings())
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    metrics = client.get_run(champion.run_id).data.metrics
    print(f"\nseconds: {timings}")
    print(f"champion v{champion.version}: WAPE {metrics['backtest_wape']:.3f} vs seasonal naive "
          f"{metrics['naive_wape']:.3f}: ratio {metrics['wape_vs_naive']:.3f} (goal <= 0.80); MASE "
          f"{metrics['backtest_mase']:.3f}, bias {metrics['backtest_bias']:+.3f}, 80% interval coverage "
          f"{metrics['backtest_coverage_80']:.2f}")


if __name__ == "__main__":
    main()
