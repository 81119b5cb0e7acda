"""The e2e modules' shared Spark standalone cluster: a master and one worker (separate JVMs) on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest

from lakehouse import config

WORKER_CORES = 2  # the machine's cores: one executor runs two tasks at once
WORKER_MEMORY = "1g"


@dataclasses.dataclass(frozen=True)
class SparkCluster:
    master_url: str
    web_ui: str
    cores: int  # of its one worker
    settings: config.Settings  # its run dir holds the daemons' PID files
    start_seconds: float


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """Master + 1 worker (2 cores, 1g for executors) on 127.0.0.1 for the session; stopped by PID at the end."""
    from lakehouse.services.spark_cluster import ClusterSpec, start_cluster, stop_cluster

    home = tmp_path_factory.mktemp("spark_cluster")
    settings = dataclasses.replace(config.Settings.from_env(), home=home)
    started = time.monotonic()
    try:
        status = start_cluster(ClusterSpec(workers=1, cores=WORKER_CORES, memory=WORKER_MEMORY,
                                           work_dir=home / "work"), settings)
        cluster = SparkCluster(status.master_url, status.web_ui, WORKER_CORES, settings, time.monotonic() - started)
        print(f"spark cluster {status.master_url}: {status.alive_workers} worker in {cluster.start_seconds:.1f} s")
        yield cluster
    finally:
        stop_cluster(settings)
