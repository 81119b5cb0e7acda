"""A Spark standalone cluster on this machine: one master and N workers (default two with 1 core each), each its
own JVM, bound to 127.0.0.1.

The daemons run from the installed pyspark package (`java -cp <pyspark>/jars/* org.apache.spark.deploy...`,
what `spark-class` runs), are managed like every local service (lakehouse.services.process: PID files under
`settings.run_dir`, stopped by PID) and are small: 256 MB daemon heaps, `cores` and `memory` per worker for
executors. Jobs reach it with `spark-submit --master spark://127.0.0.1:<port>` (lakehouse.submit).
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config import Settings, get_settings
from lakehouse.errors import LakehouseError
from lakehouse.services import process

MASTER = "spark-master"
HOST = "127.0.0.1"
DAEMON_HEAP = "256m"


@dataclass(frozen=True)
class ClusterSpec:
    """Shape of the local cluster."""

    workers: int = 2
    cores: int = 1  # per worker
    memory: str = "1g"  # offered by each worker to executors
    master_port: int | None = None  # None: a free port
    work_dir: Path | None = None  # None: <home>/spark-cluster


@dataclass(frozen=True)
class ClusterStatus:
    """Where the running cluster listens and which daemons run."""

    master_url: str | None
    web_ui: str | None
    master_pid: int | None
    worker_pids: tuple[int, ...]
    alive_workers: int

    @property
    def running(self) -> bool:
        return self.master_pid is not None


def pyspark_home() -> Path:
    """The installed pyspark package: its `jars/` is Spark's classpath (SPARK_HOME for executor launches)."""
    import pyspark

    home = Path(pyspark.__file__).resolve().parent
    if not any((home / "jars").glob("spark-core_*.jar")):
        raise LakehouseError(f"Spark's jars not found in {home / 'jars'}")
    return home


def _daemon_argv(main_class: str, *args: str) -> list[str]:
    return [process.java_executable(), f"-Xmx{DAEMON_HEAP}", "-Duser.timezone=UTC", "-cp", f"{pyspark_home() / 'jars'}/*",
            main_class, *args]


def scala_version() -> str:
    """2.13 for spark-core_2.13-*.jar (load-spark-env.sh sets it for spark-class; workers need it to launch
    executors from a pip-installed Spark, which has no build directories to guess it from)."""
    core = next((pyspark_home() / "jars").glob("spark-core_*.jar"))
    return core.name.removeprefix("spark-core_").split("-", 1)[0]


def _env(work_dir: Path) -> dict[str, str]:
    return {"SPARK_HOME": str(pyspark_home()), "SPARK_SCALA_VERSION": scala_version(), "SPARK_LOCAL_IP": HOST,
            "SPARK_LOCAL_DIRS": str(work_dir / "tmp")}


def _master_properties(work_dir: Path) -> Path:
    """No REST submission server (it would take the fixed port 6066); jobs come through spark-submit's RPC."""
    path = work_dir / "master.properties"
    path.write_text("spark.master.rest.enabled false\n")
    return path


def master_state(web_ui: str, timeout: float = 2.0) -> dict:
    """The master's JSON status page (workers, applications)."""
    with urllib.request.urlopen(f"{web_ui}/json/", timeout=timeout) as response:  # noqa: S310 - local URL
        return json.loads(response.read())


def _alive_workers(web_ui: str) -> int:
    return sum(1 for w in master_state(web_ui).get("workers", []) if w.get("state") == "ALIVE")


def start_cluster(spec: ClusterSpec | None = None, settings: Settings | None = None,
                  timeout: float = 90.0) -> ClusterStatus:
    """Start the master, then the workers, and wait until every worker is registered (idempotent)."""
    spec, settings = spec or ClusterSpec(), settings or get_settings()
    current = cluster_status(settings)
    if current.running and current.alive_workers >= spec.workers:
        return current
    work_dir = (spec.work_dir or settings.home / "spark-cluster").resolve()
    (work_dir / "tmp").mkdir(parents=True, exist_ok=True)
    env = _env(work_dir)
    port = spec.master_port or process.free_port()
    ui_port = process.free_port()
    master = process.start(
        MASTER, _daemon_argv("org.apache.spark.deploy.master.Master", "--host", HOST, "--port", str(port),
                             "--webui-port", str(ui_port), "--properties-file", str(_master_properties(work_dir))),
        settings.logs / f"{MASTER}.log", lambda: process.port_in_use(port) and process.port_in_use(ui_port),
        timeout, port=port, env=env, cwd=work_dir, settings=settings,
        extra={"master_url": f"spark://{HOST}:{port}", "web_ui": f"http://{HOST}:{ui_port}"},
    )
    url, web_ui = master.info["master_url"], master.info["web_ui"]
    for n in range(1, spec.workers + 1):
        worker_dir = work_dir / f"worker-{n}"
        worker_dir.mkdir(parents=True, exist_ok=True)
        process.start(
            f"spark-worker-{n}",
            _daemon_argv("org.apache.spark.deploy.worker.Worker", "--host", HOST, "--cores", str(spec.cores),
                         "--memory", spec.memory, "--work-dir", str(worker_dir), "--webui-port", "0", url),
            settings.logs / f"spark-worker-{n}.log", None, timeout, env=env, cwd=worker_dir, settings=settings,
        )
    _wait_for_workers(web_ui, spec.workers, timeout)
    status = cluster_status(settings)
    if status.alive_workers < spec.workers:
        stop_cluster(settings)
        raise LakehouseError(f"{status.alive_workers} of {spec.workers} Spark workers registered within "
                             f"{timeout:.0f}s; see {settings.logs}/spark-*.log")
    return status


def _wait_for_workers(web_ui: str, workers: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _alive_workers(web_ui) >= workers:
                return
        except OSError:  # the master's web UI is still starting
            pass
        time.sleep(0.5)


def _worker_names(settings: Settings) -> list[str]:
    return sorted(p.stem for p in settings.run_dir.glob("spark-worker-*.pid"))


def cluster_status(settings: Settings | None = None) -> ClusterStatus:
    """What runs: the master's URL and web UI, the daemons' PIDs, the workers the master sees alive."""
    settings = settings or get_settings()
    master = process.status(MASTER, settings)
    workers = tuple(st.pid for n in _worker_names(settings) if (st := process.status(n, settings)).running and st.pid)
    if not master.running:
        return ClusterStatus(None, None, None, workers, 0)
    web_ui = master.info.get("web_ui")
    try:
        alive = _alive_workers(web_ui) if web_ui else 0
    except OSError:
        alive = 0
    return ClusterStatus(master.info.get("master_url"), web_ui, master.pid, workers, alive)


def stop_cluster(settings: Settings | None = None) -> bool:
    """Stop the workers, then the master, by PID; True when anything was running."""
    settings = settings or get_settings()
    stopped = [process.stop(name, settings=settings) for name in _worker_names(settings)]
    stopped.append(process.stop(MASTER, settings=settings))
    return any(stopped)
