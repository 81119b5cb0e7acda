"""Shared fixtures: one Spark session and one $LAKEHOUSE_HOME per test session (Spark starts in ~10 s)."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from lakehouse import config

# The slowest modules first (their times in `make test`'s --durations, longest first). `make test` runs with
# `--dist loadfile --no-loadscope-reorder`: a worker takes the next whole module in collection order, so the long
# modules start at once and the short ones fill the workers' ends (xdist's default order, most tests first, started
# the longest module, test_demo, ~20 min late). Modules not listed keep their order, after these.
SLOWEST_MODULES = [
    "tests/e2e/test_demo.py",
    "tests/e2e/test_commerce_model.py",
    "tests/integration/test_demand_scoring.py",
    "tests/integration/test_silver_cdc_chunks.py",
    "tests/e2e/test_cdc_pipeline.py",
    "tests/e2e/test_gdpr_erasure.py",
    "tests/e2e/test_bronze_sigkill.py",
    "tests/integration/test_gold_incremental.py",
    "tests/integration/test_silver_cdc_mirror.py",
    "tests/integration/test_sql_endpoint.py",
    "tests/integration/test_metastore.py",
    "tests/integration/test_landing.py",
    "tests/integration/test_airflow_dags.py",
    "tests/e2e/test_wheel_install.py",
    "tests/integration/test_dbt.py",
    "tests/e2e/test_spark_submit.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order modules as SLOWEST_MODULES says (a stable sort: tests keep their order within a module)."""
    rank = {module: n for n, module in enumerate(SLOWEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


class ModuleTimes:
    """Prints a line per finished test module as the run goes (worker, tests, seconds of its tests and fixtures,
    minutes since the session started): CI stops a run at its time limit before pytest's --durations summary, and
    these lines say which modules took the time and which were still running."""

    def __init__(self, config: pytest.Config) -> None:
        self.config, self.started = config, time.monotonic()
        self.current: dict[str, list] = {}  # worker -> [module, tests, seconds]

    def _done(self, worker: str) -> None:
        module, tests, seconds = self.current.pop(worker)
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")  # on a line of its own (xdist's dots
        terminal.write(f"\n[{worker}] {module}: {tests} tests, {seconds:,.0f} s "  # leave the line open)
                       f"(at {(time.monotonic() - self.started) / 60:.1f} min)\n")

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        worker = getattr(getattr(report, "node", None), "gateway", None)
        worker = worker.id if worker is not None else "main"
        module = report.nodeid.split("::", 1)[0]
        if worker in self.current and self.current[worker][0] != module:
            self._done(worker)
        entry = self.current.setdefault(worker, [module, 0, 0.0])
        entry[1] += report.when == "call"
        entry[2] += report.duration

    @pytest.hookimpl
    def pytest_sessionfinish(self) -> None:
        for worker in list(self.current):
            self._done(worker)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        config.pluginmanager.register(ModuleTimes(config), "lakehouse-module-times")


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@pytest.fixture(scope="session")
def lakehouse_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An isolated $LAKEHOUSE_HOME for the whole test session (tables, checkpoints, MLflow), whose PostgreSQL
    cluster (Hive metastore) listens on a free port."""
    from lakehouse.services.process import free_port

    home = Path(os.environ.get("LAKEHOUSE_TEST_HOME") or tmp_path_factory.mktemp("lakehouse_home"))
    previous = {name: os.environ.get(name) for name in ("LAKEHOUSE_HOME", "LAKEHOUSE_PG_PORT")}
    os.environ["LAKEHOUSE_HOME"] = str(home)
    os.environ["LAKEHOUSE_PG_PORT"] = str(free_port())
    config.reset_settings()
    yield home
    for name, value in previous.items():
        _set_env(name, value)
    config.reset_settings()


@pytest.fixture(scope="session")
def settings(lakehouse_home: Path) -> config.Settings:
    return config.get_settings()


@pytest.fixture(scope="session")
def metastore(settings: config.Settings) -> Iterator:
    """The session home's PostgreSQL cluster with the Hive metastore, started for the test session and deleted
    after it. $LAKEHOUSE_METASTORE_URL points every session of this test run at it, also those of jobs run as
    subprocesses in homes of their own."""
    from lakehouse.services import metastore as hive
    from lakehouse.services import postgres

    cfg = postgres.pg_config(settings)
    postgres.start(cfg)
    db = hive.metastore_db(settings)
    previous = os.environ.get(hive.URL_ENV)
    os.environ[hive.URL_ENV] = db.jdbc_url
    yield db
    _set_env(hive.URL_ENV, previous)
    if os.environ.get("LAKEHOUSE_TEST_HOME"):
        postgres.stop(cfg)
    else:
        postgres.destroy(cfg)


@contextmanager
def _metastore_database(metastore) -> Iterator:
    """A new empty database in the session's metastore cluster, dropped on exit."""
    import psycopg

    from lakehouse.services import metastore as hive

    db = hive.MetastoreDb(metastore.host, metastore.port, f"ms_{uuid.uuid4().hex[:10]}", metastore.user)
    admin = f"host={db.host} port={db.port} user={db.user} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db.dbname}"')
    try:
        yield db
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{db.dbname}" WITH (FORCE)')


@pytest.fixture()
def fresh_metastore(metastore) -> Iterator:
    """An empty metastore database of this test in the session's cluster (jobs in homes of their own whose fixed
    table names would clash in the shared one): pass `fresh_metastore.jdbc_url` as $LAKEHOUSE_METASTORE_URL."""
    with _metastore_database(metastore) as db:
        yield db


@pytest.fixture(scope="module")
def new_metastore(metastore) -> Iterator[Callable[[], object]]:
    """`new_metastore()` makes another empty metastore database (like `fresh_metastore`) for a module's fixtures;
    all are dropped after the module."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(_metastore_database(metastore))


TEST_DRIVER_MEMORY = "3g"
# Tungsten's memory pages (Spark sizes them from the heap, up to 64 MB), taken by sorts and aggregations: with the
# parallel collector (LOCAL_JVM_OPTIONS) they filled the old generation. test_demand_scoring alone, idle machine:
# 66 full GCs (41 s), 309 s with the default; 12 (7 s), 254 s with 4 MB pages.
TEST_PAGE_SIZE = "4m"


@pytest.fixture(scope="session")
def spark(settings: config.Settings, metastore):
    """The one Spark session of the test process, built by the platform's own factory."""
    from lakehouse.spark import get_spark

    # 3 GB, not the platform's 4 GB: two test workers run beside the e2e demo's six 2 GB pipeline stages, the chaos
    # drill and the services on 24 GB, and the kernel killed a worker's 4 GB JVM (its RSS reached 4.7 GB); with
    # 2.5 GB, Spark's execution memory (60 % of the heap) and a live set grown over the modules filled the old
    # generation (see `_spark_state_released_after_each_module`)
    session = get_spark("lakehouse-tests", settings, conf={"spark.driver.memory": TEST_DRIVER_MEMORY,
                                                             "spark.buffer.pageSize": TEST_PAGE_SIZE})
    yield session
    session.stop()


@pytest.fixture(autouse=True, scope="module")
def _spark_state_released_after_each_module() -> Iterator[None]:
    """After a module, the test session forgets the module's py4j proxies, cached DataFrames and Delta logs (the
    snapshots and plans of every table it touched): one worker's session serves ~150 modules' fresh tables. Without
    this (and before the platform stopped pinning DeltaLogs and GX's batches) its old generation filled with plans
    late in a run and the worker crawled in full GCs."""
    yield
    import gc

    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is None:
        return
    gc.collect()  # the module's py4j proxies (cyclic garbage): their JVM objects are released with them
    session = SparkSession.getActiveSession()
    if session is not None:
        session.catalog.clearCache()
        session._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()


@pytest.fixture(scope="session")
def tables(spark, settings):
    from lakehouse.tables import get_tables

    return get_tables(spark, settings)


@pytest.fixture()
def table_name() -> str:
    """A fresh table name per test (tables share one home)."""
    return f"silver.t_{uuid.uuid4().hex[:10]}"


# --- Kafka broker (Apache Kafka, KRaft) ---------------------------------------------------------------------


class KafkaTestBroker:
    """A real local Apache Kafka broker on a free port with its own $LAKEHOUSE_HOME (config and data under
    `<home>/kafka`). `restart()` keeps every topic, record and committed offset (they are on disk)."""

    def __init__(self, home: Path) -> None:
        import dataclasses

        from lakehouse.services.process import free_port

        port = free_port()
        self.settings = dataclasses.replace(
            config.Settings.from_env(), home=home, broker_port=port, kafka_bootstrap=f"127.0.0.1:{port}"
        )
        self.bootstrap = self.settings.kafka_bootstrap

    def start(self) -> KafkaTestBroker:
        from lakehouse.services.broker import start_broker

        start_broker(self.settings)
        return self

    def stop(self) -> None:
        from lakehouse.services.broker import stop_broker

        stop_broker(self.settings)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def pid(self) -> int | None:
        from lakehouse.services.process import status

        return status("broker", self.settings).pid


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaTestBroker]:
    """One broker for the test session. Tests use their own topic names."""
    b = KafkaTestBroker(tmp_path_factory.mktemp("kafka_home")).start()
    yield b
    b.stop()


@pytest.fixture()
def fresh_broker(tmp_path: Path) -> Iterator[KafkaTestBroker]:
    """A broker of this test only, for restarts (a JVM: a few seconds to start, more on a busy machine)."""
    b = KafkaTestBroker(tmp_path / "kafka_home").start()
    yield b
    b.stop()


# --- Spark standalone cluster (e2e modules) ---------------------------------------------------------------

WORKERS = 2  # each its own JVM, each launching one executor JVM per application
WORKER_CORES = 1  # per worker: the machine's 2 cores in all, one task at a time per executor
WORKER_MEMORY = "1g"  # per worker: one executor of spark.executor.memory's default 1g


@dataclasses.dataclass(frozen=True)
class SparkCluster:
    master_url: str
    web_ui: str
    workers: int
    cores: int  # per worker
    work_dir: Path  # worker-<n>/<app id>/<executor id>/ for every executor a worker launched
    settings: config.Settings  # its run dir holds the daemons' PID files
    start_seconds: float


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """Master + 2 workers (1 core and 1g for executors each) on 127.0.0.1 for the session; stopped by PID at the
    end."""
    from lakehouse.services.spark_cluster import ClusterSpec, start_cluster, stop_cluster

    home = tmp_path_factory.mktemp("spark_cluster")
    settings = dataclasses.replace(config.Settings.from_env(), home=home)
    started = time.monotonic()
    try:
        status = start_cluster(ClusterSpec(workers=WORKERS, cores=WORKER_CORES, memory=WORKER_MEMORY,
                                           work_dir=home / "work"), settings)
        cluster = SparkCluster(status.master_url, status.web_ui, WORKERS, WORKER_CORES, home / "work", settings,
                               time.monotonic() - started)
        print(f"spark cluster {status.master_url}: {status.alive_workers} workers in {cluster.start_seconds:.1f} s")
        yield cluster
    finally:
        stop_cluster(settings)


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A real S3 endpoint (moto_server) on a free port, managed by the platform's process module."""
    from lakehouse.services import s3 as s3_service
    from lakehouse.services.process import free_port

    port = free_port()
    cfg = s3_service.S3Config(port=port, endpoint=f"http://127.0.0.1:{port}", bucket="landing", region="us-east-1")
    home = tmp_path_factory.mktemp("s3_home")
    settings = dataclasses.replace(config.Settings.from_env(), home=home)
    status = s3_service.start_s3(settings, cfg)
    assert status.running and status.pid
    yield cfg
    assert s3_service.stop_s3(settings)
