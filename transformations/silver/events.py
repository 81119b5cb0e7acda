"""Silver for the non-order event families (payments, shipments, inventory, clickstream).

Same contract as `transformations.silver.orders`: payloads are parsed with the Spark schema derived from the
family's JSON schema (`lakehouse.events.schemas.spark_schema`), timestamps are UTC (`event_time` with its
offset normalised by Spark, session time zone UTC), unparseable payloads keep `_raw` and get a `_parse_error`
reason, and `dedupe_events` keeps the first delivery of each event id.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.events.schemas import spark_schema
from transformations.silver.orders import PARSE_ERROR, RAW, dedupe_events, line_measures, split_parse_errors

__all__ = [
    "COORDINATES", "PARSERS", "dedupe_events", "parse_clickstream_events", "parse_events", "parse_inventory_events",
    "parse_order_family_events", "parse_payment_events", "parse_shipment_events", "split_parse_errors",
]

COORDINATES = ["source_topic", "source_partition", "source_offset", "ingested_at"]
ZERO_DECIMAL_CURRENCIES = ("JPY",)  # provider amounts in minor units are already whole units for these


def parse_error(text: Column, variant: Column) -> Column:
    """Why a payload cannot be parsed (null when it can); same reasons as silver orders."""
    return (
        F.when(text.isNull(), F.lit("empty payload"))
        .when(variant.isNull(), F.lit("malformed JSON: payload does not parse"))
        .when(F.schema_of_variant(variant).startswith("OBJECT") == F.lit(False),
              F.lit("malformed JSON: payload is not an object"))
    )


def parse_events(bronze: DataFrame, family: str) -> DataFrame:
    """Bronze event rows of `family` -> typed columns of its latest schema, coordinates, `_raw`, `_parse_error`."""
    schema = spark_schema(family)
    text = F.col("value").cast("string")
    parsed = bronze.select(
        "*",
        text.alias(RAW),
        F.from_json(text, schema, {"mode": "PERMISSIVE"}).alias("e"),
        F.try_parse_json(text).alias("_variant"),
    )
    return parsed.select(
        *[F.col(f"e.{f.name}").alias(f.name) for f in schema.fields],
        F.col("topic").alias("source_topic"),
        F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"),
        F.col("ingested_at"),
        F.col(RAW),
        parse_error(F.col(RAW), F.col("_variant")).alias(PARSE_ERROR),
    )


def _minor_to_major(minor: Column, currency: Column) -> Column:
    """Provider minor units (cents) -> decimal(18,2) major units; zero-decimal currencies unchanged."""
    units = F.when(F.upper(currency).isin(*ZERO_DECIMAL_CURRENCIES), minor).otherwise(minor / F.lit(100))
    return units.cast("decimal(18,2)")


def provider_fields(provider: Column, payload: Column) -> list[Column]:
    """Provider event id, provider reference, amount (major units) and currency from the webhook body."""
    v = F.try_parse_json(payload)

    def get(path: str, kind: str = "string") -> Column:
        return F.try_variant_get(v, path, kind)

    stripe_cur, adyen_cur = F.upper(get("$.data.object.currency")), get("$.amount.currency")
    by = {
        "stripe": (get("$.id"), get("$.data.object.id"), _minor_to_major(get("$.data.object.amount", "long"),
                                                                          stripe_cur), stripe_cur),
        "paypal": (get("$.id"), get("$.resource.id"), get("$.resource.amount.value", "decimal(18,2)"),
                   get("$.resource.amount.currency_code")),
        "adyen": (get("$.pspReference"), get("$.pspReference"), _minor_to_major(get("$.amount.value", "long"),
                                                                               adyen_cur), adyen_cur),
    }
    names = ["provider_event_id", "provider_reference", "provider_amount", "provider_currency"]
    out = []
    for i, name in enumerate(names):
        col: Column = F.lit(None)
        for prov, values in by.items():
            col = F.when(provider == prov, values[i]).otherwise(col)
        out.append(col.alias(name))
    return out


def parse_order_family_events(bronze: DataFrame) -> DataFrame:
    """Orders of the event model (v1 and v2 payloads, typed with the latest schema) + `units`, `line_count` and
    `min_unit_price` (the lowest line price: a negative one is a pricing fault)."""
    parsed = parse_events(bronze, "orders")
    lines = F.col("lines")
    at = parsed.columns.index("total_amount") + 1
    measures = [*line_measures(lines), F.array_min(F.transform(lines, lambda ln: ln["unit_price"])).alias(
        "min_unit_price")]
    return parsed.select(*parsed.columns[:at], *measures, *parsed.columns[at:])


def parse_payment_events(bronze: DataFrame) -> DataFrame:
    """Payments with the provider's own id, reference, amount and currency pulled out of `provider_payload`."""
    parsed = parse_events(bronze, "payments")
    extra = provider_fields(F.col("provider"), F.col("provider_payload"))
    cols = parsed.columns
    at = cols.index("provider_payload") + 1
    return parsed.select(*cols[:at], *extra, *cols[at:])


def parse_shipment_events(bronze: DataFrame) -> DataFrame:
    """Carrier events, typed (weight in grams as long)."""
    return parse_events(bronze, "shipments")


def parse_inventory_events(bronze: DataFrame) -> DataFrame:
    """Reservation events with `signed_quantity`: +quantity for a lock, -quantity for a release."""
    parsed = parse_events(bronze, "inventory")
    signed = F.when(F.col("event_type") == "inventory_released", -F.col("quantity")).otherwise(F.col("quantity"))
    return parsed.withColumn("signed_quantity", signed.cast("int"))


def parse_clickstream_events(bronze: DataFrame) -> DataFrame:
    """Tracker events, typed (price decimal(18,2), quantity int)."""
    return parse_events(bronze, "clickstream")


PARSERS: dict[str, Callable[[DataFrame], DataFrame]] = {
    "orders": parse_order_family_events,
    "inventory": parse_inventory_events,
    "payments": parse_payment_events,
    "shipments": parse_shipment_events,
    "clickstream": parse_clickstream_events,
}
