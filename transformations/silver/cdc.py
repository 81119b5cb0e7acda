"""Silver CDC: Debezium envelopes (bronze rows) -> ordered, deduplicated changes -> SCD1 / SCD2 MERGE sources.

Pure DataFrame -> DataFrame functions; the job (jobs/silver_cdc.py) only reads, MERGEs and writes.

Ordering: the source LSN (`source.lsn`, the WAL position of each change) orders the changes of one key; row
locks make it a total order per key across transactions. Re-delivered events repeat a (key, LSN) and are
dropped; an event older than what a target already holds never overwrites it (MERGE conditions on `_lsn`),
and deletes leave a tombstone (table, key, LSN) so a late re-delivered insert cannot resurrect a deleted row.
SCD2: the MERGE source is a staged union, keyed by (key, `_lsn_from`), of the stored versions a batch closes
(matched: `valid_to`/`_lsn_to` set) and the new versions (not matched: inserted), rebuilt per touched key from
its stored versions plus the batch's events, so late events and re-deliveries land in the right place.
Tables without a spec are mirrored as text columns keyed by Debezium's message key (`mirror_spec`).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DecimalType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from lakehouse.cdc.specs import TABLES, CdcTable, mirror_spec  # noqa: F401 - re-exported

OPS = ("c", "r", "u", "d")
ENVELOPE = StructType([
    StructField("before", StringType()),
    StructField("after", StringType()),
    StructField("op", StringType()),
    StructField("source", StructType([
        StructField("lsn", LongType()),
        StructField("txId", LongType()),
        StructField("ts_ms", LongType()),
        StructField("schema", StringType()),
        StructField("table", StringType()),
    ])),
])
TS = TimestampType()
TEXT_MAP = MapType(StringType(), StringType())

TOMBSTONES = "silver.cdc_tombstones"
PII_TABLE = "restricted.pii_values"  # token -> raw value; readable only by those allowed to re-identify
PII_MERGE = {"on": "t.source_table = s.source_table AND t.`column` = s.`column` AND t.token = s.token",
             "update": False}
PII_SCHEMA = StructType([StructField("source_table", StringType()), StructField("column", StringType()),
                         StructField("token", StringType()), StructField("value", StringType())])
DEAD_LETTER = "silver.cdc_dead_letter"
META = ["_lsn", "_source_ts"]
DEAD_LETTER_COLUMNS = ["topic", "partition", "offset", "key", "value", "reason"]


def table_of_topic(topic: Column) -> Column:
    """erp.public.products -> products (the last dot-separated part)."""
    return F.element_at(F.split(topic, r"\."), -1)


def parse_envelopes(bronze: DataFrame) -> DataFrame:
    """Bronze rows -> one row per envelope with op, LSN, tx id, source time, the row image and `reason`.

    Tombstones (null value) are dropped: the delete envelope before them carries the change. `reason` is null
    for good rows, else why the row goes to the dead-letter table. Every table of the captured schema is kept
    (a table without a spec is mirrored generically)."""
    env = F.from_json(F.col("value"), ENVELOPE)
    rows = (
        bronze.where(F.col("value").isNotNull())
        .select("topic", "partition", "offset", F.col("key").cast("string").alias("key"),
                F.col("value").cast("string").alias("value"))
        .withColumn("_env", env)
        .withColumn("table", table_of_topic(F.col("topic")))
    )
    op, lsn = F.col("_env.op"), F.col("_env.source.lsn")
    image = F.when(op == "d", F.col("_env.before")).otherwise(F.col("_env.after"))
    reason = (
        F.when(F.col("_env").isNull() | op.isNull(), F.lit("malformed: not a Debezium JSON envelope"))
        .when(~op.isin(*OPS), F.concat(F.lit("unsupported op: "), op))
        .when(lsn.isNull(), F.lit("missing source.lsn"))
        .when(image.isNull(), F.concat(F.lit("missing row image for op "), op))
    )
    return rows.select(
        "topic", "partition", "offset", "key", "value", "table",
        op.alias("op"), lsn.alias("lsn"), F.col("_env.source.txId").alias("tx_id"),
        F.timestamp_millis(F.col("_env.source.ts_ms")).alias("source_ts"),
        image.alias("row_json"), reason.alias("reason"),
    )


def batch_tables(parsed: DataFrame, specified: list[str]) -> DataFrame:
    """One row per ERP table in a parsed batch: `table`, `envelopes`, `changes` (good envelopes), `deletes`,
    `key_columns` (the primary key Debezium reports in the message key) and `column_sets` (distinct column lists
    of the row images; only for tables not in `specified`, whose columns are discovered). Small: one row per
    table, the only thing the job collects."""
    good = F.col("reason").isNull()
    unspecified = ~F.col("table").isin(*specified) if specified else F.lit(True)
    key_columns = F.map_keys(F.from_json(F.col("key"), TEXT_MAP))
    image_columns = F.when(good & unspecified, F.map_keys(F.from_json(F.col("row_json"), TEXT_MAP)))
    return parsed.groupBy("table").agg(
        F.count(F.lit(1)).alias("envelopes"),
        F.count(F.when(good, True)).alias("changes"),
        F.count(F.when(good & (F.col("op") == "d"), True)).alias("deletes"),
        F.first(F.when(good & (F.size(key_columns) > 0), key_columns), ignorenulls=True).alias("key_columns"),
        F.collect_set(image_columns).alias("column_sets"),
    )


def _json_type(dtype: DataType) -> DataType:
    """How Debezium writes the type in JSON (decimal.handling.mode=string, ISO timestamps)."""
    return StringType() if isinstance(dtype, DecimalType | TimestampType) else dtype


def table_changes(parsed: DataFrame, spec: CdcTable) -> tuple[DataFrame, DataFrame]:
    """Good envelopes of one table -> (typed changes, envelopes whose primary key is missing).

    Changes: the table's columns + `_op`, `_deleted`, `_lsn`, `_tx_id`, `_source_ts`, `_partition`, `_offset`.
    A spec without a primary key (a table whose message key names none) dead-letters every envelope."""
    schema = StructType([StructField(c, _json_type(t)) for c, t in spec.columns])
    rows = parsed.where(F.col("reason").isNull() & (F.col("table") == spec.name)).withColumn(
        "_row", F.from_json("row_json", schema)
    )
    typed = [F.col("_row")[c].cast(t).alias(c) for c, t in spec.columns]
    changes = rows.select(
        *typed,
        F.col("op").alias("_op"), (F.col("op") == "d").alias("_deleted"), F.col("lsn").alias("_lsn"),
        F.col("tx_id").alias("_tx_id"), F.col("source_ts").alias("_source_ts"),
        F.col("partition").alias("_partition"), F.col("offset").alias("_offset"),
    )
    key_ok, key_ok_raw = F.lit(bool(spec.keys)), F.lit(bool(spec.keys))
    for k in spec.keys:
        key_ok = key_ok & F.col(k).isNotNull()
        key_ok_raw = key_ok_raw & F.col("_row")[k].isNotNull()
    bad = (
        rows.where(F.col("_row").isNull() | ~F.coalesce(key_ok_raw, F.lit(False)))
        .withColumn("reason", F.lit(f"missing primary key ({', '.join(spec.keys) or 'none in the message key'})"))
        .select(*DEAD_LETTER_COLUMNS)
    )
    return changes.where(key_ok), bad


def latest_per_key(changes: DataFrame, keys: tuple[str, ...] | list[str]) -> DataFrame:
    """The newest change of each key (highest LSN; re-deliveries of it are identical, any one is kept)."""
    w = Window.partitionBy(*keys).orderBy(F.col("_lsn").desc(), F.col("_partition").desc(), F.col("_offset").desc())
    return changes.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")


def key_json(keys: tuple[str, ...] | list[str]) -> Column:
    return F.to_json(F.struct(*keys))


def without_superseded(latest: DataFrame, tombstones: DataFrame, spec: CdcTable) -> DataFrame:
    """Drop changes older than a delete already applied to their key (a re-delivery must not resurrect it)."""
    tomb = tombstones.where(F.col("source_table") == spec.name).select(
        F.col("key").alias("_tkey"), F.col("lsn").alias("_tlsn")
    )
    joined = latest.withColumn("_tkey", key_json(spec.keys)).join(tomb, "_tkey", "left")
    return joined.where(F.col("_tlsn").isNull() | (F.col("_lsn") >= F.col("_tlsn"))).drop("_tkey", "_tlsn")


def scd1_source(latest: DataFrame, spec: CdcTable) -> DataFrame:
    """MERGE source for a current-state table: columns + `_lsn`, `_source_ts` (written) and `_deleted`."""
    return latest.select(*spec.column_names, *META, "_deleted")


def scd1_schema(spec: CdcTable) -> StructType:
    return StructType([StructField(c, t) for c, t in spec.columns]
                      + [StructField("_lsn", LongType()), StructField("_source_ts", TS)])


def _on(keys: list[str] | tuple[str, ...]) -> str:
    return " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)


def scd1_merge_kwargs(spec: CdcTable) -> dict[str, object]:
    """MergeSpec arguments: newer LSN wins; deletes remove; an older LSN never overwrites a newer one."""
    return {
        "on": _on(spec.keys),
        "delete_when": "s._deleted AND s._lsn >= t._lsn",
        "update_when": "NOT s._deleted AND s._lsn > t._lsn",
        "insert_when": "NOT s._deleted",
    }


def tombstone_rows(latest: DataFrame, spec: CdcTable) -> DataFrame:
    """(source_table, key, lsn) of the keys whose newest change is a delete."""
    return latest.where("_deleted").select(
        F.lit(spec.name).alias("source_table"), key_json(spec.keys).alias("key"), F.col("_lsn").alias("lsn")
    )


TOMBSTONE_MERGE = {"on": "t.source_table = s.source_table AND t.key = s.key", "update_when": "s.lsn > t.lsn"}
TOMBSTONE_SCHEMA = StructType([StructField("source_table", StringType()), StructField("key", StringType()),
                               StructField("lsn", LongType())])


# --- SCD2 -------------------------------------------------------------------------------------------------------


def scd2_schema(spec: CdcTable) -> StructType:
    types = dict(spec.columns)
    return StructType(
        [StructField(c, types[c]) for c in (*spec.keys, *spec.history_tracked)]
        + [StructField("valid_from", TS), StructField("valid_to", TS), StructField("is_current", BooleanType()),
           StructField("_lsn_from", LongType()), StructField("_lsn_to", LongType()),
           StructField("_ended_by_delete", BooleanType())]
    )


def scd2_rebuild(existing: DataFrame, changes: DataFrame, spec: CdcTable) -> DataFrame:
    """History rows of every key touched by `changes`, rebuilt from its stored versions plus the new events.

    Returns the history rows that change, with `_action`: 'upsert' (insert or update on key + `_lsn_from`; stored
    versions that stay the same are left out) or 'delete' (a stored
    version that is no longer a version start, e.g. after a late event). A version starts when a tracked
    column changes or after a delete; it ends at the next version start or delete (`valid_to`, `_lsn_to`)."""
    keys, tracked = list(spec.keys), spec.history_tracked
    new = changes.select(
        *keys,
        *[F.when(~F.col("_deleted"), F.col(c)).alias(c) for c in tracked],
        "_lsn", F.col("_source_ts").alias("_ts"), "_deleted",
    )
    affected = new.select(*keys).distinct()
    old = existing.join(affected, keys, "left_semi")
    old_versions = old.select(*keys, *tracked, F.col("_lsn_from").alias("_lsn"), F.col("valid_from").alias("_ts"),
                              F.lit(False).alias("_deleted"))
    old_deletes = old.where("_ended_by_delete").select(
        *keys, *[F.lit(None).cast(existing.schema[c].dataType).alias(c) for c in tracked],
        F.col("_lsn_to").alias("_lsn"), F.col("valid_to").alias("_ts"), F.lit(True).alias("_deleted"),
    )
    events = old_versions.unionByName(old_deletes).unionByName(new).dropDuplicates([*keys, "_lsn"])
    w = Window.partitionBy(*keys).orderBy("_lsn")
    attrs = F.struct(*tracked)
    prev_deleted = F.lag("_deleted").over(w)
    prev_attrs = F.lag(attrs).over(w)
    flagged = events.select(
        "*",
        (~F.col("_deleted") & (prev_deleted.isNull() | prev_deleted | ~attrs.eqNullSafe(prev_attrs))).alias("_start"),
        (F.col("_deleted") & (prev_deleted == F.lit(False))).alias("_end"),
    )
    bounds = flagged.where("_start OR _end")
    nxt = Window.partitionBy(*keys).orderBy("_lsn")
    versions = (
        bounds.select(
            "*", F.lead("_lsn").over(nxt).alias("_next_lsn"), F.lead("_ts").over(nxt).alias("_next_ts"),
            F.lead("_deleted").over(nxt).alias("_next_deleted"),
        )
        .where("_start")
        .select(
            *keys, *tracked, F.col("_ts").alias("valid_from"), F.col("_next_ts").alias("valid_to"),
            F.col("_next_lsn").isNull().alias("is_current"), F.col("_lsn").alias("_lsn_from"),
            F.col("_next_lsn").alias("_lsn_to"), F.coalesce("_next_deleted", F.lit(False)).alias("_ended_by_delete"),
        )
    )
    gone = old.join(versions.select(*keys, "_lsn_from"), [*keys, "_lsn_from"], "left_anti")
    stored = old.select(*keys, "_lsn_from", F.col("_lsn_to").alias("_old_lsn_to"),
                        F.col("_ended_by_delete").alias("_old_ebd"), F.lit(True).alias("_old"))
    changed = versions.join(stored, [*keys, "_lsn_from"], "left").where(  # unchanged versions are not rewritten
        F.col("_old").isNull() | ~F.col("_lsn_to").eqNullSafe(F.col("_old_lsn_to"))
        | (F.col("_ended_by_delete") != F.col("_old_ebd"))
    )
    columns = scd2_schema(spec).fieldNames()
    return changed.select(*columns, F.lit("upsert").alias("_action")).unionByName(
        gone.select(*columns, F.lit("delete").alias("_action"))
    )


def scd2_merge_kwargs(spec: CdcTable) -> dict[str, object]:
    return {
        "on": _on([*spec.keys, "_lsn_from"]),
        "delete_when": "s._action = 'delete'",
        "update_when": "s._action = 'upsert'",
        "insert_when": "s._action = 'upsert'",
    }


def scd2_as_of(history: DataFrame, lsn: int) -> DataFrame:
    """The versions valid at WAL position `lsn` (the database state as of the commit at or before it)."""
    return history.where((F.col("_lsn_from") <= lsn) & (F.col("_lsn_to").isNull() | (F.col("_lsn_to") > lsn)))


DEAD_LETTER_SCHEMA = StructType([
    StructField("topic", StringType()), StructField("partition", IntegerType()), StructField("offset", LongType()),
    StructField("key", StringType()), StructField("value", StringType()), StructField("reason", StringType()),
    StructField("dead_lettered_at", TS),
])


def dead_letters(rows: DataFrame, at: dt.datetime) -> DataFrame:
    """Dead-letter rows (Kafka coordinates, key, raw value, reason) stamped with `at` (naive UTC)."""
    return rows.select(
        *[F.col(f.name).cast(f.dataType).alias(f.name) for f in DEAD_LETTER_SCHEMA.fields[:-1]],
        F.lit(at).cast(TS).alias("dead_lettered_at"),
    )


def tokenize_changes(changes: DataFrame, spec: CdcTable, salt: str) -> tuple[DataFrame, DataFrame]:
    """(changes with each PII column replaced by its token, PII_SCHEMA rows: one per distinct column and token)."""
    from transformations.silver.enrichment import tokenize_pii

    tokenized, restricted = tokenize_pii(changes, list(spec.pii), salt)
    return tokenized, restricted.select(F.lit(spec.name).alias("source_table"), "column", "token", "value")
