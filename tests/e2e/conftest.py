"""The e2e modules' shared Spark standalone cluster: a master and two workers (separate JVMs) on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse import config

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
