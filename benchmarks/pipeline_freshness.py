"""Benchmark: how fresh bronze, silver, gold positions and the ERP mirror are while the whole always-on pipeline runs.

    lakehouse demo   # once: services, seeded ERP, catalogue, FX; it leaves the pipeline running
    LAKEHOUSE_HOME=<that home> .venv/bin/python benchmarks/pipeline_freshness.py [--orders-per-min 10000]
        [--seconds 300] [--erp-every 2] [--drain 600] [--seed N]

Every stage of `lakehouse pipeline` runs (started here when not running, then each has looked at its inputs once).
The generator's stream (all five families in its default mix, no faults) is produced in real time: --orders-per-min
orders and the other families in proportion. Every --erp-every s the ERP changes one stock level in PostgreSQL
(captured by Debezium). After the run it waits (up to --drain s) until silver, gold and the mirror hold everything.

A row is visible from the Delta commit that added its file (lakehouse.delta_log reads the commits of the run from
the tables' logs; no polling, no Spark). Latencies:
* produce -> bronze: commit of the row's bronze file - its Kafka timestamp (set by the producer);
* produce -> silver: commit of the first silver file holding the event id - its produce time;
* produce -> gold positions (orders and inventory events): the end of the first gold_commerce micro-batch that
  read the silver version holding the event (its commit in the query's checkpoint, written right after the
  batch's gold commits; the batch recomputes from silver as of its start, so this is never early);
* ERP commit -> silver mirror: the first silver.inventory commit holding the new on_hand - the UPDATE's commit.
Prints p50/p95/p99/max per path and family, a timeline per minute, and the stages' micro-batch durations.
Not a test: other load on the machine moves the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Producer  # noqa: E402

from lakehouse import pipeline  # noqa: E402
from lakehouse.config import get_settings  # noqa: E402
from lakehouse.delta_log import commits, first_seen  # noqa: E402
from lakehouse.events import FAMILIES  # noqa: E402
from lakehouse.events.generator import DEFAULT_FAMILY_MIX, StreamConfig, generate_stream, unused_first_order  # noqa: E402
from lakehouse.job import require_kafka, require_tables  # noqa: E402
from lakehouse.progress import read_progress  # noqa: E402
from lakehouse.sources.kafka_admin import PRODUCER_DEFAULTS, create_topics  # noqa: E402

GOLD_FAMILIES = {"orders": "silver.orders_events", "inventory": "silver.inventory_events"}
MIRROR = "silver.inventory"


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def line(name: str, values: list[float], expected: int) -> str:
    return (f"  {name:34s} {len(values):>8,} of {expected:>8,}   p50 {pct(values, .5):6.1f} s   p95 "
            f"{pct(values, .95):6.1f} s   p99 {pct(values, .99):6.1f} s   max {max(values, default=float('nan')):6.1f} s")


class BatchSampler:
    """The stages' micro-batches as their progress files report them: stage -> (query, batch id) -> duration
    in ms (sampled every second: a stage whose queries end several batches within a second shows one)."""

    def __init__(self, settings) -> None:  # noqa: ANN001 - Settings
        self.settings, self.batches, self.stop = settings, defaultdict(dict), threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            for stage in pipeline.STAGES:
                p = read_progress(self.settings, stage)
                if p.get("batch_ms") is not None and (p.get("input_rows") or 0) > 0:
                    self.batches[stage][(p.get("query"), p.get("batch_id"))] = p["batch_ms"]
            time.sleep(1)


def change_erp_stock(settings, every: float, done: threading.Event, out: list) -> None:  # noqa: ANN001
    """Every `every` s one more unit on hand for the next of 200 positions; records (sku, warehouse id, on_hand,
    commit time)."""
    import psycopg

    from lakehouse.services.postgres import pg_config

    with psycopg.connect(pg_config(settings).dsn, autocommit=True) as conn:
        keys = conn.execute("SELECT sku, warehouse_id FROM inventory ORDER BY sku, warehouse_id LIMIT 200").fetchall()
        i = 0
        while not done.wait(every):
            sku, wid = keys[i % len(keys)]
            on_hand = conn.execute("UPDATE inventory SET on_hand = on_hand + 1 WHERE sku = %s AND warehouse_id = %s"
                                   " RETURNING on_hand", (sku, wid)).fetchone()[0]
            out.append((sku, wid, on_hand, time.time()))
            i += 1


def produce_paced(bootstrap: str, stream) -> dict[str, tuple[str, float]]:  # noqa: ANN001 - GeneratedStream
    """Produce each family's records spread evenly over the stream's duration, in real time; event id -> (family,
    produce time)."""
    create_topics(bootstrap, [stream.config.topic(f) for f in stream.records], 4)
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", **PRODUCER_DEFAULTS,
                         "linger.ms": 5})
    schedule = sorted((j / len(recs) * stream.config.duration_s, f, j)
                      for f, recs in stream.records.items() for j in range(len(recs)))
    ids = {f: [json.loads(v)["event_id"] for _, v, _ in recs] for f, recs in stream.records.items()}
    produced: dict[str, tuple[str, float]] = {}
    t0 = time.time()
    for n, (at, family, j) in enumerate(schedule):
        delay = t0 + at - time.time()
        if delay > 0:
            time.sleep(delay)
        key, value, headers = stream.records[family][j]
        while True:
            try:
                producer.produce(stream.config.topic(family), value=value, key=key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        produced[ids[family][j]] = (family, time.time())
        if n % 100 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise SystemExit("records not delivered")
    return produced


def silver_seen(settings, families, t0: float, produced: dict) -> dict:  # noqa: ANN001
    """event id -> its first silver commit, for the produced events."""
    seen = {}
    for family in families:
        seen.update(first_seen(commits(settings.table_location(f"silver.{family}_events"), t0), ["event_id"],
                               lambda r: r["event_id"] if r["event_id"] in produced else None))
    return seen


def gold_covers(settings, t0: float) -> list[tuple[float, dict[str, int]]]:  # noqa: ANN001 - Settings
    """Per gold_commerce micro-batch ended during the run: (when its checkpoint commit was written, silver table ->
    the newest version it read), from the query's offset log (one line per source, in the query's order)."""
    import jobs.gold_commerce as gold
    from lakehouse.progress import strip_scheme

    root = Path(strip_scheme(settings.checkpoint(gold.APP_ID, gold.QUERY)))
    out = []
    for commit in (root / "commits").glob("[0-9]*"):
        if commit.stat().st_mtime < t0:
            continue
        lines = (root / "offsets" / commit.name).read_text().splitlines()[2:]
        read = {}
        for table, text in zip(gold.SOURCES.values(), lines, strict=True):
            offset = json.loads(text) if text.strip() != "-" else {"reservoirVersion": 0, "index": -1}
            # (v, -1): versions before v read; (v, i >= 0): v read up to file i (all of it unless a limit cut it)
            read[table] = int(offset["reservoirVersion"]) - (1 if int(offset.get("index", -1)) < 0 else 0)
        out.append((commit.stat().st_mtime, read))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders-per-min", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--erp-every", type=float, default=2.0)
    ap.add_argument("--drain", type=float, default=600, help="seconds to wait for silver, gold and the mirror")
    ap.add_argument("--seed", type=int, default=None,
                    help="the generator's seed (default: a new one, printed; a seed already run on this home gives "
                         "event ids silver already holds, so nothing would be measured)")
    args = ap.parse_args()
    settings = get_settings()
    bootstrap = require_kafka(settings)
    require_tables("silver.products", "silver.inventory", "gold.inventory_positions",
                   hint="run `lakehouse demo` on this home first")
    before = time.time()
    running = {r["stage"] for r in pipeline.status(settings) if r["running"]}
    pipeline.start(settings)
    started = [s for s in pipeline.STAGES if s not in running]
    print(f"pipeline: every stage running (started here: {', '.join(started) or 'none'}); waiting until each has "
          "looked at its inputs")
    pipeline.wait_until_each_looked(settings, before)

    rate = args.orders_per_min / 60 / DEFAULT_FAMILY_MIX["orders"]
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print(f"generator seed {seed}", flush=True)
    stream = generate_stream(StreamConfig(seed=seed, rate=rate, duration_s=args.seconds, faults={},
                                          first_order=unused_first_order(bootstrap),
                                          start=datetime.now(UTC) + timedelta(seconds=2)))
    sampler, erp_changes, done = BatchSampler(settings), [], threading.Event()
    stocker = threading.Thread(target=change_erp_stock, args=(settings, args.erp_every, done, erp_changes),
                               daemon=True)
    t0 = time.time()
    stocker.start()
    produced = produce_paced(bootstrap, stream)
    done.set()
    stocker.join()
    produce_s = time.time() - t0
    print(f"produced {len(produced):,} events in {produce_s:.0f} s "
          f"({sum(1 for f, _ in produced.values() if f == 'orders'):,} orders); {len(erp_changes)} ERP changes")

    deadline = time.time() + args.drain
    while True:  # drain: silver holds every event, gold covers it, the mirror holds every change
        seen = silver_seen(settings, FAMILIES, t0, produced)
        covers = gold_covers(settings, t0)
        needed = {GOLD_FAMILIES[f]: max((seen[e].version for e, (f2, _) in produced.items()
                                         if f2 == f and e in seen), default=-1) for f in GOLD_FAMILIES}
        gold_done = any(all(v.get(t, -1) >= n for t, n in needed.items()) for _, v in covers)
        mirror = first_seen(commits(settings.table_location(MIRROR), t0), ["sku", "warehouse_id", "on_hand"],
                            lambda r: (r["sku"], r["warehouse_id"], r["on_hand"]))
        mirrored = sum((s, w, o) in mirror for s, w, o, _ in erp_changes)
        if (len(seen) == len(produced) and gold_done and mirrored == len(erp_changes)) or time.time() > deadline:
            break
        print(f"  draining: silver {len(seen):,}/{len(produced):,}, gold covers it: {gold_done}, "
              f"mirror {mirrored}/{len(erp_changes)}")
        time.sleep(10)
    sampler.stop.set()
    report(settings, args, t0, produce_s, produced, seen, covers, erp_changes, mirror, sampler)
    if started:
        print(f"(the pipeline keeps running; stages started by this benchmark: {', '.join(started)})")


def report(settings, args, t0, produce_s, produced, seen, covers, erp_changes, mirror, sampler) -> None:  # noqa: ANN001
    """Print the latencies per path and family, the timeline and the stages' micro-batch durations."""
    import pyarrow.parquet as pq

    print(f"\nlatency (s), {args.orders_per_min:,} orders/min for {args.seconds} s, every stage running on this machine")
    for family in FAMILIES:
        lags = []
        for c in commits(settings.table_location(f"bronze.{family}_events"), t0):
            for path in c.added:
                for ts in pq.read_table(path, columns=["kafka_timestamp"]).column(0).to_pylist():
                    if ts is not None and ts.replace(tzinfo=UTC).timestamp() >= t0:
                        lags.append(c.at - ts.replace(tzinfo=UTC).timestamp())
        print(line(f"produce -> bronze {family}", lags, sum(1 for f, _ in produced.values() if f == family)))
    silver_lag: dict[str, list[tuple[float, float]]] = defaultdict(list)  # family -> (produce offset, latency)
    for event, (family, at) in produced.items():
        if event in seen:
            silver_lag[family].append((at - t0, seen[event].at - at))
    for family in FAMILIES:
        print(line(f"produce -> silver {family}", [lat for _, lat in silver_lag[family]],
                   sum(1 for f, _ in produced.values() if f == family)))
    every = [lat for v in silver_lag.values() for _, lat in v]
    print(line("produce -> silver, all families", every, len(produced)))
    covers = sorted(covers)
    gold_lag = []
    for event, (family, at) in produced.items():
        if family in GOLD_FAMILIES and event in seen:
            table, version = GOLD_FAMILIES[family], seen[event].version
            first = next((t for t, v in covers if v.get(table, -1) >= version), None)
            if first is not None:
                gold_lag.append(first - at)
    print(line("produce -> gold positions", gold_lag,
               sum(1 for f, _ in produced.values() if f in GOLD_FAMILIES)))
    erp_lag = [mirror[(s, w, o)].at - at for s, w, o, at in erp_changes if (s, w, o) in mirror]
    print(line("ERP commit -> silver.inventory", erp_lag, len(erp_changes)))

    print("\nper minute: events produced, p50 / p99 produce -> silver")
    windows = sorted({int(off // 60) for v in silver_lag.values() for off, _ in v})
    for w in windows:
        lats = [lat for v in silver_lag.values() for off, lat in v if w * 60 <= off < (w + 1) * 60]
        print(f"  {w * 60:4d}-{(w + 1) * 60:<4d} s  {len(lats):8,}   p50 {pct(lats, .5):6.1f} s   p99 {pct(lats, .99):6.1f} s")
    print("\nmicro-batches that read rows during the run (sampled each second): batches, median / max seconds")
    for stage in pipeline.STAGES:
        ms = list(sampler.batches[stage].values())
        if ms:
            print(f"  {stage:18s} {len(ms):5d}   median {statistics.median(ms) / 1000:6.1f} s   "
                  f"max {max(ms) / 1000:6.1f} s")
    print(f"\nproduced over {produce_s:.0f} s; {len(covers)} gold_commerce micro-batches ended during the run")


if __name__ == "__main__":
    main()
