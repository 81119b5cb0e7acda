"""Silver CDC: Debezium envelopes (bronze rows) -> ordered, deduplicated changes -> SCD1 / SCD2 MERGE inputs.

Ordering: the source LSN (`source.lsn`, the WAL position of each change) orders the changes of one key; row
locks make it a total order per key across transactions. Re-delivered events repeat a (key, LSN) and are
dropped; an event older than what a target already holds never overwrites it (MERGE conditions on `_lsn`),
and deletes leave a tombstone (table, key, LSN) so a late re-delivered insert cannot resurrect a deleted row.
SCD2 history is rebuilt per touched key from its stored versions plus the new events, so late events land
in the right place.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import pyarrow as pa
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
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
    pii: tuple[str, ...] = ()  # personal data: tokens in silver, raw values only in PII_TABLE

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
        CdcTable("warehouses", ("warehouse_id",), (("warehouse_id", IntegerType()), ("code", StringType()),
                 ("name", StringType()), ("city", StringType()), ("country", StringType())),
                 scd1="silver.warehouses"),
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
                 ("marketing_consent", BooleanType()), ("updated_at", TS)), scd2="silver.customers_history",
                 pii=("name", "email", "address")),
        CdcTable("fx_rates", ("currency",), (("currency", StringType()), ("rate_to_eur", DEC8),
                 ("updated_at", TS)), scd1="silver.fx_rates", scd2="silver.fx_rates_history",
                 tracked=("rate_to_eur",)),
    )
}
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


# --- Arrow path (the job): one collect per batch, per-table logic in Python, MERGE from Arrow ------------------
#
# The Spark functions above define the semantics (and are kept for ad-hoc use and their tests); the functions
# below implement the same rules on one Arrow batch, which avoids one or more Spark jobs per target table.


class Change:
    """One change of one key: the raw row image, typed to the table's columns on first use (`row`)."""

    __slots__ = ("_row", "deleted", "image", "key", "lsn", "offset", "partition", "spec", "ts_ms")

    def __init__(self, spec: CdcTable, key: tuple, image: dict, deleted: bool, lsn: int, ts_ms: object,
                 partition: int, offset: int) -> None:
        self.spec, self.key, self.image, self.deleted, self.lsn = spec, key, image, deleted, lsn
        self.ts_ms, self.partition, self.offset = ts_ms, partition, offset
        self._row: dict[str, object] | None = None

    @property
    def row(self) -> dict[str, object]:
        """The row image typed to the table's columns (None where a value does not convert, like Spark's cast)."""
        if self._row is None:
            image = self.image
            self._row = {c: conv(image.get(c)) for c, conv in _CONVERTERS[self.spec.name]}
        return self._row

    def value(self, column: str) -> object:
        """One typed column (without typing the whole row)."""
        if self._row is not None:
            return self._row[column]
        return _COLUMN_CONVERTERS[self.spec.name][column](self.image.get(column))

    @property
    def source_ts(self) -> dt.datetime | None:
        ts = self.ts_ms
        return EPOCH + dt.timedelta(milliseconds=ts) if isinstance(ts, int) and not isinstance(ts, bool) else None


@dataclass
class ParsedBatch:
    """Envelopes of one bronze batch: typed changes per ERP table, dead letters, envelope count."""

    changes: dict[str, list[Change]]
    dead: list[dict[str, object]]
    envelopes: int


def _to_timestamp(value: object) -> dt.datetime | None:
    """Debezium timestamps: ISO-8601 text (timestamptz) or epoch microseconds -> naive UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            ts = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return ts.astimezone(dt.UTC).replace(tzinfo=None) if ts.tzinfo else ts
    if isinstance(value, int) and not isinstance(value, bool):
        return EPOCH + dt.timedelta(microseconds=value)
    return None


EPOCH = dt.datetime(1970, 1, 1)


def _converter(dtype: DataType) -> Callable[[object], object]:
    """JSON value -> Python value of `dtype` (None when it does not convert, like Spark's cast)."""
    if isinstance(dtype, DecimalType):
        quantum = Decimal(1).scaleb(-dtype.scale)

        def to_decimal(v: object) -> Decimal | None:
            if v is None or isinstance(v, bool):
                return None
            try:
                return Decimal(str(v)).quantize(quantum, rounding=ROUND_HALF_UP)
            except InvalidOperation:
                return None
        return to_decimal
    if isinstance(dtype, TimestampType):
        return _to_timestamp
    if isinstance(dtype, IntegerType | LongType):
        return lambda v: v if isinstance(v, int) and not isinstance(v, bool) else None
    if isinstance(dtype, BooleanType):
        return lambda v: v if isinstance(v, bool) else None
    return lambda v: v if isinstance(v, str) else (None if v is None else json.dumps(v))


_COLUMN_CONVERTERS = {n: {c: _converter(t) for c, t in spec.columns} for n, spec in TABLES.items()}
_CONVERTERS = {n: list(convs.items()) for n, convs in _COLUMN_CONVERTERS.items()}


def parse_batch(bronze: pa.Table, known: tuple[str, ...] | None = None) -> ParsedBatch:
    """Bronze rows (topic, partition, offset, key, value) -> typed changes per table + dead letters.

    Same rules as `parse_envelopes` + `table_changes`: tombstones (null value) are dropped; malformed, unknown
    table, unsupported op, missing LSN, missing row image and missing primary key go to the dead letters."""
    known = tuple(TABLES) if known is None else known
    key_converters = {n: [_COLUMN_CONVERTERS[n][k] for k in TABLES[n].keys] for n in known}
    out: dict[str, list[Change]] = {n: [] for n in known}
    dead: list[dict[str, object]] = []
    envelopes = 0
    decoder = json.JSONDecoder()
    raw_decode, decode = decoder.raw_decode, decoder.decode
    table_of: dict[str, str] = {}
    cols = [bronze.column(c).to_pylist() for c in ("topic", "partition", "offset", "key", "value")]
    for topic, partition, offset, key, raw in zip(*cols, strict=True):
        if raw is None:
            continue
        envelopes += 1
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            env, end = raw_decode(text)  # the common case: no surrounding whitespace
            if end != len(text):
                env = decode(text)
        except ValueError:
            try:
                env = decode(text)
            except ValueError:
                env = None
        op = env.get("op") if isinstance(env, dict) else None
        table = table_of.get(topic)
        if table is None:
            table = table_of[topic] = topic.rsplit(".", 1)[-1]
        source = env.get("source") if op is not None else None
        lsn = source.get("lsn") if isinstance(source, dict) else None
        image = (env.get("before") if op == "d" else env.get("after")) if op is not None else None
        spec = TABLES.get(table) if table in known else None
        key_values = None
        if op is None:
            reason = "malformed: not a Debezium JSON envelope"
        elif spec is None:
            reason = f"unknown table: {topic}"
        elif op not in OPS:
            reason = f"unsupported op: {op}"
        elif not isinstance(lsn, int) or isinstance(lsn, bool):
            reason = "missing source.lsn"
        elif image is None:
            reason = f"missing row image for op {op}"
        else:
            if isinstance(image, dict):
                if len(spec.keys) == 1:
                    key_values = (key_converters[table][0](image.get(spec.keys[0])),)
                else:
                    key_values = tuple(conv(image.get(k)) for conv, k in zip(key_converters[table], spec.keys,
                                                                               strict=True))
            reason = None if key_values is not None and None not in key_values else (
                f"missing primary key ({', '.join(spec.keys)})")
        if reason is not None:
            dead.append({"topic": topic, "partition": partition, "offset": offset, "key": key, "value": text,
                         "reason": reason})
            continue
        out[table].append(Change(spec, key_values, image, op == "d", lsn, source.get("ts_ms"), partition, offset))
    return ParsedBatch(out, dead, envelopes)


def latest_changes(changes: list[Change]) -> dict[tuple, Change]:
    """The newest change of each key (highest LSN, then partition and offset, as `latest_per_key`)."""
    latest: dict[tuple, Change] = {}
    for c in changes:
        seen = latest.get(c.key)
        if seen is None or (c.lsn, c.partition, c.offset) > (seen.lsn, seen.partition, seen.offset):
            latest[c.key] = c
    return latest


def key_text(spec: CdcTable, key: tuple) -> str:
    """The tombstone key: the same JSON text as Spark's `to_json(struct(keys))` (e.g. {"sku":"A"})."""
    return json.dumps(dict(zip(spec.keys, key, strict=True)), separators=(",", ":"), ensure_ascii=False)


def arrow_schema(schema: StructType) -> pa.Schema:
    """The Arrow schema Spark and the Delta tables use for `schema` (timestamps in UTC)."""
    return to_arrow_schema(schema, timestamp_utc=True)


def _arrow(rows: list[dict[str, object]], schema: StructType) -> pa.Table:
    names = schema.fieldNames()
    arrays = {n: [r[n] for r in rows] for n in names}
    target = arrow_schema(schema)
    return pa.Table.from_arrays(
        [pa.array(arrays[f.name], type=_naive(f.type)).cast(f.type) for f in target], schema=target
    )


def _naive(dtype: pa.DataType) -> pa.DataType:
    """Naive datetimes are UTC: build them without a zone, then cast to the zoned type (no shift)."""
    return pa.timestamp(dtype.unit) if pa.types.is_timestamp(dtype) else dtype


SCD1_EXTRA = StructType([StructField("_deleted", BooleanType())])
SCD2_ACTION = StructType([StructField("_action", StringType())])


def scd1_arrow(latest: dict[tuple, Change], tombstones: dict[str, int], spec: CdcTable) -> pa.Table:
    """SCD1 MERGE source (`scd1_source` after `without_superseded`): drops changes older than a stored delete."""
    rows = []
    for key, c in latest.items():
        dropped_at = tombstones.get(key_text(spec, key))
        if dropped_at is not None and c.lsn < dropped_at:
            continue
        rows.append({**c.row, "_lsn": c.lsn, "_source_ts": c.source_ts, "_deleted": c.deleted})
    schema = StructType(scd1_schema(spec).fields + SCD1_EXTRA.fields)
    return _arrow(rows, schema)


def tombstones_arrow(latest: dict[tuple, Change], spec: CdcTable) -> pa.Table:
    """(source_table, key, lsn) of the keys whose newest change is a delete (`tombstone_rows`)."""
    rows = [{"source_table": spec.name, "key": key_text(spec, k), "lsn": c.lsn} for k, c in latest.items()
            if c.deleted]
    return _arrow(rows, TOMBSTONE_SCHEMA)


def _naive_utc(value: object) -> object:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def scd2_rebuild_arrow(existing: pa.Table, changes: list[Change], spec: CdcTable) -> pa.Table:
    """`scd2_rebuild` on Arrow: `existing` holds (at least) the stored history of every key in `changes`.

    Returns the history rows that change, with `_action` 'upsert' or 'delete'."""
    keys, tracked = list(spec.keys), spec.history_tracked
    # per key: {lsn: (attrs, ts, deleted)}; stored events first, re-deliveries of them are identical
    events: dict[tuple, dict[int, tuple[tuple, object, bool]]] = {}
    stored: dict[tuple, dict[int, dict[str, object]]] = {}
    touched = {c.key for c in changes}
    for r in existing.to_pylist():
        key = tuple(r[k] for k in keys)
        if key not in touched:
            continue
        r = {n: _naive_utc(v) for n, v in r.items()}
        stored.setdefault(key, {})[r["_lsn_from"]] = r
        per = events.setdefault(key, {})
        per.setdefault(r["_lsn_from"], (tuple(r[c] for c in tracked), r["valid_from"], False))
        if r["_ended_by_delete"] and r["_lsn_to"] is not None:
            per.setdefault(r["_lsn_to"], ((None,) * len(tracked), r["valid_to"], True))
    for c in changes:
        attrs = (None,) * len(tracked) if c.deleted else tuple(c.value(t) for t in tracked)
        events.setdefault(c.key, {}).setdefault(c.lsn, (attrs, c.source_ts, c.deleted))
    out: list[dict[str, object]] = []
    for key, per in events.items():
        bounds: list[tuple[int, tuple, object, bool, bool]] = []  # lsn, attrs, ts, deleted, start
        prev: tuple[tuple, object, bool] | None = None
        for lsn in sorted(per):
            attrs, ts, deleted = per[lsn]
            start = not deleted and (prev is None or prev[2] or attrs != prev[0])
            end = deleted and prev is not None and not prev[2]
            if start or end:
                bounds.append((lsn, attrs, ts, deleted, start))
            prev = per[lsn]
        old = stored.get(key, {})
        kept: set[int] = set()
        for i, (lsn, attrs, ts, _deleted, start) in enumerate(bounds):
            if not start:
                continue
            nxt = bounds[i + 1] if i + 1 < len(bounds) else None
            version = {
                **dict(zip(keys, key, strict=True)), **dict(zip(tracked, attrs, strict=True)),
                "valid_from": ts, "valid_to": nxt[2] if nxt else None, "is_current": nxt is None,
                "_lsn_from": lsn, "_lsn_to": nxt[0] if nxt else None, "_ended_by_delete": bool(nxt and nxt[3]),
            }
            kept.add(lsn)
            was = old.get(lsn)
            if was is None or was["_lsn_to"] != version["_lsn_to"] or was["_ended_by_delete"] != version[
                    "_ended_by_delete"]:
                out.append({**version, "_action": "upsert"})
        out.extend({**r, "_action": "delete"} for lsn, r in old.items() if lsn not in kept)
    return _arrow(out, StructType(scd2_schema(spec).fields + SCD2_ACTION.fields))


DEAD_LETTER_SCHEMA = StructType([
    StructField("topic", StringType()), StructField("partition", IntegerType()), StructField("offset", LongType()),
    StructField("key", StringType()), StructField("value", StringType()), StructField("reason", StringType()),
    StructField("dead_lettered_at", TS),
])


def dead_letters_arrow(dead: list[dict[str, object]], at: dt.datetime) -> pa.Table:
    """Dead-letter rows (Kafka coordinates, key, raw value, reason) stamped with `at` (naive UTC)."""
    return _arrow([{**d, "dead_lettered_at": at} for d in dead], DEAD_LETTER_SCHEMA)


def tokenize_changes(changes: list[Change], spec: CdcTable, salt: str) -> pa.Table:
    """Replace the PII columns of every change's row image by their tokens (in place, before any typing) and
    return the raw values as PII_SCHEMA rows (one per distinct column and token)."""
    from transformations.silver.enrichment import pii_token_text

    seen: dict[tuple[str, str], str] = {}
    for change in changes:
        image = dict(change.image)
        for column in spec.pii:
            raw = image.get(column)
            if raw is not None:
                token = image[column] = pii_token_text(raw, salt)
                seen[(column, token)] = str(raw)
        change.image, change._row = image, None
    rows = [{"source_table": spec.name, "column": c, "token": t, "value": v} for (c, t), v in seen.items()]
    return pa.Table.from_pylist(rows, schema=arrow_schema(PII_SCHEMA))
