"""PostgreSQL -> Debezium -> Kafka -> bronze -> silver (SCD1 + SCD2): silver equals the database row for row.

One stack for the module: a real PostgreSQL 15 cluster, its own Apache Kafka broker, the capture process (Debezium
embedded engine) managed by PID file; the bronze and silver jobs run in the test's Spark session. Also: SCD2
as of a chosen commit, SIGKILL of the silver job (its own process) at a random step, SIGKILLs of the continuous
bronze job (its own process) while the workload runs, and a table created later without a spec (captured,
mirrored to silver.erp_<table>). SIGKILLs of the capture process and of PostgreSQL while ERP transactions run are
the chaos drill's (tests/e2e/test_demo.py), with the whole pipeline running."""

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

    def wait_quiet(self, quiet_s: float = 3.0, timeout: float = 120.0) -> int:
        """Wait until the capture stops publishing; returns how many records the captured topics hold."""
        from lakehouse.cdc import wait_quiet

        try:
            return wait_quiet(self.settings.kafka_bootstrap, quiet_s, timeout)
        except TimeoutError:
            raise AssertionError("capture kept publishing") from None

    def catch_up(self) -> dict[str, tuple[int, int, int]]:
        """Wait for the capture, run bronze + silver, return the differences with the database. Again (3 times at
        most) only when the capture published more meanwhile: a quiet spell under heavy load was a stall."""
        import jobs.bronze_cdc as bronze
        import jobs.silver_cdc as silver
        from lakehouse.cdc import published
        from lakehouse.cdc.verify import differences

        for _ in range(3):
            quiet_at = self.wait_quiet()
            bronze.ingest(self.ctx)
            silver.run(self.ctx)
            with self.conn() as conn:
                diff = differences(conn, self.ctx.tables)
            if published(self.settings.kafka_bootstrap) == quiet_at:
                break
        return diff


def _assert_personal_data_only_in_the_restricted_table(stack) -> None:
    """Silver customers hold tokens; restricted.pii_values maps each token back to the database's value."""
    from transformations.silver.cdc import PII_TABLE

    tables = stack.ctx.tables
    history = tables.read("silver.customers_history").select("customer_id", "email").collect()
    assert history and not any("@" in (r.email or "") for r in history)
    raw = {(r.column, r.token): r.value for r in tables.read(PII_TABLE).collect()}
    with stack.conn() as conn:
        emails = dict(conn.execute("SELECT customer_id, email FROM customers").fetchall())
    current = tables.read("silver.customers_history").where("is_current").collect()
    assert {r.customer_id: raw.get(("email", r.email)) for r in current} == emails


def _assert_mirror_validated(stack) -> None:
    """Every silver CDC table with a suite is validated once, with warn-only outcomes; PII checks pass."""
    import jobs.silver_cdc as silver

    gates = silver.validate_mirror(stack.ctx)
    assert {"silver.products", "silver.inventory", "silver.customers_history", "silver.fx_rates_history"} <= set(gates)
    assert all(not g.blocked for g in gates.values())
    tokens = [r for r in gates["silver.customers_history"].results if "[0-9a-f]{64}" in r["expectation"]]
    assert len(tokens) == 2 and all(r["success"] for r in tokens)
    assert all(r["success"] for r in gates["silver.products"].results)


def _assert_equal(diff: dict[str, tuple[int, int, int]]) -> None:
    assert {t: d[1:] for t, d in diff.items()} == {t: (0, 0) for t in diff}, diff
    assert all(d[0] > 0 for d in diff.values()), diff


@pytest.fixture(scope="module")
def stack(spark, tables):
    from conftest import KafkaTestBroker

    from lakehouse.cdc import workload
    from lakehouse.cdc.capture import start_capture, stop_capture
    from lakehouse.job import JobContext
    from lakehouse.services import postgres
    from lakehouse.services.process import free_port

    home = Path(tempfile.mkdtemp(prefix="lh-cdc-e2e-"))
    home.chmod(0o755)  # PostgreSQL runs as the `postgres` user when tests run as root
    kafka = KafkaTestBroker(home).start()
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
    _assert_personal_data_only_in_the_restricted_table(stack)
    _assert_mirror_validated(stack)
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


def _job(module: str, home: Path, session, *args: str, **env: str) -> subprocess.Popen:
    """A job as its own process group (a $LAKEHOUSE_HOME of its own; the session's Hive metastore through
    $LAKEHOUSE_METASTORE_URL) on the tables of the test session's settings `session`, with extra environment
    `env`; its output goes to home/<job>.log."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_TABLES_ROOT": session.tables_root, **env}
    log = open(home / f"{module.rsplit('.', 1)[-1]}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _silver_job(home: Path, session, pause_s: float) -> subprocess.Popen:
    """The silver_cdc job as its own process; it pauses `pause_s` after reading and after each MERGE commit."""
    from jobs.silver_cdc import PAUSE_ENV

    return _job("jobs.silver_cdc", home, session, **{PAUSE_ENV: str(pause_s)})


def test_silver_job_sigkilled_at_a_random_step_then_restarted_equals_the_database(stack, tmp_path):
    """SIGKILL the silver job (driver + JVM) after a random number of its target commits, restart: silver equals
    PostgreSQL, every target commits the replayed micro-batch once, SCD2 has no duplicate version."""
    import jobs.bronze_cdc as bronze
    from jobs.silver_cdc import SOURCE, targets
    from lakehouse.cdc.workload import Workload
    from transformations.silver.cdc import DEAD_LETTER, TABLES

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    tables = stack.ctx.tables
    with stack.conn() as conn:
        Workload(conn, seed=rng.randrange(1 << 30), burst_every=10, burst_size=80).run(40)
    stack.wait_quiet()
    version = tables.version(SOURCE)
    bronze.ingest(stack.ctx)
    assert tables.version(SOURCE) > version  # there is work to do (silver is caught up after the earlier tests)

    before = {name: tables.version(name) for name in targets()}  # every target exists after the earlier tests
    kill_after = rng.randint(0, 4)  # 0: after reading bronze, before any MERGE; k: after the k-th MERGE commit
    job = _silver_job(tmp_path, tables.settings, pause_s=0.6)
    log = tmp_path / "silver_cdc.log"
    deadline = time.monotonic() + 600  # a guard against a hang: a fresh JVM on a busy machine took over 240 s
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
    assert tables.version(DEAD_LETTER) == before[DEAD_LETTER], f"killed too late: the batch ended (seed {seed})"

    _assert_equal(stack.catch_up())  # the restart: the same query from its checkpoint, in this test's session
    commits = {name: tables.version(name) - v for name, v in before.items()}
    assert all(n <= 1 for n in commits.values()), f"a target committed the batch twice: {commits} (seed {seed})"
    assert commits[DEAD_LETTER] == 1, f"seed {seed}"
    for spec in TABLES.values():
        if spec.scd2:
            rows = tables.read(spec.scd2).select(*spec.keys, "_lsn_from")
            assert rows.count() == rows.distinct().count(), f"{spec.scd2} has a duplicated version (seed {seed})"


def _assert_bronze_exactly_once(stack: CdcStack, context: str = "") -> None:
    """bronze.erp_cdc_raw holds every record of every captured topic exactly once: per partition, the offsets
    earliest..end-1 of Kafka, each once."""
    from collections import Counter

    from jobs.bronze_cdc import TABLE
    from lakehouse.cdc import captured_topics
    from lakehouse.sources.kafka_admin import topic_partitions, watermarks

    rows = stack.ctx.tables.read_arrow(TABLE).select(["topic", "partition", "offset"]).to_pydict()
    coords = list(zip(rows["topic"], rows["partition"], rows["offset"], strict=True))
    assert [c for c, n in Counter(coords).items() if n > 1] == [], f"duplicated records {context}"
    got: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in coords:
        got.setdefault((topic, partition), []).append(offset)
    bootstrap = stack.settings.kafka_bootstrap
    tps = [(t, p) for t in captured_topics(bootstrap) for p in topic_partitions(bootstrap, t)]
    expected = {tp: list(range(low, end)) for tp, (low, end) in watermarks(bootstrap, tps).items() if end > low}
    assert {tp: sorted(offsets) for tp, offsets in got.items()} == expected, f"missing records {context}"


def test_a_table_created_later_is_captured_and_mirrored_to_silver_with_no_code_change(stack):
    """A table created in PostgreSQL after the capture and bronze started: Debezium captures it (the publication
    covers the whole schema), bronze picks its new topic up by pattern on its next run, and silver mirrors it as
    silver.erp_gift_cards (SCD1 on the key Debezium reports) through a primary-key update, a delete and a
    re-insert, equal to the database, while every table with a spec still equals it too."""
    import jobs.bronze_cdc as bronze
    from lakehouse.cdc import topic
    from lakehouse.cdc.workload import Workload
    from lakehouse.sources.kafka_admin import end_offsets
    from transformations.silver.cdc import DEAD_LETTER

    gift_cards = topic("gift_cards")
    if not Path(stack.settings.checkpoint(bronze.APP_ID)).exists():  # this test alone: earlier tests ran bronze
        bronze.ingest(stack.ctx)  # the query's checkpoint must predate the new topic
    with stack.conn() as conn:
        conn.execute("CREATE TABLE gift_cards (code text PRIMARY KEY, balance numeric(10,2) NOT NULL)")
        conn.execute("INSERT INTO gift_cards VALUES ('G-1', 25), ('G-2', 50), ('G-3', 10)")
        conn.commit()
        conn.execute("UPDATE gift_cards SET balance = 20 WHERE code = 'G-1'")
        conn.execute("UPDATE gift_cards SET code = 'G-4' WHERE code = 'G-3'")  # primary-key update
        conn.execute("DELETE FROM gift_cards WHERE code = 'G-2'")
        conn.commit()
        conn.execute("INSERT INTO gift_cards VALUES ('G-2', 75)")  # re-inserted
        conn.commit()
        Workload(conn, seed=31, burst_every=0).run(20)
    _assert_equal(stack.catch_up())
    assert sum(end_offsets(stack.settings.kafka_bootstrap, gift_cards).values()) >= 8
    mirror = stack.ctx.tables.read("silver.erp_gift_cards")
    assert sorted((r.code, r.balance) for r in mirror.collect()) == [("G-1", "20.00"), ("G-2", "75.00"),
                                                                    ("G-4", "10.00")]
    assert stack.ctx.tables.read(DEAD_LETTER).where(f"topic = '{gift_cards}'").count() == 0
    _assert_bronze_exactly_once(stack)


def test_bronze_job_sigkilled_while_the_workload_runs_loses_and_duplicates_nothing(stack, tmp_path):
    """The continuous bronze job (its own process, small micro-batches) is SIGKILLed after a random number of its
    commits, twice while the workload runs, and restarted on the same checkpoint each time; after the
    catch-up silver equals PostgreSQL and bronze holds each Kafka record exactly once."""
    import jobs.bronze_cdc as bronze
    from lakehouse.cdc.workload import Workload

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    tables = stack.ctx.tables
    stop = threading.Event()
    workload_seed = rng.randrange(1 << 30)

    def drive() -> None:
        with stack.conn() as conn:
            wl = Workload(conn, seed=workload_seed, burst_every=20, burst_size=40)
            while not stop.is_set():
                wl.transaction()
                time.sleep(0.1)

    driver = threading.Thread(target=drive)
    driver.start()
    args = ["--trigger", "continuous", "--interval", "1 second", "--max-offsets-per-trigger", "100",
            "--checkpoint", stack.settings.checkpoint(bronze.APP_ID)]
    kills = 2

    def version() -> int:  # the bronze table's; -1 before it exists (this test alone)
        return tables.version(bronze.TABLE) if tables.exists(bronze.TABLE) else -1

    try:
        for i in range(kills):
            start, commits = version(), rng.randint(1, 2)
            home = tmp_path / f"bronze{i}"
            job = _job("jobs.bronze_cdc", home, tables.settings, *args,
                       LAKEHOUSE_KAFKA_BOOTSTRAP=stack.settings.kafka_bootstrap)
            try:
                deadline = time.monotonic() + 120
                while job.poll() is None and version() < start + commits:
                    assert time.monotonic() < deadline, f"bronze run {i} is too slow (seed {seed})"
                    time.sleep(0.1)
                log = (home / "bronze_cdc.log").read_text()
                assert job.poll() is None, f"bronze run {i} ended (seed {seed}):\n{log}"
                time.sleep(rng.uniform(0, 3.0))  # somewhere in the next micro-batch
            finally:
                os.killpg(job.pid, signal.SIGKILL)  # its own process group: the python driver and its JVM
                job.wait(30)
    finally:
        stop.set()
        driver.join(60)
    diff = stack.catch_up()  # the last restart: bronze on the same checkpoint, then silver
    _assert_bronze_exactly_once(stack, f"after {kills} SIGKILLs (seed {seed})")
    _assert_equal(diff)
