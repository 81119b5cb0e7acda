"""The demand champion scoring forecast rows inside the pipeline's micro-batches.

The alias is resolved on every batch (one registry call), so a promotion reaches a running pipeline at its next
micro-batch, without a restart; the model of one version is loaded once (MLflow `spark_udf`: executors score
pandas batches, nothing is collected).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.ml.demand_models import MODEL_INPUTS, PREDICTIONS
from lakehouse.ml.demand_training import MODEL_NAME
from lakehouse.ml.registry import champion, check_worker_python
from transformations.gold.demand_features import CATEGORICAL_FEATURES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

FORECAST_SCHEMA = (  # the rows `score` and `forecast_of` return
    "sku string, channel string, warehouse_id string, origin_date date, forecast_date date, horizon int, "
    + ", ".join(f"{p} double" for p in PREDICTIONS) + ", model_name string, model_version string, scored_at timestamp")


class ChampionScorer:
    """Scores forecast examples with whichever version holds the `champion` alias when asked."""

    def __init__(self, settings: Settings, model_name: str = MODEL_NAME) -> None:
        self.settings = settings
        self.model_name = model_name
        self._udfs: dict[str, Any] = {}
        self.written: str | None = None  # the version of the forecast last written (set by the writer)

    def champion_version(self) -> str | None:
        """The champion's version now; None when the model has none (not trained yet)."""
        version = champion(self.settings, self.model_name)
        return None if version is None else str(version.version)

    def _udf(self, spark, version: str):  # noqa: ANN001, ANN202
        if version not in self._udfs:
            import mlflow.pyfunc

            check_worker_python(spark)
            self._udfs = {version: mlflow.pyfunc.spark_udf(  # one version held at a time
                spark, f"models:/{self.model_name}/{version}", env_manager="local", result_type="array<double>")}
        return self._udfs[version]

    def score(self, examples: DataFrame, version: str) -> DataFrame:
        """Forecast rows (FORECAST_SCHEMA) of `examples` (forecast_examples scoring rows) with model `version`."""
        from pyspark.sql import functions as F

        inputs = [F.col(c).cast("string" if c in CATEGORICAL_FEATURES else "double").alias(c) for c in MODEL_INPUTS]
        predicted = examples.withColumn("_p", self._udf(examples.sparkSession, version)(F.struct(*inputs)))
        scored_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        return predicted.select(
            "sku", "channel", "warehouse_id", "origin_date", F.col("target_date").alias("forecast_date"),
            F.col("horizon").cast("int").alias("horizon"),
            *[F.col("_p")[i].alias(name) for i, name in enumerate(PREDICTIONS)],
            F.lit(self.model_name).alias("model_name"), F.lit(version).alias("model_version"),
            F.lit(scored_at).cast("timestamp").alias("scored_at"),
        )


def _table_or_empty(tables, name: str, schema: str):  # noqa: ANN001, ANN202
    """The table now, or no rows of `schema` when it does not exist (a home without demand history)."""
    if tables.exists(name):
        return tables.read(name)
    return tables.spark.createDataFrame([], schema)


def forecast_of(tables, reservations: DataFrame, clickstream: DataFrame, inventory_events: DataFrame,
                scorer: ChampionScorer, version: str, keys: DataFrame | None = None) -> DataFrame:
    """The next MAX_HORIZON days' forecast (FORECAST_SCHEMA) of every sku x channel x warehouse series with live
    reservations or history - only those of the sku x warehouse `keys` when given - from the latest day seen (of
    the inventory events and the history) as origin, scored by model `version`. The demand tables (history, price
    versions, promotion calendar, weather, competitor prices) are read as they are now: a promotion planned since
    the last batch is in this one's forecast."""
    from pyspark.sql import functions as F

    from lakehouse.ml.demand_history import (
        COMPETITOR_SCHEMA,
        PRICE_HISTORY_SCHEMA,
        PROMOTIONS_SCHEMA,
        SALES_SCHEMA,
        TABLES,
        WEATHER_SCHEMA,
    )
    from transformations.gold.demand_features import (
        MAX_HORIZON,
        combined_daily,
        forecast_examples,
        live_daily_demand,
    )
    from transformations.gold.inventory import restrict_to_keys

    history = _table_or_empty(tables, TABLES["sales"], SALES_SCHEMA)
    catalogue = _table_or_empty(tables, "silver.products", "sku string, category string")
    erp_prices = _table_or_empty(tables, "silver.product_prices_history", PRICE_HISTORY_SCHEMA)
    prices = _table_or_empty(tables, TABLES["prices"], PRICE_HISTORY_SCHEMA).select(
        "sku", "price", "valid_from", "valid_to").unionByName(erp_prices.select("sku", "price", "valid_from", "valid_to"))
    if keys is not None:
        history = restrict_to_keys(history, keys)
        skus = keys.select("sku").distinct()
        prices, catalogue = prices.join(skus, "sku", "left_semi"), catalogue.join(skus, "sku", "left_semi")
    daily = combined_daily(history, live_daily_demand(reservations, clickstream, catalogue))
    newest_event = inventory_events.agg(F.to_date(F.max("event_time"))).first()[0]  # max of a column: answered
    # from the Delta log's file statistics (to_date inside the max would scan the table every batch)
    last = [d for d in (newest_event, history.agg(F.max("date")).first()[0]) if d is not None]
    if not last:
        return tables.spark.createDataFrame([], FORECAST_SCHEMA)
    last_date = max(last)
    examples = forecast_examples(
        daily, prices, _table_or_empty(tables, TABLES["promotions"], PROMOTIONS_SCHEMA),
        _table_or_empty(tables, TABLES["weather"], WEATHER_SCHEMA),
        _table_or_empty(tables, TABLES["competitor"], COMPETITOR_SCHEMA),
        last_date=last_date, origins=F.col("origin_date") == F.lit(last_date), horizon=MAX_HORIZON)
    return scorer.score(examples, version)

