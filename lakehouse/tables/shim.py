"""Build and locate the JVM catalog shim jar (infra/catalog-shim).

The shim registers the data source format `delta` with Spark and forwards every scan and write to the Python
data source `deltars` (delta-rs), adding the table location. It is only needed when the Delta Lake jars are
absent. It is compiled with the JDK's `javac` against pyspark's own jars (no Maven) into `settings.shim_jar`
(see lakehouse.jvm), and rebuilt only when a source file is newer than the jar.
"""

from __future__ import annotations

from pathlib import Path

from lakehouse.config import REPO_ROOT, Settings
from lakehouse.jvm import ensure_jar

SHIM_ROOT = REPO_ROOT / "infra" / "catalog-shim"


def ensure_shim_jar(settings: Settings) -> Path | None:
    """The shim jar, (re)built when missing or stale; None only without sources and jar (installed package)."""
    return ensure_jar(SHIM_ROOT, settings.shim_jar, "Delta catalog shim")
