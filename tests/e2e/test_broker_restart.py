"""Restart the broker under a running bronze stream: the stream rides through it, and the bronze tables end with
every produced record exactly once.

`jobs.bronze_events` runs continuously (small micro-batches) as its own process and $LAKEHOUSE_HOME against a
broker of this test; half of a generated stream (every fault kind) is produced before the restart, the other
half after it. Every delivery's Kafka coordinate is recorded from the producer's delivery reports, and the
tables are read with delta-rs, another Delta implementation."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer
from deltalake import DeltaTable

from lakehouse.config import REPO_ROOT
from lakehouse.events import FAMILIES
from lakehouse.events.generator import FAULTS, StreamConfig, generate_stream
from lakehouse.sources.kafka_admin import PRODUCER_DEFAULTS, create_topics

pytestmark = pytest.mark.e2e
BATCH = 150  # maxOffsetsPerTrigger: the first half (~300 records) takes 2 micro-batches
Coord = tuple[str, int, int]


def _produce(bootstrap: str, records: list[tuple[str, bytes, bytes, list]]) -> list[Coord]:
    """Produce (topic, key, value, headers) records; the (topic, partition, offset) of every delivery."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", **PRODUCER_DEFAULTS})
    coords: list[Coord] = []
    errors: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is None:
            coords.append((msg.topic(), msg.partition(), msg.offset()))
        else:
            errors.append(err.str())

    for topic, key, value, headers in records:
        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0 and not errors, errors[:1]
    return coords


def _job(home: Path, bootstrap: str, *args: str, metastore: str) -> subprocess.Popen:
    """`python -m jobs.bronze_events args` in its own process group (a SIGKILL takes its JVM too), on the Hive
    metastore at JDBC URL `metastore` (its table names would clash in the session's)."""
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_KAFKA_BOOTSTRAP": bootstrap,
           "LAKEHOUSE_METASTORE_URL": metastore}
    env.pop("LAKEHOUSE_TABLES_ROOT", None)
    log = open(home / "bronze_events.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "jobs.bronze_events", *args], cwd=REPO_ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _commits(checkpoint: Path) -> int:
    entries = checkpoint / "commits"
    return sum(1 for p in entries.iterdir() if p.name.isdigit()) if entries.is_dir() else 0


def _rows(table: Path, columns: list[str]):
    return DeltaTable(str(table)).to_pyarrow_table(columns=columns) if (table / "_delta_log").is_dir() else None


def _bronze_coords(tables: Path) -> list[Coord]:
    """Every (topic, partition, offset) in the family tables and the dead letters (duplicates kept)."""
    coords: list[Coord] = []
    for name in [f"{f}_events" for f in FAMILIES] + ["dead_letter"]:
        rows = _rows(tables / name, ["topic", "partition", "offset"])
        if rows is not None:
            coords += zip(*(rows.column(c).to_pylist() for c in ("topic", "partition", "offset")), strict=True)
    return coords


def _log_tail(home: Path) -> str:
    return (home / "bronze_events.log").read_text(errors="replace")[-3000:]


def test_bronze_stream_rides_through_a_broker_restart_exactly_once(fresh_broker, tmp_path, fresh_metastore) -> None:
    prefix = f"restart_{uuid.uuid4().hex[:6]}_"
    config = StreamConfig(seed=7, rate=20, duration_s=30, faults=dict.fromkeys(FAULTS, 0.03),
                          topic_prefix=prefix, max_bytes=4096)
    stream = generate_stream(config)
    records = [(config.topic(f), *rec) for f, recs in stream.records.items() for rec in recs]
    random.Random(config.seed).shuffle(records)  # families interleaved
    half = len(records) // 2
    create_topics(fresh_broker.bootstrap, [config.topic(f) for f in FAMILIES], 2)
    produced = _produce(fresh_broker.bootstrap, records[:half])
    checkpoint, tables = tmp_path / "tables" / "_checkpoints" / "bronze_events_all", tmp_path / "tables" / "bronze"

    job = _job(tmp_path, fresh_broker.bootstrap, "--topic-prefix", prefix, "--max-bytes", str(config.max_bytes),
               "--trigger", "continuous", "--interval", "1 second", "--max-offsets-per-trigger", str(BATCH),
               metastore=fresh_metastore.jdbc_url)
    try:
        deadline = time.time() + 240
        while _commits(checkpoint) < 1 and job.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert job.poll() is None and _commits(checkpoint) >= 1, _log_tail(tmp_path)
        before, broker_pid = len(_bronze_coords(tables)), fresh_broker.pid
        started = time.monotonic()
        fresh_broker.restart()
        downtime = time.monotonic() - started
        assert fresh_broker.pid != broker_pid
        assert before < half, f"the first half was ingested before the restart ({before} of {half})"

        produced += _produce(fresh_broker.bootstrap, records[half:])
        assert len(produced) == len(records) == stream.report.produced
        deadline = time.time() + 600  # a micro-batch takes ~40 s on 2 busy cores
        while len(_bronze_coords(tables)) < len(produced) and job.poll() is None and time.time() < deadline:
            time.sleep(1)
        assert job.poll() is None, f"the stream died (broker down {downtime:.1f} s): {_log_tail(tmp_path)}"
        time.sleep(3)  # a late duplicate, if the stream wrote one, lands before the check
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)

    coords = _bronze_coords(tables)
    assert len(coords) == len(set(coords)) == len(produced), f"broker down {downtime:.1f} s"
    assert set(coords) == set(produced)
    dead = _rows(tables / "dead_letter", ["event_family", "reason"])
    dead_counts = Counter(zip(dead.column("event_family").to_pylist(), dead.column("reason").to_pylist(),
                              strict=True))
    for family in FAMILIES:
        rep = stream.report.families[family]
        assert _rows(tables / f"{family}_events", ["offset"]).num_rows == rep.bronze, family
        assert {r: dead_counts[(family, r)] for r in rep.dead_letter} == rep.dead_letter, family
