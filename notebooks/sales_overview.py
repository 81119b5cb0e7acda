# %% [markdown]
# # Sales overview (analyst notebook)
# Revenue and orders by channel and day from `gold.sales` (the commerce model), next week's demand forecast,
# and the latest quality results. Runs headless: `python notebooks/sales_overview.py` (or open it as a notebook in
# VS Code/Jupyter with jupytext: `# %%` marks the cells).

# %%
from pyspark.sql import functions as F

from lakehouse.spark import get_spark
from lakehouse.tables import get_tables

spark = get_spark("notebook-sales-overview")
tables = get_tables(spark)

# %% Revenue by channel (order currency and reporting currency)
sales = tables.read("gold.sales")
by_channel = (
    sales.groupBy("channel", "currency")
    .agg(F.sum("orders").alias("orders"), F.sum("revenue").alias("revenue"),
         F.sum("revenue_reporting").alias("revenue_eur"))
    .orderBy(F.desc("orders"))
)
by_channel.show(truncate=False)

# %% Daily orders, all channels
daily = sales.groupBy("order_date").agg(F.sum("orders").alias("orders")).orderBy("order_date")
daily.show()

# %% Demand forecast (units per channel, next days)
forecast = tables.read("gold.demand_forecast").orderBy("forecast_date", "channel")
forecast.show(50)

# %% Latest quality results
quality = tables.read("ops.quality_results")
latest = quality.where(F.col("validated_at") == quality.agg(F.max("validated_at")).first()[0])
latest.select("table_name", "expectation", "severity", "success", "unexpected_count").show(50, truncate=60)

# %%
summary = {
    "orders": sales.agg(F.sum("orders")).first()[0],
    "channels": by_channel.select("channel").distinct().count(),
    "forecast_rows": forecast.count(),
}
print(summary)
