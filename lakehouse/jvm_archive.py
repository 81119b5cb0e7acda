"""Class-data sharing (CDS) archives of this machine's JVMs: the classes a JVM loads, parsed and verified once,
then mapped by every later start of the same JDK with the same jars.

Two archives live next to the pinned jars (`$LAKEHOUSE_JARS`), each named by a stamp of the JDK and its jars, so
a new JDK or jar set gets a new name and a stale archive is simply not found:
- the Kafka broker's (`kafka-broker-<stamp>.jsa`), dumped by the broker's first run (lakehouse.services.broker);
- the local Spark driver's (`spark-driver-<stamp>.jsa`), built by `make` (`python -m lakehouse.jvm_archive`):
  a session started, a Delta table written, merged, read and its history listed, in a throwaway home.
  Measured on 2 cores, a session's start and first query: ~20 CPU-s without it, ~11 with it; the suite starts
  a local driver for every job process it runs. Jobs submitted to a master of this machine (the pipeline's
  stages, `lakehouse submit`) map it too: lakehouse.submit gives their driver the same class path; a run of
  silver_events with nothing to do took 47.9 -> 38.7 CPU-s and 32.5 -> 25.5 s with it (2 runs each).
A missing or mismatched archive is never an error: the JVM starts without it (`-Xshare:auto`, logging off).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

QUIET = "-Xlog:cds*=off"  # a dump lists every class it cannot archive; a mismatched archive is just not used
DUMP = "-XX:ArchiveClassesAtExit="
DRIVER = "spark-driver"
BUILD_TIMEOUT_S = 600


def archive_path(name: str, java: str, jars: Iterable[Path]) -> Path:
    """`<jars root>/<name>-<stamp>.jsa`, the stamp over the JDK's real path and each jar's name, size and mtime."""
    from lakehouse.jars import jars_root

    stamp = hashlib.sha256(os.path.realpath(java).encode())
    for jar in jars:
        st = jar.stat()
        stamp.update(f"{jar.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return jars_root() / f"{name}-{stamp.hexdigest()[:16]}.jsa"


def share_options(archive: Path) -> list[str]:
    """JVM options that map `archive`, none when it does not exist."""
    return [QUIET, f"-XX:SharedArchiveFile={archive}"] if archive.is_file() else []


def dump_file(archive: Path) -> Path:
    """A private file a JVM dumps `archive` into at its exit (`publish` moves it into place)."""
    return archive.with_name(f"{archive.stem}.{uuid.uuid4().hex[:8]}.tmp")


def dump_options(dump: Path) -> list[str]:
    return [QUIET, f"{DUMP}{dump}"]


def dumps_in(argv: Iterable[str]) -> list[Path]:
    """The dump files named in a JVM's command line."""
    return [Path(a[len(DUMP):]) for a in argv if a.startswith(DUMP)]


def publish(dump: Path) -> Path | None:
    """Move a finished dump to its archive name (unless one is already there), drop the archives of earlier jar
    sets or JDKs of the same name, and remove the dump; returns the archive when there is one."""
    final = dump.with_name(dump.name.split(".", 1)[0] + ".jsa")
    kind = final.stem.rsplit("-", 1)[0]
    if dump.is_file() and dump.stat().st_size and not final.exists():
        os.replace(dump, final)
        for stale in final.parent.glob(f"{kind}-*.jsa"):
            if stale != final:
                stale.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        dump.unlink()
    return final if final.is_file() else None


def driver_archive() -> Path:
    """The local Spark driver's archive for this JDK, Spark's own jars and the pinned jars."""
    from lakehouse.jars import pyspark_jars_dir, spark_jars
    from lakehouse.services.process import java_executable

    return archive_path(DRIVER, java_executable(), [*sorted(pyspark_jars_dir().glob("*.jar")), *spark_jars()])


def _workload(dump: Path) -> None:
    """In a child process: a local session dumping its classes to `dump` at exit, doing what jobs do."""
    from lakehouse.config import get_settings
    from lakehouse.services import metastore
    from lakehouse.spark import local_builder
    from lakehouse.tables import MergeSpec, get_tables

    settings = get_settings()
    db = metastore.ensure_running(settings)
    spark = local_builder("jvm-archive", settings, db, archive_dump=dump).getOrCreate()
    metastore.ensure_schema(spark, db)
    tables = get_tables(spark, settings)
    rows = spark.createDataFrame([(1, "a", 1.5), (2, "b", 2.5)], "id long, name string, amount double")
    tables.write_batch(rows, "bronze.jvm_archive", "jvm_archive", 0, partition_by=["name"])
    tables.merge(rows.withColumn("amount", rows.amount * 2), "bronze.jvm_archive", MergeSpec(on="t.id = s.id"),
                 "jvm_archive", 1)
    tables.read("bronze.jvm_archive").groupBy("name").sum("amount").collect()
    tables.history("bronze.jvm_archive")
    print(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid(), flush=True)  # noqa: SLF001
    spark.stop()


def _exited(pid: int, timeout: float) -> bool:
    from lakehouse.services.process import pid_alive

    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def build_driver_archive() -> Path | None:
    """Build the driver's archive unless it exists (idempotent); None when the jars folder is read-only."""
    archive = driver_archive()
    if archive.is_file():
        return archive
    if not os.access(archive.parent, os.W_OK):
        return None
    from lakehouse.services.process import free_port

    dump = dump_file(archive)
    home = Path(tempfile.mkdtemp(prefix="lakehouse-jvm-archive-"))
    home.chmod(0o755)
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_PG_PORT": str(free_port())}
    env.pop("LAKEHOUSE_METASTORE_URL", None)
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "lakehouse.jvm_archive", "--workload", str(dump)], env=env,
                              capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"the archive's workload exited {done.returncode}:\n{done.stderr[-3000:]}")
        jvm = int(done.stdout.split()[-1])
        if not _exited(jvm, timeout=120):  # the JVM dumps after its Python left; a dump still written is dropped
            raise RuntimeError(f"the workload's JVM (pid {jvm}) was still dumping after 120 s")
        built = publish(dump)
        print(f"JVM class archive of the local Spark driver: {built} ({time.monotonic() - started:.0f} s)")
        return built
    finally:
        with contextlib.suppress(OSError):
            dump.unlink()
        subprocess.run([sys.executable, "-m", "lakehouse.cli", "services", "stop"], env=env,
                       capture_output=True, timeout=120)
        _destroy_metastore_cluster(home)
        shutil.rmtree(home, ignore_errors=True)


def _destroy_metastore_cluster(home: Path) -> None:
    """Delete the PostgreSQL cluster the workload's home had (it lives outside the home, under the runtime dir)."""
    from dataclasses import replace

    from lakehouse.config import get_settings
    from lakehouse.services import postgres

    postgres.destroy(postgres.pg_config(replace(get_settings(), home=home)))


def main() -> None:
    parser = argparse.ArgumentParser(description="build the local Spark driver's class-data sharing archive")
    parser.add_argument("--workload", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        _workload(args.workload)
        return
    try:
        build_driver_archive()
    except Exception as exc:  # noqa: BLE001 - an archive only makes starts cheaper: say why, and go on without
        print(f"warning: no JVM class archive for the local Spark driver (jobs start without it): {exc}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
