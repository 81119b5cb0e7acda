"""The table API on Delta Lake's own classes (the embedded default, Databricks, EMR)."""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from lakehouse.errors import TableNotFound
from lakehouse.tables.base import DeltaTables, MergeSpec

log = logging.getLogger(__name__)
CHANGE_FEED = "delta.enableChangeDataFeed"


class NativeDeltaTables(DeltaTables):
    backend = "native"

    def __init__(self, spark, settings) -> None:  # noqa: ANN001
        super().__init__(spark, settings)
        # read_appends uses the change data feed: on for every table this platform creates
        spark.conf.set("spark.databricks.delta.properties.defaults.enableChangeDataFeed", "true")
        self._transactions: dict[str, tuple[tuple[int, int], dict[str, int]]] = {}  # location -> (version, its
        # commit time), its set transactions
        # DeltaLog.forTable, resolved once (each py4j name resolution, org, org.apache, ..., is a round trip). Not
        # the DeltaLog objects: one held here keeps its latest snapshot (cached state, plans) alive in the JVM for as
        # long as this object lives; Delta's own cache of them is bounded and can be cleared.
        self._delta_log_for = spark._jvm.org.apache.spark.sql.delta.DeltaLog.forTable
        self._none = spark._jvm.scala.Option.empty()

    def _require(self, name: str) -> None:
        if not self.exists(name):
            raise self._not_found(name)

    def _not_found(self, name: str) -> TableNotFound:
        return TableNotFound(f"table {name} does not exist (no Delta table at {self.location(name)})")

    def _delta(self, name: str):
        from delta.tables import DeltaTable

        self._require(name)
        return DeltaTable.forPath(self.spark, self.location(name))

    def exists(self, name: str) -> bool:
        """Whether the table has a commit now: the log is listed on every call (`DeltaTable.isDeltaTable`
        answers from Delta's cached log, and a long-running job would never see a table created after its
        first look)."""
        return int(self._snapshot(name).version()) >= 0

    def create(self, name: str, schema: StructType, partition_by: list[str] | None = None,
               properties: dict[str, str] | None = None) -> None:
        from delta.tables import DeltaTable

        builder = (
            DeltaTable.createIfNotExists(self.spark)
            .location(self.location(name))
            .addColumns(schema)
            .property(CHANGE_FEED, "true")
        )
        for key, value in (properties or {}).items():
            builder = builder.property(key, value)
        if partition_by:
            builder = builder.partitionedBy(*partition_by)
        builder.execute()

    def _writer(self, df: DataFrame, mode: str, partition_by: list[str] | None):
        writer = df.write.format("delta").mode(mode)
        return writer.partitionBy(*partition_by) if partition_by else writer

    def append(self, df: DataFrame, name: str, partition_by: list[str] | None = None, merge_schema: bool = False) -> None:
        self._writer(df, "append", partition_by).option("mergeSchema", str(merge_schema).lower()).save(
            self.location(name)
        )

    def overwrite(self, df: DataFrame, name: str, partition_by: list[str] | None = None) -> None:
        self._writer(df, "overwrite", partition_by).option("overwriteSchema", "true").save(self.location(name))

    def _snapshot(self, name: str):
        """Delta's latest snapshot of the table (lists the log; no Spark job)."""
        delta_log = self._delta_log_for(self.spark._jsparkSession, self.location(name))
        return delta_log.update(False, self._none, self._none)

    def table_id(self, name: str) -> str:
        return str(self._snapshot(name).metadata().id())

    def ensure_change_feed(self, name: str) -> bool:
        enabled = self._snapshot(name).metadata().configuration().get(CHANGE_FEED)
        if enabled.isDefined() and str(enabled.get()).lower() == "true":
            return False
        self.spark.sql(f"ALTER TABLE delta.`{self.location(name)}` SET TBLPROPERTIES ('{CHANGE_FEED}' = 'true')")
        log.warning("%s did not record its change data feed: turned on from version %s", name, self.version(name))
        return True

    def committed_batch(self, name: str, app_id: str) -> int | None:
        """The newest `txnVersion` committed with `txnAppId = app_id`: Delta keeps these as `txn` actions in the
        log (the snapshot's set transactions), not in DESCRIBE HISTORY. Read from the version's checksum file
        (`<version>.crc`, where Delta records every set transaction at commit) when it has them: the snapshot's
        own `transactions` replays the whole log with Spark jobs, once per new version."""
        snapshot = self._snapshot(name)
        if int(snapshot.version()) < 0:
            return None
        # a job re-run on unchanged tables asks again and again; the commit time tells a table re-created since
        location, at = self.location(name), (int(snapshot.version()), int(snapshot.timestamp()))
        cached = self._transactions.get(location)
        if cached is not None and cached[0] == at:
            return cached[1].get(app_id)
        known = _checksum_transactions(snapshot)
        if known is not None:
            self._transactions[location] = (at, known)
            return known.get(app_id)
        found = snapshot.transactions().get(app_id)
        return int(found.get()) if found.isDefined() else None

    def _already_committed(self, name: str, app_id: str, batch_id: int) -> bool:
        committed = self.committed_batch(name, app_id)
        return committed is not None and committed >= batch_id

    def write_batch(
        self, df: DataFrame, name: str, app_id: str, batch_id: int, mode: str = "append",
        partition_by: list[str] | None = None, replace_where: str | None = None,
    ) -> bool:
        if self._already_committed(name, app_id, batch_id):
            return False
        # Delta also skips the write itself when (txnAppId, txnVersion) is already in the log (a race).
        writer = self._writer(df, mode, partition_by).option("txnAppId", app_id).option("txnVersion", batch_id)
        if replace_where is not None and self.exists(name):
            writer = writer.option("replaceWhere", replace_where)
        writer.save(self.location(name))
        return True

    def merge(self, df: DataFrame, name: str, spec: MergeSpec, app_id: str | None = None,
              batch_id: int | None = None) -> bool:
        from delta.tables import DeltaTable

        keyed = app_id is not None and batch_id is not None
        if keyed and self._already_committed(name, app_id, batch_id):
            return False
        if not self.exists(name):
            self.create(name, df.schema)
        # Delta takes a MERGE's transaction id from session conf: a clone of the session per keyed MERGE keeps
        # MERGEs run at once from several threads (lakehouse.tables.concurrent) from taking each other's ids
        session = self._session_clone() if keyed else self.spark
        target = DeltaTable.forPath(session, self.location(name))
        columns = [c for c in target.toDF().columns if c in df.columns]
        assignments = {f"`{c}`": f"s.`{c}`" for c in columns}
        builder = target.alias("t").merge(df.alias("s"), spec.on)
        if spec.delete_when:
            builder = builder.whenMatchedDelete(condition=spec.delete_when)
        if spec.update:
            builder = builder.whenMatchedUpdate(condition=spec.update_when, set=assignments)
        if spec.insert:
            builder = builder.whenNotMatchedInsert(condition=spec.insert_when, values=assignments)
        if keyed:
            session.conf.set("spark.databricks.delta.write.txnAppId", app_id)
            session.conf.set("spark.databricks.delta.write.txnVersion", str(batch_id))
        builder.execute()
        return True

    def _session_clone(self) -> SparkSession:
        """A session sharing this one's context, caches and catalog, with a copy of its conf."""
        return SparkSession(self.spark.sparkContext, self.spark._jsparkSession.cloneSession())  # noqa: SLF001

    def read(self, name: str, version: int | None = None) -> DataFrame:
        self._require(name)
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(self.location(name))

    def read_appends(self, name: str, after_version: int | None, up_to_version: int) -> DataFrame:
        if after_version is None:
            return self.read(name, version=up_to_version)
        if after_version >= up_to_version:
            return self.read(name, version=up_to_version).limit(0)
        return self._change_feed(name, after_version, up_to_version, "_change_type = 'insert'")

    def _change_feed(self, name: str, after_version: int, up_to_version: int, where: str = "true") -> DataFrame:
        """Change data feed rows of the versions, without the feed's own columns (tables are created with
        delta.enableChangeDataFeed=true)."""
        changes = (
            self.spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", after_version + 1)
            .option("endingVersion", up_to_version)
            .load(self.location(name))
        )
        return changes.where(where).drop("_change_type", "_commit_version", "_commit_timestamp")

    def read_changes(self, name: str, after_version: int | None, up_to_version: int) -> DataFrame:
        """Every change data feed row (insert, delete, update pre- and post-image) of the versions."""
        if after_version is None or after_version >= up_to_version:
            return super().read_changes(name, after_version, up_to_version)
        return self._change_feed(name, after_version, up_to_version)

    def version(self, name: str) -> int:
        version = int(self._snapshot(name).version())  # one listing of the log, not one more for `exists`
        if version < 0:
            raise self._not_found(name)
        return version

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        frame = self._delta(name).history(limit) if limit else self._delta(name).history()
        return [
            {
                "version": r["version"],
                "timestamp": r["timestamp"].isoformat(timespec="seconds") if r["timestamp"] else "",
                "operation": r["operation"],
                "parameters": dict(r["operationParameters"] or {}),
                "metrics": dict(r["operationMetrics"] or {}),
            }
            for r in frame.collect()
        ]

    def vacuum(self, name: str, retention_hours: int = 168) -> list[str]:
        """Delete files unreferenced for `retention_hours`; returns their paths. A retention below Delta's
        safety default (7 days) is the caller's explicit choice: the check is lifted for this call only."""
        location = self.location(name).replace("`", "``")
        statement = f"VACUUM delta.`{location}` RETAIN {int(retention_hours)} HOURS"
        conf, key = self.spark.conf, "spark.databricks.delta.retentionDurationCheck.enabled"
        previous = conf.get(key, "true")
        conf.set(key, "false")
        try:
            doomed = [r[0] for r in self.spark.sql(f"{statement} DRY RUN").collect()]
            self.spark.sql(statement).collect()
        finally:
            conf.set(key, previous)
        return doomed

    def optimize(self, name: str) -> dict[str, Any]:
        rows = self._delta(name).optimize().executeCompaction().collect()
        return rows[0].asDict(recursive=True) if rows else {}

    def row_count(self, name: str) -> int:
        return self.read(name).count()


def _checksum_transactions(snapshot) -> dict[str, int] | None:  # noqa: ANN001 - a py4j Snapshot
    """{app id: version} of every set transaction recorded in the snapshot's checksum file (None when the file or
    its `setTransactions` field is absent, e.g. above Delta's `setTransactionsInCrc.maxAllowed`)."""
    checksum = snapshot.checksumOpt()
    if not checksum.isDefined():
        return None
    recorded = checksum.get().setTransactions()
    if recorded is None or not recorded.isDefined():
        return None
    # by index: iterating a Java collection from Python ends on an exception py4j converts slowly (~50 ms)
    actions = recorded.get()
    return {t.appId(): int(t.version()) for t in (actions.apply(i) for i in range(actions.size()))}
