"""SIGKILL the bronze job mid-stream, restart it: nothing lost, nothing duplicated.

The job runs as its own process (own $LAKEHOUSE_HOME, the test session's shared Hive metastore) against the
session's broker; tables are checked with delta-rs, another Delta implementation."""

from __future__ import annotations

import json
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
from deltalake import DeltaTable

from lakehouse.config import REPO_ROOT
from lakehouse.events import FAMILIES
from lakehouse.events.generator import FAULTS, StreamConfig, generate_stream, produce_stream

pytestmark = pytest.mark.e2e


def _job(home: Path, bootstrap: str, module: str, *args: str, metastore: str) -> subprocess.Popen:
    """Start `python -m <module> args` in its own process group (so a SIGKILL takes its JVM too), on the Hive
    metastore at JDBC URL `metastore`."""
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_KAFKA_BOOTSTRAP": bootstrap,
           "LAKEHOUSE_METASTORE_URL": metastore}
    env.pop("LAKEHOUSE_TABLES_ROOT", None)
    log = open(home / f"{module}-{time.time_ns()}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _kill(job: subprocess.Popen) -> None:
    os.killpg(job.pid, signal.SIGKILL)  # the job's own process group: python driver + its JVM
    job.wait(30)


def _committed_versions(table: Path) -> int:
    log = table / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


# --- bronze_events: several random kill points over a generated stream with faults ----------------------------

EVENTS_BATCH = 150  # maxOffsetsPerTrigger: ~20 micro-batches over the stream


def _txns(table: Path) -> list[tuple[str, int]]:
    """Every (appId, version) transaction id committed to a Delta table, one entry per commit."""
    out = []
    for entry in sorted((table / "_delta_log").glob("*.json")):
        for line in entry.read_text().splitlines():
            action = json.loads(line)
            if "txn" in action:
                out.append((action["txn"]["appId"], action["txn"]["version"]))
    return out


def _batches(checkpoint: Path, log: str) -> int:
    """How many batches the checkpoint's `offsets` (planned) or `commits` (finished) log holds."""
    entries = checkpoint / log
    return sum(1 for p in entries.iterdir() if p.name.isdigit()) if entries.is_dir() else 0


def test_bronze_events_survives_random_sigkills(broker, tmp_path, fresh_metastore):
    """Kill `jobs.bronze_events` (continuous, small batches) at 2 seeded random points — a random number of
    micro-batches after the last kill has been planned, plus a random delay, so kills land in reads, writes,
    Delta commits and checkpoint commits, including the replay of a batch the previous kill left unfinished —
    restart it each time, finish with available-now: per family bronze + dead letter = produced, every Kafka
    coordinate exactly once, no Delta transaction id committed twice."""
    seed = int(os.environ.get("LAKEHOUSE_KILL_SEED") or random.SystemRandom().randrange(1 << 30))
    rng = random.Random(seed)
    ctx = f"seed {seed} (rerun with LAKEHOUSE_KILL_SEED={seed})"
    prefix = f"kill_{uuid.uuid4().hex[:6]}_"
    config = StreamConfig(seed=seed, rate=100, duration_s=30, faults=dict.fromkeys(FAULTS, 0.03),
                          topic_prefix=prefix, max_bytes=4096)
    stream = generate_stream(config)
    produce_stream(broker.bootstrap, stream, partitions=2)
    total_batches = -(-stream.report.produced // EVENTS_BATCH)
    args = ["--topic-prefix", prefix, "--max-bytes", str(config.max_bytes)]
    checkpoint = tmp_path / "tables" / "_checkpoints" / "bronze_events_all"

    kills = []
    for _ in range(2):
        target = _batches(checkpoint, "offsets") + rng.randint(1, 3)
        delay = rng.uniform(0, 2)
        job = _job(tmp_path, broker.bootstrap, "jobs.bronze_events", *args, "--trigger", "continuous",
                   "--interval", "0 seconds", "--max-offsets-per-trigger", str(EVENTS_BATCH),
                   metastore=fresh_metastore.jdbc_url)
        deadline = time.time() + 180
        while _batches(checkpoint, "offsets") < target and job.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert job.poll() is None, f"bronze_events ended before it could be killed; {ctx}"
        time.sleep(delay)
        _kill(job)
        kills.append({"planned": _batches(checkpoint, "offsets"), "committed": _batches(checkpoint, "commits"),
                      "delay_s": round(delay, 2)})
    assert kills[-1]["committed"] < total_batches, f"the stream was done before the last kill {kills}; {ctx}"

    final = _job(tmp_path, broker.bootstrap, "jobs.bronze_events", *args, "--trigger", "available-now",
                 metastore=fresh_metastore.jdbc_url)
    assert final.wait(300) == 0, f"final run failed; kills {kills}; {ctx}"

    tables = tmp_path / "tables" / "bronze"
    dead = DeltaTable(str(tables / "dead_letter")).to_pyarrow_table(
        columns=["event_family", "reason", "topic", "partition", "offset"])
    dead_counts = Counter(zip(dead.column("event_family").to_pylist(), dead.column("reason").to_pylist(),
                              strict=True))
    coords = list(zip(*(dead.column(c).to_pylist() for c in ("topic", "partition", "offset")), strict=True))
    for family in FAMILIES:
        rep = stream.report.families[family]
        rows = DeltaTable(str(tables / f"{family}_events")).to_pyarrow_table(columns=["topic", "partition", "offset"])
        coords += zip(*(rows.column(c).to_pylist() for c in ("topic", "partition", "offset")), strict=True)
        assert rows.num_rows == rep.bronze, f"{family}: kills {kills}; {ctx}"
        assert {r: dead_counts[(family, r)] for r in rep.dead_letter} == rep.dead_letter, f"{family}; {ctx}"
    assert len(coords) == len(set(coords)) == stream.report.produced, f"kills {kills}; {ctx}"
    for name in [f"{f}_events" for f in FAMILIES] + ["dead_letter"]:
        txns = _txns(tables / name)
        assert len(txns) == len(set(txns)), f"{name} committed a batch twice; {ctx}"
