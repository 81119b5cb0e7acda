"""Benchmark: how fresh real-time inventory is under load (the `inventory_realtime` pipeline stage).

    lakehouse demo   # once, for the catalogue, the warehouses and ERP stock; its services and pipeline keep running
    lakehouse pipeline stop   # the other stages would ingest the load too (and share the 2 cores)
    LAKEHOUSE_HOME=<that home> .venv/bin/python benchmarks/inventory_freshness.py [--rate 10000] [--seconds 600]
        [--flash-at 240] [--flash-seconds 60] [--flash-rate 20000] [--hot 20] [--stock-every 2]

Starts the stage as `lakehouse pipeline start --stage inventory_realtime` does (spark-submit), unless it runs, and
waits until it is idle. Then it paces orders: each order's reservation (one `inventory_locked` event of one unit)
goes to the `inventory` topic at --rate per minute on random sku x warehouse positions, plus a flash sale of
--flash-rate per minute on --hot positions whose stock runs out (alerts); every --stock-every s the ERP changes
another position's stock in PostgreSQL (captured by Debezium). A consumer stamps each record's arrival on
`inventory.positions` and `inventory.alerts`.

Latency of an event = arrival of the first position of its key whose `movements` covers it - its produce time (a
key's records share a partition, so its events are folded in produce order); of an alert = the first alert of a
hot key covering the lock that took it below zero - that lock's produce time; of a stock change = the first
position showing the new on_hand - its commit in PostgreSQL. Prints p50/p95/p99/max, a timeline per 30 s (orders,
p99, backlog, micro-batch time) and where a micro-batch's time goes (Spark's durationMs, medians). The stage is
stopped at the end if this started it. Not a test: other load on the machine moves the figures.
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from lakehouse import pipeline  # noqa: E402
from lakehouse.config import get_settings  # noqa: E402
from lakehouse.events.generator import inventory_lock  # noqa: E402
from lakehouse.job import require_kafka, require_tables  # noqa: E402
from lakehouse.progress import read_progress  # noqa: E402
from lakehouse.sources.kafka_admin import end_offsets, read_records  # noqa: E402

STAGE = "inventory_realtime"
POSITIONS, ALERTS = "inventory.positions", "inventory.alerts"
WINDOW_S = 30


def wait_idle(settings, since: float, timeout: float = 900) -> None:  # noqa: ANN001 - Settings
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = read_progress(settings, STAGE)
        if p.get("state") == "idle" and p.get("updated_at", 0) > since:
            return
        time.sleep(1)
    raise SystemExit(f"the stage was not idle within {timeout:.0f} s: {read_progress(settings, STAGE)}")


def last_positions(bootstrap: str) -> dict[str, dict]:
    return {k.decode(): json.loads(v) for _, _, k, v in sorted(read_records(bootstrap, POSITIONS, timeout=120))}


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def summary(name: str, values: list[float], expected: int) -> str:
    return (f"  {name:28s} {len(values):>7,} of {expected:>7,}   p50 {pct(values, .5):6.2f} s   p95 "
            f"{pct(values, .95):6.2f} s   p99 {pct(values, .99):6.2f} s   max {max(values, default=float('nan')):6.2f} s")


class Arrivals:
    """Records arriving on the positions and alerts topics after `start`: per topic and key, (time, record)."""

    def __init__(self, bootstrap: str) -> None:
        self.by_key: dict[tuple[str, str], list[tuple[float, dict]]] = defaultdict(list)
        self.stop = threading.Event()
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "freshness", "fetch.wait.max.ms": 10,
                                  "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(t, p, o) for t in (POSITIONS, ALERTS)
                              for p, o in end_offsets(bootstrap, t).items()])
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            for m in self.consumer.consume(num_messages=1000, timeout=0.05):
                if m.error() is None:
                    self.by_key[(m.topic(), m.key().decode())].append((time.time(), json.loads(m.value())))
        self.consumer.close()

    def first(self, topic: str, key: str, ok) -> float | None:  # noqa: ANN001 - record -> bool
        return next((at for at, r in self.by_key.get((topic, key), []) if ok(r)), None)


class Progress:
    """The stage's micro-batches as its progress file reports them (sampled every 0.2 s)."""

    def __init__(self, settings) -> None:  # noqa: ANN001 - Settings
        self.settings, self.batches, self.stop = settings, {}, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            p = read_progress(self.settings, STAGE)
            if p.get("batch_id") is not None and p["batch_id"] not in self.batches:
                self.batches[p["batch_id"]] = (time.time(), p)
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=10_000, help="orders per minute")
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--flash-at", type=float, default=240, help="seconds into the run")
    ap.add_argument("--flash-seconds", type=float, default=60)
    ap.add_argument("--flash-rate", type=int, default=20_000, help="extra orders per minute during the flash sale")
    ap.add_argument("--hot", type=int, default=20, help="positions the flash sale sells out")
    ap.add_argument("--stock-every", type=float, default=2.0, help="seconds between ERP stock changes")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    settings = get_settings()
    bootstrap = require_kafka(settings)
    require_tables("silver.products", "silver.warehouses", hint="run `lakehouse demo` on this home first")
    started = not next(r for r in pipeline.status(settings) if r["stage"] == STAGE)["running"]
    t_start = time.time()
    if started:
        pipeline.start(settings, [STAGE])
    try:
        wait_idle(settings, t_start if started else 0)
        print(f"stage idle after {time.time() - t_start:.0f} s; reading the current positions")
        run(args, settings, bootstrap)
    finally:
        if started:
            pipeline.stop(settings, [STAGE])


def run(args: argparse.Namespace, settings, bootstrap: str) -> None:  # noqa: ANN001 - Settings
    import psycopg

    from lakehouse.services.postgres import pg_config

    rng = random.Random(args.seed)
    base = last_positions(bootstrap)
    keys = sorted(base)
    hot = rng.sample([k for k in keys if 20 <= base[k]["available_to_sell"] <= 200], args.hot)
    rest = sorted(set(keys) - set(hot))
    stock_keys = rng.sample(rest, 200)
    order_keys = sorted(set(rest) - set(stock_keys))
    n_normal = int(args.rate * args.seconds / 60)
    n_flash = int(args.flash_rate * args.flash_seconds / 60)
    schedule = sorted([(i * 60 / args.rate, rng.choice(order_keys)) for i in range(n_normal)]
                      + [(args.flash_at + j * 60 / args.flash_rate, rng.choice(hot)) for j in range(n_flash)])
    arrivals, progress = Arrivals(bootstrap), Progress(settings)
    produced: dict[str, list[float]] = defaultdict(list)
    stock_changes: list[tuple[str, int, float]] = []
    done = threading.Event()

    def change_stock() -> None:
        with psycopg.connect(pg_config(settings).dsn, autocommit=True) as conn:
            i = 0
            while not done.wait(args.stock_every):
                key = stock_keys[i % len(stock_keys)]
                sku, code = key.split("|")
                row = conn.execute("UPDATE inventory SET on_hand = on_hand + 1 WHERE sku = %s AND warehouse_id = "
                                   "(SELECT warehouse_id FROM warehouses WHERE code = %s) RETURNING on_hand",
                                   (sku, code)).fetchone()
                stock_changes.append((key, row[0], time.time()))
                i += 1

    stocker = threading.Thread(target=change_stock, daemon=True)
    stocker.start()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    t0 = time.time()
    for n, (at, key) in enumerate(schedule):
        delay = t0 + at - time.time()
        if delay > 0:
            time.sleep(delay)
        sku, code = key.split("|")
        now = time.time()
        producer.produce("inventory", key=key.encode(),
                         value=inventory_lock(n % 100_000_000, sku, code, 1, datetime.fromtimestamp(now, UTC)))
        produced[key].append(now)
        if n % 50 == 0:
            producer.poll(0)
    producer.flush(60)
    done.set()
    stocker.join()
    produce_s = time.time() - t0
    deadline = time.time() + 120
    covered = lambda key, rank: lambda r: r["movements"] >= base[key]["movements"] + rank  # noqa: E731
    while time.time() < deadline:  # drain: until every key's last event is covered
        if all(arrivals.first(POSITIONS, k, covered(k, len(ts))) for k, ts in produced.items()):
            break
        time.sleep(1)
    time.sleep(3)
    arrivals.stop.set()
    progress.stop.set()

    event_latency: list[tuple[float, float]] = []  # (produce offset, latency)
    missing = 0
    for key, times in produced.items():
        seen = [(at, r["movements"]) for at, r in arrivals.by_key.get((POSITIONS, key), [])]
        counts = [m for _, m in seen]
        for rank, ts in enumerate(times, start=1):
            i = bisect.bisect_left(counts, base[key]["movements"] + rank)
            if i == len(seen):
                missing += 1
            else:
                event_latency.append((ts - t0, seen[i][0] - ts))
    alert_latency = []
    for key in hot:
        rank = base[key]["available_to_sell"] + 1  # the lock that takes it below zero
        if rank <= len(produced[key]):
            at = arrivals.first(ALERTS, key, covered(key, rank))
            if at is not None:
                alert_latency.append(at - produced[key][rank - 1])
    stock_latency = []
    for key, on_hand, committed in stock_changes:
        at = arrivals.first(POSITIONS, key, lambda r, v=on_hand: r["on_hand"] >= v)
        if at is not None:
            stock_latency.append(at - committed)

    print(f"\norders {len(schedule):,} in {produce_s:.0f} s: {args.rate:,}/min, flash sale +{args.flash_rate:,}/min "
          f"on {args.hot} positions at {args.flash_at:.0f}-{args.flash_at + args.flash_seconds:.0f} s; "
          f"{len(stock_changes)} ERP stock changes; not seen: {missing}")
    print("latency (s)")
    print(summary("reservation -> position", [lat for _, lat in event_latency], len(schedule)))
    flash = [lat for off, lat in event_latency if args.flash_at <= off < args.flash_at + args.flash_seconds]
    print(summary("  during the flash sale", flash, len(flash)))
    print(summary("lock below zero -> alert", alert_latency, args.hot))
    print(summary("ERP commit -> position", stock_latency, len(stock_changes)))
    batches = sorted(progress.batches.values(), key=lambda b: b[0])
    print(f"\ntimeline per {WINDOW_S} s: orders produced, p99 reservation -> position, max backlog (offsets), "
          "median micro-batch ms")
    for w in range(0, int(produce_s) + 1, WINDOW_S):
        lats = [lat for off, lat in event_latency if w <= off < w + WINDOW_S]
        inside = [p for at, p in batches if w <= at - t0 < w + WINDOW_S]
        backlog = max((p.get("backlog_offsets") or 0 for p in inside), default=0)
        ms = statistics.median([p["batch_ms"] for p in inside if p.get("batch_ms") is not None] or [float("nan")])
        print(f"  {w:4d}-{w + WINDOW_S:<4d} s  {len(lats):6,}   p99 {pct(lats, .99):5.2f} s   backlog {backlog:6,}   "
              f"batch {ms:6.0f} ms")
    parts = defaultdict(list)
    for _, p in batches:
        for name, ms in (p.get("durations_ms") or {}).items():
            parts[name].append(ms)
    print(f"\nwhere a micro-batch's time goes ({len(batches)} batches sampled; medians, ms): " + ", ".join(
        f"{name} {statistics.median(v):.0f}" for name, v in sorted(parts.items(), key=lambda kv: -statistics.median(kv[1]))))


if __name__ == "__main__":
    main()
