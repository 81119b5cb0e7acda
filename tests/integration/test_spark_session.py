"""The local session's driver JVM as set-up leaves it."""

from __future__ import annotations

from pathlib import Path

from lakehouse import jvm_archive


def test_the_local_driver_maps_the_class_archive_set_up_built(spark) -> None:
    archive = jvm_archive.driver_archive()
    assert archive.is_file(), f"{archive} is missing: `make test` builds it (python -m lakehouse.jvm_archive)"
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()  # noqa: SLF001
    mapped = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if ".jsa" in line}
    assert str(archive) in mapped, f"the driver (pid {pid}) maps {sorted(mapped)}, not {archive}"
