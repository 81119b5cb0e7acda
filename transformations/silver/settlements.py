"""Silver settlements: processor settlement report lines (bronze `record_json`) -> typed rows.

CSV lines carry amounts as strings and JSON lines as numbers; both become decimal(18,2). A line whose amount,
currency or settlement time does not parse gets a `_parse_error` reason.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transformations.silver.orders import PARSE_ERROR, RAW

SETTLEMENT_COLUMNS = [
    "processor", "settlement_id", "payment_id", "order_id", "amount", "currency", "fee", "settled_at",
    "object_key", "line_number",
]


def parse_settlements(bronze: DataFrame) -> DataFrame:
    """bronze.settlements_raw -> typed settlement lines, the line as `_raw`, and `_parse_error` (null when usable)."""
    v = F.try_parse_json(F.col("record_json"))

    def get(name: str, kind: str = "string"):
        return F.try_variant_get(v, f"$.{name}", kind)

    typed = bronze.select(
        *[get(c).alias(c) for c in ("processor", "settlement_id", "payment_id", "order_id")],
        get("amount", "decimal(18,2)").alias("amount"),
        F.upper(get("currency")).alias("currency"),
        get("fee", "decimal(18,2)").alias("fee"),
        F.try_to_timestamp(get("settled_at")).alias("settled_at"),
        F.col("object_key"),
        F.col("line_number"),
        F.col("record_json").alias(RAW),
    )
    error = (
        F.when(F.col("amount").isNull(), F.lit("unparseable amount"))
        .when(F.col("currency").isNull(), F.lit("missing currency"))
        .when(F.col("settled_at").isNull(), F.lit("unparseable settled_at"))
    )
    return typed.withColumn(PARSE_ERROR, error)
