"""Train -> register (alias champion) -> score with spark_udf, against a sqlite MLflow store in a tmp home."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from lakehouse.config import get_settings
from lakehouse.ml import forecast_frame, score_forecast, train_demand_model

SALES_SCHEMA = (
    "order_date date, channel string, currency string, orders long, units long, revenue decimal(18,2)"
)
START = dt.date(2024, 1, 1)  # a Monday
MODEL = "demand_small"  # its own name: the test session shares one MLflow registry


def _sales(spark: SparkSession, days: int, levels: dict[str, int], weekend_boost: int = 0) -> DataFrame:
    """Daily sales split over two currencies: units = level + day + weekend boost (Sat/Sun)."""
    rows = []
    for i in range(days):
        day = START + dt.timedelta(days=i)
        for channel, level in levels.items():
            units = level + i + (weekend_boost if day.weekday() >= 5 else 0)
            for currency, share in (("USD", 0.75), ("EUR", 0.25)):
                part = round(units * share) if currency == "USD" else units - round(units * 0.75)
                rows.append((day, channel, currency, 1, part, Decimal("9.99") * part))
    return spark.createDataFrame(rows, SALES_SCHEMA)


def test_train_register_and_score_small_data(spark: SparkSession, lakehouse_home: Path) -> None:
    sales = _sales(spark, days=4, levels={"web": 60, "store": 12, "amazon": 30})

    t0 = time.perf_counter()
    trained = train_demand_model(sales, model_name=MODEL)
    train_s = time.perf_counter() - t0

    settings = get_settings()
    assert Path(settings.mlflow_uri.removeprefix("sqlite:///")).is_file()
    assert str(settings.mlflow_uri).startswith(f"sqlite:///{lakehouse_home}")
    assert trained.version == "1"
    assert trained.model_uri == f"models:/{MODEL}/1"
    assert "holdout_mae" not in trained.metrics  # too few days: training MAE only
    assert trained.metrics["mae"] == trained.metrics["train_mae"] >= 0

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "1" and champion.run_id == trained.run_id
    experiment = client.get_experiment_by_name("demand_forecast")
    assert experiment is not None
    assert experiment.artifact_location.startswith(settings.mlflow_artifacts.as_uri())
    run = client.get_run(trained.run_id)
    assert run.data.params["random_state"] == "42"
    assert {"train_mae", "mae", "train_rows"} <= set(run.data.metrics)

    future = forecast_frame(spark, sales, horizon_days=3)
    t0 = time.perf_counter()
    scored = score_forecast(spark, future, f"models:/{MODEL}@champion")
    rows = scored.collect()
    score_s = time.perf_counter() - t0
    print(f"\nsmall data: train {train_s:.1f}s, score {score_s:.1f}s")

    assert [(f.name, f.dataType.simpleString()) for f in scored.schema.fields] == [
        ("forecast_date", "date"),
        ("channel", "string"),
        ("predicted_units", "double"),
        ("model_name", "string"),
        ("model_version", "string"),
        ("scored_at", "timestamp"),
    ]
    assert len(rows) == 3 * 3
    assert {(r.forecast_date, r.channel) for r in rows} == {
        (START + dt.timedelta(days=d), ch) for d in (4, 5, 6) for ch in ("web", "store", "amazon")
    }
    assert all(r.predicted_units >= 0 for r in rows)
    assert {(r.model_name, r.model_version) for r in rows} == {(MODEL, "1")}
    assert len({r.scored_at for r in rows}) == 1
    by_channel = {
        ch: [r.predicted_units for r in rows if r.channel == ch] for ch in ("web", "store", "amazon")
    }
    assert min(by_channel["web"]) > max(by_channel["amazon"]) > 0
    assert min(by_channel["amazon"]) > max(by_channel["store"])

    # deterministic: retraining on the same data gives version 2 with identical metrics, champion moves
    again = train_demand_model(sales, model_name=MODEL)
    assert again.version == "2" and again.metrics == trained.metrics
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"


def test_learns_weekly_and_linear_pattern(spark: SparkSession, lakehouse_home: Path) -> None:
    sales = _sales(spark, days=28, levels={"web": 200, "mobile_app": 80, "ebay": 5}, weekend_boost=40)
    trained = train_demand_model(sales, model_name="demand_weekly")
    assert trained.model_uri == "models:/demand_weekly/1"
    assert trained.metrics["holdout_mae"] < 5  # the pattern is exactly linear + weekly
    assert trained.metrics["train_mae"] < 5

    future = forecast_frame(spark, sales, horizon_days=7)
    assert future.count() == 7 * 3
    pred = {
        (r.forecast_date, r.channel): r.predicted_units
        for r in score_forecast(spark, future, trained.model_uri).collect()
    }
    assert len(pred) == 21 and all(v >= 0 for v in pred.values())
    # 2024-01-29 is a Monday (day 28): expected web units 200 + 28 = 228, Saturday 2024-02-03: 200 + 33 + 40
    mon, sat = dt.date(2024, 1, 29), dt.date(2024, 2, 3)
    assert pred[(mon, "web")] == pytest.approx(228, abs=8)
    assert pred[(sat, "web")] == pytest.approx(273, abs=8)
    assert pred[(sat, "web")] > pred[(mon, "web")] + 30  # weekend effect
    assert pred[(mon, "web")] > pred[(mon, "mobile_app")] > pred[(mon, "ebay")]
    tue, wed = dt.date(2024, 1, 30), dt.date(2024, 1, 31)
    assert pred[(wed, "mobile_app")] > pred[(tue, "mobile_app")]  # upward trend
