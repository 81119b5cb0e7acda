"""Silver orders: parse raw order events with a declared schema, flag unparseable rows, dedupe on event id."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DecimalType,
    IntegerType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

MONEY = DecimalType(18, 2)

ORDER_LINE_SCHEMA = StructType(
    [
        StructField("sku", StringType()),
        StructField("quantity", IntegerType()),
        StructField("unit_price", MONEY),
    ]
)

# Version 1 of the order event (what storefronts and marketplace connectors publish to `orders`).
ORDER_EVENT_SCHEMA = StructType(
    [
        StructField("event_id", StringType()),
        StructField("event_type", StringType()),
        StructField("schema_version", IntegerType()),
        StructField("event_time", TimestampType()),
        StructField("order_id", StringType()),
        StructField("customer_id", StringType()),
        StructField("channel", StringType()),
        StructField("region", StringType()),
        StructField("currency", StringType()),
        StructField("lines", ArrayType(ORDER_LINE_SCHEMA)),
        StructField("total_amount", MONEY),
    ]
)

SILVER_ORDER_COLUMNS = [
    "event_id", "event_type", "schema_version", "event_time", "order_id", "customer_id", "channel", "region",
    "currency", "lines", "total_amount", "units", "line_count", "source_topic", "source_partition",
    "source_offset", "ingested_at",
]
PARSE_ERROR = "_parse_error"
RAW = "_raw"


def line_measures(lines: Column) -> list[Column]:
    """`units` (sum of line quantities) and `line_count` of an order's lines."""
    return [
        F.aggregate(lines, F.lit(0), lambda acc, line: acc + F.coalesce(line["quantity"], F.lit(0))).alias("units"),
        F.when(lines.isNotNull(), F.size(lines)).cast("int").alias("line_count"),
    ]


def parse_order_events(bronze: DataFrame) -> DataFrame:
    """Bronze rows -> typed order rows plus `_raw` (payload text) and `_parse_error` (null when parsed).

    A payload that is not valid JSON, or not a JSON object, gets a parse error; field-level problems
    (missing ids, negative amounts) are left to the quality gate, which quarantines them with a reason.
    """
    text = F.col("value").cast("string")
    parsed = bronze.select(
        "*",
        text.alias(RAW),
        F.from_json(text, ORDER_EVENT_SCHEMA, {"mode": "PERMISSIVE"}).alias("e"),
        F.try_parse_json(text).alias("_variant"),
    )
    error = (
        F.when(F.col(RAW).isNull(), F.lit("empty payload"))
        .when(F.col("_variant").isNull(), F.lit("malformed JSON: payload does not parse"))
        .when(F.schema_of_variant(F.col("_variant")).startswith("OBJECT") == F.lit(False),
              F.lit("malformed JSON: payload is not an object"))
    )
    return parsed.select(
        *[F.col(f"e.{f.name}").alias(f.name) for f in ORDER_EVENT_SCHEMA.fields],
        *line_measures(F.col("e.lines")),
        F.col("topic").alias("source_topic"),
        F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"),
        F.col("ingested_at"),
        F.col(RAW),
        error.alias(PARSE_ERROR),
    )


def split_parse_errors(parsed: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(parsed rows, rows whose payload could not be parsed)."""
    return parsed.where(F.col(PARSE_ERROR).isNull()).drop(PARSE_ERROR), parsed.where(F.col(PARSE_ERROR).isNotNull())


def dedupe_events(orders: DataFrame, key: str = "event_id") -> DataFrame:
    """Keep the first delivery (lowest Kafka partition/offset) of each event id; null ids are kept for the gate."""
    first = Window.partitionBy(key).orderBy("source_partition", "source_offset")
    with_rank = orders.withColumn("_delivery", F.row_number().over(first))
    return with_rank.where((F.col("_delivery") == 1) | F.col(key).isNull()).drop("_delivery")


def quarantine_rows(rejected: DataFrame, reason_column: str, table: str, run_id: str) -> DataFrame:
    """Rows refused by a layer, in the shape of a `*_quarantine` table: reason, raw payload, coordinates."""
    return rejected.select(
        F.lit(table).alias("target_table"),
        F.col(reason_column).cast("string").alias("reason"),
        F.col("event_id").cast("string").alias("event_id") if "event_id" in rejected.columns
        else F.lit(None).cast("string").alias("event_id"),
        F.col(RAW).alias("raw_payload"),
        F.col("source_topic"),
        F.col("source_partition"),
        F.col("source_offset"),
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("quarantined_at"),
    )


def to_silver_columns(orders: DataFrame) -> DataFrame:
    return orders.select(*SILVER_ORDER_COLUMNS)
