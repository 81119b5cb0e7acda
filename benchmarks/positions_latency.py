"""Benchmark (design probe for the always-on pipeline): produce -> position-on-Kafka latency of one stateful
streaming query, and what a Delta commit in the same micro-batch adds.

    LAKEHOUSE_HOME=/tmp/lh-latency LAKEHOUSE_BROKER_PORT=19693 .venv/bin/python benchmarks/positions_latency.py \
        [--rate 10000] [--seconds 90] [--delta none|append|merge]

Orders (one line, one unit, a random sku of --skus) are paced at --rate per minute into a one-partition topic.
Spark: Kafka -> parse -> explode lines -> per-sku running sum and count (state in the RocksDB state store) ->
Kafka topic in update mode, a micro-batch as soon as the last one ends (`--trigger`). With `--delta append|merge`
the same positions go through `foreachBatch`: Kafka first, then a Delta append or MERGE keyed by (app id, batch
id), as a gold table maintained in the same query would be. A consumer stamps each position's arrival; an order's
latency = arrival of the first position of its sku whose running count covers it - its produce time (one
partition keeps a sku's orders in produce order). Prints p50/p95/p99 after --warmup s and micro-batch times.
Not a test; other load on the machine moves the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Consumer, Producer  # noqa: E402

from lakehouse.config import get_settings  # noqa: E402
from lakehouse.services.broker import broker_for  # noqa: E402
from lakehouse.sources.kafka_admin import create_topics  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=10_000, help="orders per minute")
    ap.add_argument("--seconds", type=int, default=90)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--skus", type=int, default=5000)
    ap.add_argument("--trigger", default="0 seconds")
    ap.add_argument("--delta", choices=["none", "append", "merge"], default="none",
                    help="also write each batch's positions to a Delta table in foreachBatch (after Kafka)")
    args = ap.parse_args()
    settings = get_settings()
    settings.ensure_dirs()
    with broker_for(settings):
        run(args, settings)


def run(args: argparse.Namespace, settings) -> None:  # noqa: ANN001 - Settings
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from lakehouse.spark import get_spark

    run_id = uuid.uuid4().hex[:6]
    src, out = f"latency_{run_id}_orders", f"latency_{run_id}_positions"
    create_topics(settings.kafka_bootstrap, [src, out], partitions=1)
    spark = get_spark("bench-positions-latency", settings)
    spark.conf.set("spark.sql.streaming.stateStore.providerClass",
                   "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider")
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    line = T.StructType([T.StructField("sku", T.StringType()), T.StructField("quantity", T.IntegerType())])
    order = T.StructType([T.StructField("order_id", T.StringType()), T.StructField("lines", T.ArrayType(line)),
                          T.StructField("produced_ms", T.LongType())])
    raw = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", settings.kafka_bootstrap)
           .option("subscribe", src).option("startingOffsets", "earliest")
           .option("kafka.fetch.max.wait.ms", "20").load())
    lines = (raw.select(F.from_json(F.col("value").cast("string"), order).alias("o"))
             .select(F.explode("o.lines").alias("l")).select("l.sku", "l.quantity"))
    positions = lines.groupBy("sku").agg(F.sum("quantity").alias("locked"), F.count("*").alias("n"))
    ck = settings.home / "positions_latency" / run_id
    if args.delta == "none":
        q = (positions.select(F.col("sku").alias("key"), F.to_json(F.struct("sku", "locked", "n")).alias("value"))
             .writeStream.format("kafka").option("kafka.bootstrap.servers", settings.kafka_bootstrap)
             .option("topic", out).option("checkpointLocation", str(ck)).outputMode("update")
             .trigger(processingTime=args.trigger).start())
    else:
        from delta.tables import DeltaTable

        table = str(settings.home / "positions_latency" / f"{run_id}_positions_delta")
        spark.createDataFrame([], "sku string, locked long, n long").write.format("delta").save(table)

        def write(batch, batch_id):  # noqa: ANN001
            batch = batch.persist()
            (batch.select(F.col("sku").alias("key"), F.to_json(F.struct("sku", "locked", "n")).alias("value"))
             .write.format("kafka").option("kafka.bootstrap.servers", settings.kafka_bootstrap)
             .option("topic", out).save())
            if args.delta == "append":
                (batch.write.format("delta").mode("append").option("txnAppId", "positions_latency")
                 .option("txnVersion", batch_id).save(table))
            else:
                spark.conf.set("spark.databricks.delta.write.txnAppId", "positions_latency")
                spark.conf.set("spark.databricks.delta.write.txnVersion", str(batch_id))
                (DeltaTable.forPath(spark, table).alias("t").merge(batch.alias("s"), "t.sku = s.sku")
                 .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
            batch.unpersist()

        q = (positions.writeStream.foreachBatch(write).option("checkpointLocation", str(ck)).outputMode("update")
             .trigger(processingTime=args.trigger).start())

    produced: dict[str, list[float]] = defaultdict(list)  # sku -> produce times in order (one partition)
    arrivals: list[tuple[float, str, int]] = []
    stop = threading.Event()

    def consume() -> None:
        c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"latency-{run_id}",
                      "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10})
        c.subscribe([out])
        while not stop.is_set():
            m = c.poll(0.05)
            if m is None or m.error():
                continue
            v = json.loads(m.value())
            arrivals.append((time.time(), v["sku"], v["n"]))
        c.close()

    th = threading.Thread(target=consume, daemon=True)
    th.start()
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 0})
    rng = random.Random(7)
    interval = 60.0 / args.rate
    t0 = time.time()
    i = 0
    while time.time() - t0 < args.seconds:
        due = t0 + i * interval
        now = time.time()
        if due > now:
            time.sleep(due - now)
        sku = f"SKU-{rng.randrange(args.skus):05d}"
        ts = time.time()
        p.produce(src, json.dumps({"order_id": f"ORD-{i:08d}", "lines": [{"sku": sku, "quantity": 1}],
                                   "produced_ms": int(ts * 1000)}).encode())
        p.poll(0)
        produced[sku].append(ts)
        i += 1
    p.flush()
    time.sleep(10)
    stop.set()
    th.join()
    progress = q.recentProgress
    q.stop()
    # latency per order: first arrival of its sku with n >= its rank
    seen: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for at, sku, n in sorted(arrivals):
        seen[sku].append((at, n))
    lat = []
    missing = 0
    for sku, times in produced.items():
        arr = seen.get(sku, [])
        for rank, ts in enumerate(times, start=1):
            if ts - t0 < args.warmup:
                continue
            hit = next((at for at, n in arr if n >= rank), None)
            if hit is None:
                missing += 1
            else:
                lat.append(hit - ts)
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    durations = [pr["durationMs"].get("triggerExecution", 0) for pr in progress if pr["numInputRows"]]
    print(f"orders {i:,} at {args.rate:,}/min for {args.seconds} s; measured {len(lat):,} after {args.warmup} s "
          f"warm-up; not seen {missing}")
    print(f"latency produce -> position on Kafka: p50 {pct(.5):.2f} s, p95 {pct(.95):.2f} s, p99 {pct(.99):.2f} s, "
          f"max {lat[-1] if lat else float('nan'):.2f} s")
    if durations:
        durations.sort()
        print(f"micro-batches {len(durations)}: median {durations[len(durations) // 2]} ms, "
              f"p95 {durations[int(.95 * len(durations))]} ms")
    spark.stop()


if __name__ == "__main__":
    main()
