"""Benchmark: sustained Kafka -> bronze events/s vs Spark's native file sources on the same events (baseline).

    LAKEHOUSE_HOME=/tmp/lh-bench LAKEHOUSE_BROKER_PORT=19692 .venv/bin/python benchmarks/kafka_to_bronze.py \
        --events 600000

One run, one Spark session:
 1. generate the multi-family stream (default faults) and produce it to Kafka (producer rate);
 2. Kafka -> bronze with the real bronze_events writer (`--family all`: classify, 5 family tables + dead letter,
    exactly-once commits), available-now: one query of micro-batches of `--batch` records;
 3. the same payloads as JSON-lines files -> the same writer via Spark's native `text` source (raw payload kept,
    same classification and tables: the apples-to-apples baseline);
 4. the same files through Spark's native `json` source (parsed envelope + corrupt-record column) into one
    bronze-style table (the "native JSON file source" figure).
Prints events/s of each, the ratios, per-batch seconds and where each query's micro-batch time went (Spark's
progress `durationMs`). Not a test. Other load on the machine moves both figures: compare ratios of one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql.streaming import StreamingQueryListener  # noqa: E402
from pyspark.sql.types import IntegerType, StringType, StructField, StructType  # noqa: E402

from lakehouse.config import get_settings  # noqa: E402
from lakehouse.events import FAMILIES  # noqa: E402
from lakehouse.events.generator import StreamConfig, generate_stream, produce_stream  # noqa: E402
from lakehouse.ingest import IngestSpec, ingest, make_batch_writer  # noqa: E402
from lakehouse.services.broker import broker_for  # noqa: E402

ENVELOPE = StructType([
    StructField("event_id", StringType()), StructField("event_type", StringType()),
    StructField("schema_version", IntegerType()), StructField("event_time", StringType()),
    StructField("_corrupt_record", StringType()),
])


class ProgressTimes(StreamingQueryListener):
    """Per query: each micro-batch's rows, end time and `durationMs` parts (latestOffset, queryPlanning, addBatch,
    walCommit, ...)."""

    def __init__(self) -> None:
        self.by_query: dict[str, Counter] = {}
        self.batches: dict[str, list[tuple[int, int, float]]] = {}  # query -> [(batch id, rows, end in s)]

    def onQueryStarted(self, event) -> None:  # noqa: N802 - Spark's listener API
        pass

    def onQueryProgress(self, event) -> None:  # noqa: N802
        p = event.progress
        self.by_query.setdefault(p.name or "?", Counter()).update(p.durationMs)
        start = dt.datetime.fromisoformat(p.timestamp.replace("Z", "+00:00")).timestamp()
        if p.numInputRows:
            self.batches.setdefault(p.name or "?", []).append(
                (p.batchId, p.numInputRows, start + p.durationMs.get("triggerExecution", 0) / 1000))

    def onQueryIdle(self, event) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, event) -> None:  # noqa: N802
        pass

    def _matching(self, name_prefix: str) -> list[str]:
        return [name for name in self.by_query if name.startswith(name_prefix)]

    def report(self, name_prefix: str) -> str:
        total: Counter = Counter()
        for name in self._matching(name_prefix):
            total.update(self.by_query[name])
        return ", ".join(f"{k} {v / 1000:.1f}" for k, v in total.most_common() if v >= 50)

    def sustained(self, name_prefix: str, records: dict[int, int] | None = None) -> tuple[int, float]:
        """(records, seconds) from the end of the first micro-batch to the end of the last one: the rate once the
        query runs (the first batch pays worker start-up and JIT warm-up; query start is outside batches).
        `records` per batch id replaces Spark's input rows when given."""
        batches = sorted((b for name in self._matching(name_prefix) for b in self.batches.get(name, [])),
                         key=lambda b: b[2])
        if len(batches) < 2:
            return 0, 0.0
        kept = sum((records or {}).get(batch_id, rows) for batch_id, rows, _ in batches[1:])
        return kept, batches[-1][2] - batches[0][2]


def _worker_import_paths(spark) -> str:
    """Where Spark's Python workers import the project from (catches a stale editable install)."""
    import pyarrow as pa

    def where(batches):
        import lakehouse

        for _ in batches:
            pass
        yield pa.RecordBatch.from_pylist([{"p": lakehouse.__file__}])

    return spark.range(1, numPartitions=1).mapInArrow(where, "p string").first()["p"]


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=600_000)
    ap.add_argument("--batch", type=int, default=150_000, help="maxOffsetsPerTrigger / records per file batch")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-json", action="store_true", help="skip the json-source figure")
    args = ap.parse_args()

    settings = get_settings()
    settings.ensure_dirs()
    with broker_for(settings):
        bench(args, settings)


def bench(args: argparse.Namespace, settings) -> None:  # noqa: ANN001 - Settings
    run = uuid.uuid4().hex[:6]
    prefix = f"bench_{run}_"
    work = settings.home / "bench" / run
    tables_for = {f: f"bronze.bench_{run}_{f}" for f in FAMILIES}

    t = time.perf_counter()
    stream = generate_stream(StreamConfig(seed=args.seed, rate=args.events / 60, duration_s=60,
                                          topic_prefix=prefix))
    gen_s = time.perf_counter() - t
    n = stream.report.produced
    produce_stream(settings.kafka_bootstrap, stream, partitions=args.partitions)
    prod_s = stream.report.produce_seconds or 0.0
    print(f"generated {n:,} records in {gen_s:.1f} s ({_rate(n, gen_s):,.0f}/s); "
          f"produced in {prod_s:.1f} s ({_rate(n, prod_s):,.0f}/s)", flush=True)

    from lakehouse.spark import get_spark
    from lakehouse.tables import get_tables

    t = time.perf_counter()
    spark = get_spark("bench-kafka-to-bronze", settings)
    tables = get_tables(spark, settings)
    print(f"spark session {time.perf_counter() - t:.1f} s; workers import "
          f"{_worker_import_paths(spark)}", flush=True)
    progress = ProgressTimes()
    spark.streams.addListener(progress)

    # --- where Kafka time goes: the source alone (read + Arrow to the JVM, no classification, no writes) ----------
    from lakehouse.sources.kafka import read_kafka_batch

    t = time.perf_counter()
    read_only = read_kafka_batch(spark, settings, ",".join(prefix + f for f in FAMILIES), {"includeHeaders": "true"})
    read_only.select(F.sum(F.length("value"))).collect()
    read_s = time.perf_counter() - t
    print(f"kafka source alone (batch read of everything): {read_s:.1f} s = {_rate(n, read_s):,.0f} records/s",
          flush=True)

    # --- warm-up: the bronze writer once on a few records into throwaway tables, so neither timed path pays
    # for the first use of the writer (Python worker imports, code generation)
    warm = IngestSpec(family="all", topic_prefix=prefix, tables={f: f"bronze.bench_{run}_warm_{f}" for f in FAMILIES},
                      dead_letter_table=f"bronze.bench_{run}_warm_dead_letter")
    t = time.perf_counter()
    first = json.dumps({prefix + f: dict.fromkeys(map(str, range(args.partitions)), 100) for f in FAMILIES})
    sample = read_kafka_batch(spark, settings, ",".join(prefix + f for f in FAMILIES),
                              {"includeHeaders": "true", "endingOffsets": first})
    make_batch_writer(tables, warm, [])(sample, 0)
    print(f"writer warm-up (first 100 records of each partition): {time.perf_counter() - t:.1f} s", flush=True)

    # --- Kafka -> bronze --------------------------------------------------------------------------------------
    spec = IngestSpec(family="all", topic_prefix=prefix, tables=tables_for,
                      dead_letter_table=f"bronze.bench_{run}_dead_letter", checkpoint=str(work / "ck_kafka"),
                      max_offsets_per_trigger=args.batch)
    t = time.perf_counter()
    stats = ingest(spark, tables, settings, spec)
    kafka_s = time.perf_counter() - t
    rows = sum(s.rows for s in stats)
    assert rows == n, f"kafka path ingested {rows} of {n}"
    batch_s = [round(s.read_write_s, 1) for s in stats]
    print(f"kafka -> bronze: {rows:,} records in {kafka_s:.1f} s = {_rate(rows, kafka_s):,.0f} events/s; "
          f"batches (s): {batch_s}; outside batches (query start/plan/offsets): {kafka_s - sum(batch_s):.1f} s",
          flush=True)
    print(f"  micro-batch time (s): {progress.report(spec.app_id)}", flush=True)

    # --- the same payloads as files ---------------------------------------------------------------------------
    files = work / "files"
    per_file = max(1, args.batch // 4)
    for family, records in stream.records.items():
        d = files / family
        d.mkdir(parents=True)
        for i in range(0, len(records), per_file):
            (d / f"part-{i // per_file:05d}.jsonl").write_bytes(b"\n".join(v for _, v, _ in records[i:i + per_file]))
    spec_files = dataclasses.replace(spec, tables={f: f"bronze.bench_{run}_file_{f}" for f in FAMILIES},
                                     dead_letter_table=f"bronze.bench_{run}_file_dead_letter")
    file_stats: list = []
    writer = make_batch_writer(tables, spec_files, file_stats)
    n_files = sum(1 for _ in files.rglob("*.jsonl"))
    per_trigger = max(1, n_files * args.batch // max(n, 1))
    raw = (
        spark.readStream.format("text").option("wholetext", "false").option("maxFilesPerTrigger", per_trigger)
        .option("recursiveFileLookup", "true").load(str(files))
    )
    path = F.input_file_name()
    as_kafka = raw.select(
        F.lit(None).cast("binary").alias("key"), F.col("value").cast("binary").alias("value"),
        F.concat(F.lit(prefix), F.element_at(F.split(path, "/"), -2)).alias("topic"),
        F.lit(0).alias("partition"), F.lit(-1).cast("long").alias("offset"),  # files have no offsets
        F.current_timestamp().alias("timestamp"), F.lit(0).alias("timestampType"),
        F.lit(None).cast("array<struct<key:string,value:binary>>").alias("headers"),
    )
    t = time.perf_counter()
    q = (as_kafka.writeStream.queryName("bench_text").foreachBatch(writer).option("checkpointLocation", str(work / "ck_text"))
         .trigger(availableNow=True).start())
    q.awaitTermination()
    text_s = time.perf_counter() - t
    text_rows = sum(s.rows for s in file_stats)
    print(f"files (native text source) -> same bronze writer: {text_rows:,} records in {text_s:.1f} s = "
          f"{_rate(text_rows, text_s):,.0f} events/s; batches (s): {[round(s.read_write_s, 1) for s in file_stats]}",
          flush=True)
    print(f"  micro-batch time (s): {progress.report('bench_text')}", flush=True)

    json_s = json_rows = 0
    if not args.skip_json:
        parsed = (
            spark.readStream.format("json").schema(ENVELOPE).option("mode", "PERMISSIVE")
            .option("maxFilesPerTrigger", per_trigger).option("recursiveFileLookup", "true")
            .option("pathGlobFilter", "*.jsonl").load(str(files))
            .withColumn("corrupt", F.col("_corrupt_record").isNotNull()).drop("_corrupt_record")
            .withColumn("source_file", F.input_file_name()).withColumn("ingested_at", F.current_timestamp())
            .withColumn("ingest_date", F.to_date("ingested_at"))
        )
        json_table = f"bronze.bench_{run}_json"
        counted: list[int] = []

        def write_json(df, batch_id: int) -> None:
            df = df.persist()
            counted.append(df.count())
            tables.write_batch(df, json_table, "bench_json", batch_id, partition_by=["ingest_date"])
            df.unpersist()

        t = time.perf_counter()
        q = (parsed.writeStream.queryName("bench_json").foreachBatch(write_json).option("checkpointLocation", str(work / "ck_json"))
             .trigger(availableNow=True).start())
        q.awaitTermination()
        json_s, json_rows = time.perf_counter() - t, sum(counted)
        print(f"files (native json source, parsed envelope) -> one bronze table: {json_rows:,} records in "
              f"{json_s:.1f} s = {_rate(json_rows, json_s):,.0f} events/s", flush=True)
        print(f"  micro-batch time (s): {progress.report('bench_json')}", flush=True)

    paths = [("kafka -> bronze", spec.app_id, rows, kafka_s, {st.batch_id: st.rows for st in stats}),
             ("text files -> bronze", "bench_text", text_rows, text_s, None)]
    if json_rows:
        paths.append(("json files -> bronze", "bench_json", json_rows, json_s, None))
    print("\n== summary ==")
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; {n:,} events, micro-batches of "
          f"{args.batch:,}; producer {_rate(n, prod_s):,.0f} rec/s")
    print("sustained = from the end of the first micro-batch to the end of the last; end to end = whole query")
    print(f"{'path':24s} {'sustained ev/s':>15s} {'end to end ev/s':>16s}")
    rates = {}
    for label, query, count, seconds, records in paths:
        kept, span = progress.sustained(query, records)
        rates[label] = (_rate(kept, span) if span else float("nan"), _rate(count, seconds))
        print(f"{label:24s} {rates[label][0]:>15,.0f} {rates[label][1]:>16,.0f}")
    kafka = rates["kafka -> bronze"]
    for label, *_ in paths[1:]:
        print(f"ratio kafka / {label.split(' ->')[0]:11s} sustained {kafka[0] / rates[label][0]:.2f}, "
              f"end to end {kafka[1] / rates[label][1]:.2f}")
    shutil.rmtree(files, ignore_errors=True)
    spark.stop()


if __name__ == "__main__":
    main()
