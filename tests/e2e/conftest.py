"""The e2e modules' shared Spark standalone cluster (a master and two 1-core workers, separate JVMs)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest

from lakehouse import config


@dataclasses.dataclass(frozen=True)
class SparkCluster:
    master_url: str
    settings: config.Settings  # its run dir holds the daemons' PID files
    start_seconds: float


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """Master + 2 workers (1 core, 1g each) on 127.0.0.1 for the session; stopped by PID at the end."""
    from lakehouse.services.spark_cluster import ClusterSpec, start_cluster, stop_cluster

    home = tmp_path_factory.mktemp("spark_cluster")
    settings = dataclasses.replace(config.Settings.from_env(), home=home)
    started = time.monotonic()
    status = start_cluster(ClusterSpec(workers=2, cores=1, memory="1g", work_dir=home / "work"), settings)
    cluster = SparkCluster(status.master_url, settings, time.monotonic() - started)
    print(f"spark cluster {status.master_url}: {status.alive_workers} workers in {cluster.start_seconds:.1f} s")
    try:
        yield cluster
    finally:
        stop_cluster(settings)
