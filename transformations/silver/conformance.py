"""Silver conformance checks for event payloads, computed in Spark (no Python UDFs).

* `with_schema_violation`: the payload against its family's JSON Schema at the payload's own `schema_version`
  (required top-level fields present, JSON types of present fields), as one text or null;
* `with_lateness`: per Kafka partition event-time watermark (the max event time of earlier offsets, carried
  across batches), `is_late` when an event is older than the watermark minus the allowed delay;
* `with_catalogue_check`: `unknown_sku` naming the first SKU of the row that is not in the catalogue.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.events.schemas import load_schema, schema_versions

SCHEMA_VIOLATION = "schema_violation"
WATERMARK_KEY = ["source_topic", "source_partition"]
DEFAULT_LATE_AFTER_S = 30 * 60


def json_type(kind: Column) -> Column:
    """JSON type from `schema_of_variant` text: string|integer|number|boolean|object|array|null (null: absent)."""
    return (
        F.when(kind.isNull(), F.lit(None))
        .when(kind == "STRING", F.lit("string"))
        .when(kind.isin("BIGINT", "INT", "SMALLINT", "TINYINT") | kind.rlike(r"^DECIMAL\(\d+,0\)$"), F.lit("integer"))
        .when(kind.startswith("DECIMAL") | kind.isin("DOUBLE", "FLOAT"), F.lit("number"))
        .when(kind == "BOOLEAN", F.lit("boolean"))
        .when(kind.startswith("OBJECT"), F.lit("object"))
        .when(kind.startswith("ARRAY"), F.lit("array"))
        .when(kind == "VOID", F.lit("null"))
        .otherwise(F.lower(kind))
    )


def _allowed_types(prop: dict[str, Any]) -> list[str]:
    kind = prop.get("type", [])
    kinds = kind if isinstance(kind, list) else [kind]
    return list(dict.fromkeys([*kinds, "integer"] if "number" in kinds else kinds))


def _type_column(name: str) -> str:
    return f"_jt_{name}"


def _violations(schema: dict[str, Any]) -> Column:
    """`; `-joined violations of one schema version ("" when none), from the per-field JSON type columns."""
    checks: list[Column] = []
    required = set(schema.get("required", []))
    for name, prop in schema["properties"].items():
        kind = F.col(_type_column(name))
        if name in required:
            checks.append(F.when(kind.isNull(), F.lit(f"missing required field '{name}'")))
        allowed = _allowed_types(prop)
        if allowed:
            checks.append(F.when(kind.isNotNull() & ~kind.isin(*allowed), F.concat(
                F.lit(f"wrong type for '{name}': "), kind, F.lit(f" (expected {'|'.join(allowed)})"))))
    return F.concat_ws("; ", *checks)


def with_schema_violation(df: DataFrame, raw: str, family: str) -> DataFrame:
    """Adds SCHEMA_VIOLATION: the payload text column `raw` against `family`'s JSON Schema at the payload's
    declared version (null when it conforms or does not parse at all).

    A payload declaring a version the repository does not know is checked against the latest version; the
    unknown version itself is left to the silver suite (it blocks the batch). Each field's JSON type is
    computed once, in its own column, so the plan stays small."""
    versions = schema_versions(family)
    schemas = {v: load_schema(family, v) for v in versions}
    fields = list(dict.fromkeys(name for schema in schemas.values() for name in schema["properties"]))
    payload = F.col("_payload")
    typed = df.withColumn("_payload", F.try_parse_json(raw)).withColumns({
        _type_column(name): json_type(F.schema_of_variant(F.variant_get(payload, f"$.{name}", "variant")))
        for name in fields
    })
    declared = F.try_variant_get(payload, "$.schema_version", "int")
    text = _violations(schemas[versions[-1]])
    for version in versions[:-1]:
        text = F.when(declared == version, _violations(schemas[version])).otherwise(text)
    violation = F.when(payload.isNull() | (text == ""), F.lit(None)).otherwise(text)
    return typed.withColumn(SCHEMA_VIOLATION, violation).drop("_payload", *[_type_column(n) for n in fields])


def trusted_time(events: DataFrame) -> Column:
    """The event time of rows that may move the watermark: schema-conforming ones (a wrongly typed timestamp
    must not push every later event into lateness)."""
    ok = F.col(SCHEMA_VIOLATION).isNull() if SCHEMA_VIOLATION in events.columns else F.lit(True)
    return F.when(ok, F.col("event_time"))


def with_lateness(events: DataFrame, prior: DataFrame, late_after_s: int = DEFAULT_LATE_AFTER_S) -> DataFrame:
    """Adds `watermark` and `is_late` to parsed events.

    watermark: max trusted event_time of the earlier offsets of the same Kafka partition, this batch and `prior`
    (source_topic, source_partition, max_event_time: the watermarks left by earlier batches) together, so the
    flag does not depend on how the stream was cut into batches. is_late: event_time < watermark - late_after_s.
    """
    earlier = Window.partitionBy(*WATERMARK_KEY).orderBy("source_offset").rowsBetween(Window.unboundedPreceding, -1)
    carried = prior.select(*WATERMARK_KEY, F.col("max_event_time").alias("_prior_max"))
    with_prior = events.join(F.broadcast(carried), WATERMARK_KEY, "left")
    watermark = F.greatest(F.max(trusted_time(events)).over(earlier), F.col("_prior_max"))
    late = F.coalesce(F.col("event_time") < watermark - F.expr(f"INTERVAL {int(late_after_s)} SECONDS"), F.lit(False))
    return with_prior.withColumn("watermark", watermark).withColumn("is_late", late).drop("_prior_max")


def next_watermarks(events: DataFrame, prior: DataFrame) -> DataFrame:
    """The per-partition watermarks after this batch: max event_time per (source_topic, source_partition)."""
    seen = events.groupBy(*WATERMARK_KEY).agg(F.max(trusted_time(events)).alias("max_event_time")).where(
        F.col("max_event_time").isNotNull())
    return seen.unionByName(prior.select(*WATERMARK_KEY, "max_event_time")).groupBy(*WATERMARK_KEY).agg(
        F.max("max_event_time").alias("max_event_time"))


def row_skus(events: DataFrame) -> Column:
    """The SKUs a row refers to: its order lines' SKUs, or its own `sku` (empty when it has none)."""
    if "lines" in events.columns:
        return F.coalesce(F.transform("lines", lambda line: line["sku"]), F.array().cast("array<string>"))
    if "sku" in events.columns:
        return F.when(F.col("sku").isNull(), F.array().cast("array<string>")).otherwise(F.array("sku"))
    return F.array().cast("array<string>")


def with_catalogue_check(events: DataFrame, catalogue: DataFrame) -> DataFrame:
    """Adds `unknown_sku`: the smallest SKU of the row missing from `catalogue` (column `sku`), else null.

    Rows are identified by their Kafka coordinates (source_topic, source_partition, source_offset)."""
    coordinates = [*WATERMARK_KEY, "source_offset"]
    skus = events.select(*coordinates, F.explode(row_skus(events)).alias("sku"))
    known = F.broadcast(catalogue.select("sku").distinct().withColumn("_known", F.lit(True)))
    unknown = (
        skus.join(known, "sku", "left").where(F.col("_known").isNull())
        .groupBy(*coordinates).agg(F.min("sku").alias("unknown_sku"))
    )
    return events.join(unknown, coordinates, "left")


def with_sku_check(events: DataFrame, catalogue: DataFrame) -> DataFrame:
    """`with_catalogue_check` for rows that refer to one SKU, their `sku` column (inventory, clickstream), as a
    stream-static join (no aggregation, so a streaming query can use it); catalogue: distinct `sku`."""
    known = F.broadcast(catalogue.select("sku").withColumn("_known", F.lit(True)))
    unknown = F.when(F.col("sku").isNotNull() & F.col("_known").isNull(), F.col("sku"))
    return events.join(known, "sku", "left").select(*events.columns, unknown.alias("unknown_sku"))
