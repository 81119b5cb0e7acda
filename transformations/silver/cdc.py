"""Silver CDC: Debezium envelopes (bronze rows) -> ordered, deduplicated changes -> SCD1 / SCD2 MERGE inputs.

Ordering: the source LSN (`source.lsn`, the WAL position of each change) orders the changes of one key; row
locks make it a total order per key across transactions. Re-delivered events repeat a (key, LSN) and are
dropped; an event older than what a target already holds never overwrites it (MERGE conditions on `_lsn`),
and deletes leave a tombstone (table, key, LSN) so a late re-delivered insert cannot resurrect a deleted row.
SCD2 history is rebuilt per touched key from its stored versions plus the new events, so late events land
in the right place.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

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


@dataclass(frozen=True)
class CdcTable:
    """One ERP table: primary key, typed columns, and its silver targets."""

    name: str
    keys: tuple[str, ...]
    columns: tuple[tuple[str, DataType], ...]
    scd1: str | None = None  # current-state target
    scd2: str | None = None  # history target
    tracked: tuple[str, ...] = ()  # SCD2: a new version starts when one of these changes (default: all non-keys)

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    @property
    def history_tracked(self) -> list[str]:
        return list(self.tracked) or [c for c in self.column_names if c not in self.keys]


TS, DEC2, DEC8 = TimestampType(), DecimalType(12, 2), DecimalType(18, 8)
TABLES: dict[str, CdcTable] = {
    t.name: t
    for t in (
        CdcTable("warehouses", ("warehouse_id",), (("warehouse_id", IntegerType()), ("name", StringType()),
                 ("city", StringType()), ("country", StringType())), scd1="silver.warehouses"),
        CdcTable("suppliers", ("supplier_id",), (("supplier_id", IntegerType()), ("name", StringType()),
                 ("country", StringType()), ("email", StringType())), scd1="silver.suppliers"),
        CdcTable("products", ("sku",), (("sku", StringType()), ("title", StringType()), ("category", StringType()),
                 ("price", DEC2), ("currency", StringType()), ("active", BooleanType()),
                 ("supplier_id", IntegerType()), ("updated_at", TS)),
                 scd1="silver.products", scd2="silver.product_prices_history", tracked=("price", "currency")),
        CdcTable("inventory", ("sku", "warehouse_id"), (("sku", StringType()), ("warehouse_id", IntegerType()),
                 ("on_hand", IntegerType())), scd1="silver.inventory"),
        CdcTable("customers", ("customer_id",), (("customer_id", LongType()), ("name", StringType()),
                 ("email", StringType()), ("address", StringType()), ("country", StringType()),
                 ("marketing_consent", BooleanType()), ("updated_at", TS)), scd2="silver.customers_history"),
        CdcTable("fx_rates", ("currency",), (("currency", StringType()), ("rate_to_eur", DEC8),
                 ("updated_at", TS)), scd1="silver.fx_rates"),
    )
}
TOMBSTONES = "silver.cdc_tombstones"
DEAD_LETTER = "silver.cdc_dead_letter"
META = ["_lsn", "_source_ts"]
DEAD_LETTER_COLUMNS = ["topic", "partition", "offset", "key", "value", "reason"]


def table_of_topic(topic: Column) -> Column:
    """erp.public.products -> products (the last dot-separated part)."""
    return F.element_at(F.split(topic, r"\."), -1)


def parse_envelopes(bronze: DataFrame, known: tuple[str, ...] | None = None) -> DataFrame:
    """Bronze rows -> one row per envelope with op, LSN, tx id, source time, the row image and `reason`.

    Tombstones (null value) are dropped: the delete envelope before them carries the change. `reason` is null
    for good rows, else why the row goes to the dead-letter table."""
    known = tuple(TABLES) if known is None else known
    env = F.from_json(F.col("value"), ENVELOPE)
    rows = (
        bronze.where(F.col("value").isNotNull())
        .select("topic", "partition", "offset", "key", F.col("value").cast("string").alias("value"))
        .withColumn("_env", env)
        .withColumn("table", table_of_topic(F.col("topic")))
    )
    op, lsn = F.col("_env.op"), F.col("_env.source.lsn")
    image = F.when(op == "d", F.col("_env.before")).otherwise(F.col("_env.after"))
    reason = (
        F.when(F.col("_env").isNull() | op.isNull(), F.lit("malformed: not a Debezium JSON envelope"))
        .when(~F.col("table").isin(*known), F.concat(F.lit("unknown table: "), F.col("topic")))
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


def _json_type(dtype: DataType) -> DataType:
    """How Debezium writes the type in JSON (decimal.handling.mode=string, ISO timestamps)."""
    return StringType() if isinstance(dtype, DecimalType | TimestampType) else dtype


def table_changes(parsed: DataFrame, spec: CdcTable) -> tuple[DataFrame, DataFrame]:
    """Good envelopes of one table -> (typed changes, envelopes whose primary key is missing).

    Changes: the table's columns + `_op`, `_deleted`, `_lsn`, `_tx_id`, `_source_ts`, `_partition`, `_offset`."""
    schema = StructType([StructField(c, _json_type(t)) for c, t in spec.columns])
    rows = parsed.where(F.col("reason").isNull() & (F.col("table") == spec.name)).withColumn(
        "_row", F.from_json("row_json", schema)
    )
    typed = [F.col(f"_row.{c}").cast(t).alias(c) for c, t in spec.columns]
    changes = rows.select(
        *typed,
        F.col("op").alias("_op"), (F.col("op") == "d").alias("_deleted"), F.col("lsn").alias("_lsn"),
        F.col("tx_id").alias("_tx_id"), F.col("source_ts").alias("_source_ts"),
        F.col("partition").alias("_partition"), F.col("offset").alias("_offset"),
    )
    key_ok, key_ok_raw = F.lit(True), F.lit(True)
    for k in spec.keys:
        key_ok = key_ok & F.col(k).isNotNull()
        key_ok_raw = key_ok_raw & F.col(f"_row.{k}").isNotNull()
    bad = (
        rows.where(F.col("_row").isNull() | ~F.coalesce(key_ok_raw, F.lit(False)))
        .withColumn("reason", F.lit(f"missing primary key ({', '.join(spec.keys)})"))
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


def dead_letters(rows: DataFrame) -> DataFrame:
    """Dead-letter rows: Kafka coordinates, key, raw value, reason."""
    return rows.select(*DEAD_LETTER_COLUMNS)
