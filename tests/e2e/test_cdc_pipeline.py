"""PostgreSQL -> Debezium -> Kafka -> bronze -> silver (SCD1 + SCD2): silver equals the database row for row.

One stack for the module: a real PostgreSQL 15 cluster, its own Tansu broker, the capture process (Debezium
embedded engine) managed by PID file; the bronze and silver jobs run in the test's Spark session. Also: SCD2
as of a chosen commit, SIGKILL of the capture process mid-workload, a PostgreSQL restart, and SIGKILL of the
silver job (its own process) at a random step, then a restart."""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from lakehouse.config import REPO_ROOT
from lakehouse.services.postgres import PG_BIN

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason="postgresql-15 is not installed (make system)"),
]


@dataclasses.dataclass
class CdcStack:
    settings: object
    cfg: object
    ctx: object

    def conn(self):
        from lakehouse.services.postgres import connect

        return connect(self.cfg)

    def kafka_total(self) -> int:
        from lakehouse.cdc import all_topics
        from lakehouse.sources.kafka_admin import end_offsets

        return sum(sum(end_offsets(self.settings.kafka_bootstrap, t).values()) for t in all_topics())

    def wait_quiet(self, quiet_s: float = 3.0, timeout: float = 120.0) -> None:
        """Wait until the capture stops publishing (Kafka end offsets unchanged for `quiet_s`)."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            total = self.kafka_total()
            if total != last:
                last, since = total, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.5)
        raise AssertionError("capture kept publishing")

    def catch_up(self) -> dict[str, tuple[int, int, int]]:
        """Wait for the capture, run bronze + silver, return the differences with the database."""
        import jobs.bronze_cdc as bronze
        import jobs.silver_cdc as silver
        from lakehouse.cdc.verify import differences

        self.wait_quiet()
        bronze.ingest(self.ctx)
        silver.apply_changes(self.ctx)
        with self.conn() as conn:
            return differences(conn, self.ctx.tables)


def _assert_equal(diff: dict[str, tuple[int, int, int]]) -> None:
    assert {t: d[1:] for t, d in diff.items()} == {t: (0, 0) for t in diff}, diff
    assert all(d[0] > 0 for d in diff.values()), diff


@pytest.fixture(scope="module")
def stack(spark, tables, broker):
    from conftest import KafkaTestBroker

    from lakehouse.cdc import workload
    from lakehouse.cdc.capture import start_capture, stop_capture
    from lakehouse.job import JobContext
    from lakehouse.services import postgres
    from lakehouse.services.broker import binary_path
    from lakehouse.services.process import free_port

    home = Path(tempfile.mkdtemp(prefix="lh-cdc-e2e-"))
    home.chmod(0o755)  # PostgreSQL runs as the `postgres` user when tests run as root
    kafka = KafkaTestBroker(home)
    kafka.settings.bin_dir.mkdir(parents=True, exist_ok=True)
    binary_path(kafka.settings).symlink_to(binary_path(broker.settings))
    kafka.start()
    settings = kafka.settings
    cfg = postgres.pg_config(settings, port=free_port())
    try:
        postgres.start(cfg)
        with postgres.connect(cfg) as conn:
            workload.seed(conn, seed=3, products=150, customers=200)
        start_capture(settings, cfg)
        ctx = JobContext(spark, tables, settings, f"cdc-e2e-{uuid.uuid4().hex[:6]}")
        yield CdcStack(settings, cfg, ctx)
    finally:
        stop_capture(settings)
        postgres.destroy(cfg)
        kafka.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_snapshot_then_streaming_changes_equal_the_database(stack):
    from lakehouse.cdc.workload import Workload
    from lakehouse.sources.kafka_admin import produce
    from transformations.silver.cdc import DEAD_LETTER

    with stack.conn() as conn:
        report = Workload(conn, seed=11, burst_every=40, burst_size=120).run(150)
    assert report.kinds.get("customer_delete") and report.kinds.get("discontinue")
    produce(stack.settings.kafka_bootstrap, "erp.public.products", [(b'{"sku":"X"}', b"{broken")])
    _assert_equal(stack.catch_up())
    dead = stack.ctx.tables.read(DEAD_LETTER).collect()
    assert [(r.topic, r.reason) for r in dead] == [("erp.public.products", "malformed: not a Debezium JSON envelope")]


def test_scd2_history_gives_the_database_as_of_a_chosen_commit(stack):
    from lakehouse.cdc.verify import silver_rows, source_rows
    from lakehouse.cdc.workload import Workload, current_lsn
    from transformations.silver.cdc import TABLES, scd2_as_of

    customers, products = TABLES["customers"], TABLES["products"]
    price_cols = [*products.keys, *products.history_tracked]
    with stack.conn() as conn:
        Workload(conn, seed=12, burst_every=0).run(60)
        lsn = current_lsn(conn)
        customers_then = source_rows(conn, customers)
        prices_then = source_rows(conn, products, price_cols)
        Workload(conn, seed=13, burst_every=0).run(60)
    _assert_equal(stack.catch_up())
    tables = stack.ctx.tables
    assert silver_rows(scd2_as_of(tables.read(customers.scd2), lsn), customers.column_names) == customers_then
    assert silver_rows(scd2_as_of(tables.read(products.scd2), lsn), price_cols) == prices_then


def test_equal_after_sigkill_of_capture_and_postgres_restart(stack):
    from lakehouse.cdc.capture import capture_status, start_capture
    from lakehouse.cdc.workload import Workload
    from lakehouse.services import postgres
    from lakehouse.services.process import pid_alive

    done = threading.Event()

    def drive() -> None:
        with stack.conn() as conn:
            wl = Workload(conn, seed=21, burst_every=10, burst_size=100)
            for _ in range(120):
                wl.transaction()
                time.sleep(0.01)
        done.set()

    driver = threading.Thread(target=drive)
    driver.start()
    time.sleep(0.8)
    pid = capture_status(stack.settings).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # mid-workload: offsets flushed up to 1 s ago
    while pid_alive(pid):
        time.sleep(0.05)
    driver.join(120)
    assert done.is_set()
    start_capture(stack.settings, stack.cfg)  # the stale PID file is detected; resumes from the stored offsets

    postgres.stop(stack.cfg)  # the capture loses its replication connection
    postgres.start(stack.cfg)
    time.sleep(1)
    start_capture(stack.settings, stack.cfg)  # no-op if Debezium reconnected by itself
    with stack.conn() as conn:
        Workload(conn, seed=22, burst_every=0).run(40)
    _assert_equal(stack.catch_up())


def _silver_job(home: Path, tables_root: str, pause_s: float) -> subprocess.Popen:
    """The silver_cdc job as its own process group (own $LAKEHOUSE_HOME: the Derby metastore is single-process),
    on the stack's tables; it pauses `pause_s` after reading and after each MERGE commit."""
    from jobs.silver_cdc import PAUSE_ENV

    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_TABLES_ROOT": tables_root, PAUSE_ENV: str(pause_s)}
    log = open(home / "silver_cdc.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "jobs.silver_cdc"], cwd=REPO_ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_silver_job_sigkilled_at_a_random_step_then_restarted_equals_the_database(stack, tmp_path):
    """SIGKILL the silver job (driver + JVM) after a random number of its target commits, restart: silver equals
    PostgreSQL, every target carries the bronze version once, SCD2 has no duplicate version."""
    import jobs.bronze_cdc as bronze
    from jobs.silver_cdc import APP_ID, SOURCE, targets
    from lakehouse.cdc.workload import Workload
    from transformations.silver.cdc import DEAD_LETTER, TABLES

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    tables = stack.ctx.tables
    with stack.conn() as conn:
        Workload(conn, seed=rng.randrange(1 << 30), burst_every=10, burst_size=80).run(40)
    stack.wait_quiet()
    bronze.ingest(stack.ctx)
    version = tables.version(SOURCE)
    assert (tables.committed_batch(DEAD_LETTER, APP_ID) or -1) < version  # there is work to do

    before = {name: tables.version(name) for name in targets()}  # every target exists after the earlier tests
    kill_after = rng.randint(0, 4)  # 0: after reading bronze, before any MERGE; k: after the k-th MERGE commit
    job = _silver_job(tmp_path, tables.settings.tables_root, pause_s=0.6)
    log = tmp_path / "silver_cdc.log"
    deadline = time.monotonic() + 240
    while job.poll() is None and time.monotonic() < deadline:
        text = log.read_text()
        if "read " in text and text.count(" rows into ") >= kill_after:
            break
        time.sleep(0.02)
    assert job.poll() is None, f"silver job ended before it could be killed (seed {seed}):\n{log.read_text()}"
    time.sleep(rng.uniform(0, 0.5))
    os.killpg(job.pid, signal.SIGKILL)  # its own process group: the python driver and its JVM
    job.wait(30)
    merged_at_kill = log.read_text().count(" rows into ")
    assert merged_at_kill >= kill_after, f"seed {seed}"
    assert (tables.committed_batch(DEAD_LETTER, APP_ID) or -1) < version, f"killed too late (seed {seed})"

    _assert_equal(stack.catch_up())  # the restart: the same apply_changes, in this test's Spark session
    commits = {name: tables.version(name) - v for name, v in before.items()}
    assert all(n <= 1 for n in commits.values()), f"a target committed the batch twice: {commits} (seed {seed})"
    assert commits[DEAD_LETTER] == 1 and tables.committed_batch(DEAD_LETTER, APP_ID) == version
    for spec in TABLES.values():
        if spec.scd2:
            rows = tables.read(spec.scd2).select(*spec.keys, "_lsn_from")
            assert rows.count() == rows.distinct().count(), f"{spec.scd2} has a duplicated version (seed {seed})"
