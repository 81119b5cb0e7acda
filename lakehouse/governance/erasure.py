"""GDPR erasure (`lakehouse gdpr erase --customer-id N`): ERP customer N removed from every table under the
tables root and from the Kafka topics' retention, the files that held it purged, the request recorded without
personal data.

Where a customer's data lives, and how each place is found (`plan`):
* every table with a `customer_id` column: rows whose id is N (silver.customers_history, gold and marts keyed by
  the ERP's id, model training snapshots);
* raw payloads (`key`, `value` columns: bronze.erp_cdc_raw, silver.cdc_dead_letter, silver.cdc_tombstones (SCD1 tables),
  bronze.dead_letter): records of the ERP's customers table whose key or before/after image names N, and any
  payload that holds one of N's raw values (a malformed record that could not be parsed still holds them);
* restricted.pii_values: N's tokens, except a token another customer's row also holds (same name, same value):
  that value is not N's alone, and the other customer still needs it;
* Kafka: every record of the customers topic that bronze holds is deleted from the topic (DeleteRecords); bronze is
  the replayable copy, so other customers lose nothing.
Then each table that lost rows is purged: `REORG ... APPLY (PURGE)` rewrites files with deletion vectors, and
`VACUUM ... RETAIN 0 HOURS` deletes every file its current version does not use (earlier versions and change-data
files, which still held the rows): time travel to before the erasure ends on those tables, by design. The
tables that hold raw values never put them in Delta's statistics (`PII_STATS`), so the log holds none either.

Refused, with the reason, when: the pipeline runs (its stages write these tables); the ERP still has the
customer (with REPLICA IDENTITY FULL its delete event carries every value: erasing before it arrives would let it
bring them back); bronze does not hold every record of the customers topic yet (they would stay in Kafka only).
A run that stopped halfway can be run again: the customer's identity (silver history) goes last.

Not erased: ops.audit_log (append-only; statements' text, kept for security under its own retention) and the
ERP itself (the source system deletes its row first). The storefront's customer ids in event tables (`CUST-…`,
a separate identifier space with no raw values) are not linked to the ERP's id and are not touched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass, field
from functools import reduce

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.tables.base import DeltaTables

log = logging.getLogger(__name__)

ERASURE_LOG = "ops.gdpr_erasures"
ERASURE_LOG_SCHEMA = T.StructType([
    T.StructField("request_id", T.StringType()),
    T.StructField("subject", T.StringType()),  # HMAC-SHA256 of the customer id (key in $LAKEHOUSE_HOME/secrets)
    T.StructField("status", T.StringType()),  # 'started' (rows planned), then 'erased' (rows deleted, purged)
    T.StructField("requested_at", T.TimestampType()),
    T.StructField("finished_at", T.TimestampType()),
    T.StructField("rows_deleted", T.MapType(T.StringType(), T.LongType())),
    T.StructField("files_removed", T.LongType()),
    T.StructField("kafka_log_start", T.MapType(T.StringType(), T.LongType())),  # "topic/partition" -> offset
])
CUSTOMERS = "customers"  # the ERP table of data subjects (lakehouse/cdc/tables/customers.json)
ID_COLUMN = "customer_id"
PAYLOAD_COLUMNS = ("key", "value")
# Delta's statistics (min/max per file, in the log) only on these columns of the tables holding raw values
PII_STATS = {"delta.dataSkippingStatsColumns": "topic,partition,offset,source_table,column,token,reason"}
KEPT = ("ops.audit_log", ERASURE_LOG)


@dataclass(frozen=True)
class Subject:
    """Customer N as the platform holds it: id, tokens (column, token) in silver, raw values behind them."""

    customer_id: int
    tokens: tuple[tuple[str, str], ...] = ()
    shared: frozenset[tuple[str, str]] = frozenset()  # tokens another customer's rows also hold
    values: tuple[str, ...] = ()

    @property
    def own_tokens(self) -> list[tuple[str, str]]:
        return [t for t in self.tokens if t not in self.shared]


@dataclass
class Erasure:
    """What an erasure found (plan) and did (run)."""

    rows: dict[str, int] = field(default_factory=dict)  # table -> rows of the customer
    files_removed: int = 0
    kafka_log_start: dict[str, int] = field(default_factory=dict)
    request_id: str | None = None

    def render(self) -> str:
        lines = [f"  {t:<40} {n:>8,} rows" for t, n in sorted(self.rows.items())] or ["  no rows of the customer"]
        if self.request_id:
            lines.append(f"  purged {self.files_removed:,} files (REORG PURGE, VACUUM RETAIN 0 HOURS)")
            lines += [f"  Kafka {tp}: records before offset {o:,} deleted" for tp, o in
                      sorted(self.kafka_log_start.items())]
            lines.append(f"  request {self.request_id} recorded in {ERASURE_LOG}")
        return "\n".join(lines)


def _customers_spec():
    from lakehouse.cdc.specs import TABLES

    return TABLES[CUSTOMERS]


def find_subject(tables: DeltaTables, customer_id: int) -> Subject:
    """N's tokens and raw values (a handful of rows: bounded by one customer's history); refuses while the ERP
    still has the customer."""
    from transformations.silver.cdc import PII_TABLE

    spec = _customers_spec()
    if not tables.exists(spec.scd2):
        return Subject(customer_id)
    history = tables.read(spec.scd2)
    mine = history.where(F.col(ID_COLUMN) == customer_id)
    if mine.where("is_current").limit(1).count():
        raise LakehouseError(
            f"customer {customer_id} still exists in the ERP (its current row in {spec.scd2}): delete it in the ERP "
            "first and let CDC bring the delete (its event carries the row's values), then erase")
    pii = list(spec.pii)
    tokens = sorted({(c, r[c]) for r in mine.select(*pii).collect() for c in pii if r[c] is not None})
    if not tokens:
        return Subject(customer_id)
    others = history.where(F.col(ID_COLUMN) != customer_id).select(F.explode(F.array(
        *[F.struct(F.lit(c).alias("column"), F.col(c).alias("token")) for c in pii])).alias("t")).select("t.*")
    shared = frozenset(tuple(r) for r in others.where(_token_in(tokens)).distinct().collect())  # one scan
    own = [t for t in tokens if t not in shared]  # a value another customer also has is not a sign of N's rows
    values: tuple[str, ...] = ()
    if own and tables.exists(PII_TABLE):
        stored = tables.read(PII_TABLE).where((F.col("source_table") == spec.name) & _token_in(own))
        values = tuple(sorted({r.value for r in stored.select("value").collect() if r.value}))
    return Subject(customer_id, tuple(tokens), shared, values)


def _token_in(tokens: list[tuple[str, str]]) -> Column:
    return reduce(Column.__or__, [(F.col("column") == c) & (F.col("token") == t) for c, t in tokens], F.lit(False))


def holds(text: Column, value: str) -> Column:
    """`text` holds `value` as a whole, not inside a longer word or number ('c3@x.com' is not in 'c13@x.com',
    '3 Main Street' not in '13 Main Street')."""
    quoted = "\\Q" + value.replace("\\E", "\\E\\\\E\\Q") + "\\E"
    edge = "[\\p{L}\\p{N}_]"
    return F.coalesce(text.rlike(f"(?<!{edge}){quoted}(?!{edge})"), F.lit(False))


def _json_id(column: Column, path: str, customer_id: int) -> Column:
    return F.get_json_object(column.cast("string"), path) == str(customer_id)


def predicate(name: str, schema: T.StructType, subject: Subject) -> Column | None:
    """Rows of table `name` that are the subject's (None: the table cannot hold any)."""
    from lakehouse.cdc import topic
    from transformations.silver.cdc import PII_TABLE

    if name in KEPT:
        return None
    if name == PII_TABLE:
        own = subject.own_tokens
        return (F.col("source_table") == CUSTOMERS) & _token_in(own) if own else None
    columns = set(schema.fieldNames())
    parts: list[Column] = []
    if ID_COLUMN in columns:
        parts.append(F.col(ID_COLUMN).cast("string") == str(subject.customer_id))
    customers_rows = (F.col("topic") == topic(CUSTOMERS) if "topic" in columns
                      else F.col("source_table") == CUSTOMERS if "source_table" in columns else None)
    if customers_rows is not None and "key" in columns:
        parts.append(customers_rows & _json_id(F.col("key"), f"$.{ID_COLUMN}", subject.customer_id))
    if customers_rows is not None and "value" in columns:
        parts.append(customers_rows & (_json_id(F.col("value"), f"$.after.{ID_COLUMN}", subject.customer_id)
                                       | _json_id(F.col("value"), f"$.before.{ID_COLUMN}", subject.customer_id)))
    for column in (c for c in PAYLOAD_COLUMNS if c in columns):
        parts += [holds(F.col(column).cast("string"), v) for v in subject.values]
    return reduce(Column.__or__, parts) if parts else None


def plan(tables: DeltaTables, subject: Subject) -> tuple[dict[str, Column], Erasure]:
    """Per table, the predicate of the subject's rows and how many there are (one count per table)."""
    predicates, found = {}, Erasure()
    for name in tables.list_names():
        df = tables.read(name)
        where = predicate(name, df.schema, subject)
        if where is None:
            continue
        count = df.where(where).count()
        if count:
            predicates[name], found.rows[name] = where, count
    return predicates, found


def _erase_order(name: str) -> int:
    """The subject's identity last (silver history, then the tokens' values): a run that stops halfway can be run
    again and still finds the rest."""
    from transformations.silver.cdc import PII_TABLE

    return {PII_TABLE: 1, _customers_spec().scd2: 2}.get(name, 0)


def bronze_coverage(spark: SparkSession, settings: Settings) -> dict[int, int]:
    """{partition: end offset} of the customers topic, refused unless bronze CDC's query has committed every
    record (its checkpoint's offsets: bronze's own rows may be gone, erased)."""
    from jobs.bronze_cdc import APP_ID, TABLE
    from lakehouse.cdc import topic
    from lakehouse.sources.kafka_admin import list_topics, topic_partitions, watermarks
    from lakehouse.streaming import committed_kafka_offsets

    name, bootstrap = topic(CUSTOMERS), settings.kafka_bootstrap
    if name not in list_topics(bootstrap):
        return {}
    spans = {p: span for (_, p), span in watermarks(
        bootstrap, [(name, p) for p in topic_partitions(bootstrap, name)]).items()}
    held = committed_kafka_offsets(spark, settings.checkpoint(APP_ID)).get(name, {})
    missing = [f"partition {p} offsets {max(held.get(p, 0), start)}..{end - 1}"
               for p, (start, end) in sorted(spans.items()) if end > max(held.get(p, 0), start)]
    if missing:
        raise LakehouseError(
            f"{TABLE} does not hold every record of {name} yet ({'; '.join(missing)}): run `lakehouse run "
            "bronze_cdc` (or let the pipeline catch up), then erase")
    return {p: end for p, (_, end) in spans.items()}


def _purge(spark: SparkSession, tables: DeltaTables, name: str) -> int:
    location = tables.location(name).replace("`", "``")
    spark.sql(f"REORG TABLE delta.`{location}` APPLY (PURGE)").collect()
    return len(tables.vacuum(name, retention_hours=0))


def subject_hash(settings: Settings, customer_id: int) -> str:
    """HMAC-SHA256 of the id with the home's erasure key: a repeated request is recognisable, the id is not
    readable from the log."""
    from lakehouse.governance import secret_in
    from lakehouse.governance.accounts import secrets_dir

    key = secret_in(secrets_dir(settings) / "erasure-key")
    return hmac.new(key.encode(), f"{CUSTOMERS}:{customer_id}".encode(), hashlib.sha256).hexdigest()


def _record(spark: SparkSession, tables: DeltaTables, subject: str, status: str, done: Erasure,
            started: dt.datetime) -> None:
    tables.create(ERASURE_LOG, ERASURE_LOG_SCHEMA, properties={"delta.appendOnly": "true"})
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    row = (done.request_id, subject, status, started, now, done.rows, done.files_removed, done.kafka_log_start)
    tables.append(spark.createDataFrame([row], ERASURE_LOG_SCHEMA), ERASURE_LOG)


def unfinished(tables: DeltaTables, subject: str) -> set[str]:
    """Tables an earlier request for `subject` deleted rows from but may not have purged (it stopped before
    'erased'): purged again, since their rows are gone and a new plan would not find them."""
    if not tables.exists(ERASURE_LOG):
        return set()
    requests = tables.read(ERASURE_LOG).where(F.col("subject") == subject)
    started = requests.where("status = 'started'").join(
        requests.where("status = 'erased'").select("request_id"), "request_id", "left_anti")
    return {name for r in started.select(F.explode(F.map_keys("rows_deleted"))).collect() for name in r}


def erase(spark: SparkSession, tables: DeltaTables, settings: Settings, customer_id: int,
          dry_run: bool = False) -> Erasure:
    """Erase ERP customer `customer_id` (see the module's docstring); `dry_run`: only count its rows."""
    from lakehouse import pipeline
    from lakehouse.cdc import topic
    from lakehouse.sources.kafka_admin import delete_records

    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    running = [row["stage"] for row in pipeline.status(settings) if row["running"]]
    if running and not dry_run:
        raise LakehouseError(f"the pipeline runs ({', '.join(running)}); stop it first: `lakehouse pipeline stop`")
    subject = find_subject(tables, customer_id)
    ends = bronze_coverage(spark, settings) if not dry_run else {}
    predicates, done = plan(tables, subject)
    if dry_run:
        return done
    from delta.tables import DeltaTable

    digest, done.request_id = subject_hash(settings, customer_id), str(uuid.uuid4())
    pending = unfinished(tables, digest)
    _record(spark, tables, digest, "started", done, started)
    for name in sorted(predicates, key=_erase_order):
        DeltaTable.forPath(spark, tables.location(name)).delete(predicates[name])
        log.info("erasure: %d rows deleted from %s", done.rows[name], name)
    done.files_removed = sum(_purge(spark, tables, name) for name in sorted(set(predicates) | pending))
    deleted = delete_records(settings.kafka_bootstrap, topic(CUSTOMERS), ends)
    done.kafka_log_start = {f"{topic(CUSTOMERS)}/{p}": o for p, o in deleted.items()}
    _record(spark, tables, digest, "erased", done, started)
    tables.register(ERASURE_LOG)
    return done


def pii_stats(schema: T.StructType) -> dict[str, str]:
    """Table properties keeping raw values out of Delta's statistics: `PII_STATS` for the columns `schema` has."""
    wanted = PII_STATS["delta.dataSkippingStatsColumns"].split(",")
    return {"delta.dataSkippingStatsColumns": ",".join(c for c in wanted if c in schema.fieldNames())}
