"""Machine learning on gold tables: demand forecasting tracked and registered in MLflow."""

from lakehouse.ml.demand import (
    TrainedModel,
    build_features,
    build_pipeline,
    forecast_frame,
    score_forecast,
    train_demand_model,
)

__all__ = [
    "TrainedModel",
    "build_features",
    "build_pipeline",
    "forecast_frame",
    "score_forecast",
    "train_demand_model",
]
