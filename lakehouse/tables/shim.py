"""Build and locate the JVM catalog shim jar (infra/catalog-shim).

The shim registers the data source format `delta` with Spark and forwards every scan and write to the Python
data source `deltars` (delta-rs), adding the table location. It is only needed when the Delta Lake jars are
absent. It is compiled here, with the JDK's `javac` against pyspark's own jars (no Maven), into
`settings.shim_jar`, and rebuilt only when a source file is newer than the jar (a check of a few file times).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from lakehouse.config import REPO_ROOT, Settings
from lakehouse.errors import LakehouseError

log = logging.getLogger(__name__)

SHIM_ROOT = REPO_ROOT / "infra" / "catalog-shim"
JAVA_SOURCES = SHIM_ROOT / "src" / "main" / "java"
RESOURCES = SHIM_ROOT / "src" / "main" / "resources"
JAVA_RELEASE = "17"


def pyspark_jars_dir() -> Path:
    """The directory holding the jars of the installed pyspark (Spark's classpath)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "jars"


def _source_files() -> list[Path]:
    files: list[Path] = []
    for root in (JAVA_SOURCES, RESOURCES):
        if root.is_dir():
            files += [p for p in root.rglob("*") if p.is_file()]
    return sorted(files)


def _javac() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "javac").is_file():
        return str(Path(java_home) / "bin" / "javac")
    return shutil.which("javac")


def shim_is_current(jar: Path, sources: list[Path]) -> bool:
    """True when `jar` exists and no source file is newer than it."""
    if not jar.is_file():
        return False
    built = jar.stat().st_mtime
    return all(src.stat().st_mtime <= built for src in sources)


def build_shim_jar(target: Path) -> Path:
    """Compile the shim's Java sources against pyspark's jars and write the jar to `target` (atomically)."""
    sources = _source_files()
    java_files = [str(p) for p in sources if p.suffix == ".java"]
    if not java_files:
        raise LakehouseError(f"no Java sources for the Delta catalog shim under {JAVA_SOURCES}")
    javac = _javac()
    if javac is None:
        raise LakehouseError(
            "javac (a JDK 17+) is needed to build the Delta catalog shim for `USING delta` tables: install "
            "openjdk-17-jdk-headless or set JAVA_HOME; with the Delta Lake jars available, set "
            "LAKEHOUSE_DELTA_BACKEND=native instead"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shim-build-", dir=target.parent) as tmp:
        classes = Path(tmp) / "classes"
        classes.mkdir()
        cmd = [
            javac,
            "--release",
            JAVA_RELEASE,
            "-nowarn",
            "-encoding",
            "UTF-8",
            "-cp",
            str(pyspark_jars_dir() / "*"),
            "-d",
            str(classes),
            *java_files,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise LakehouseError(
                f"building the Delta catalog shim failed (javac exit {proc.returncode}):\n"
                f"{(proc.stderr or proc.stdout).strip()[-4000:]}"
            )
        partial = Path(tmp) / target.name
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: lakehouse\n\n")
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
            if RESOURCES.is_dir():
                for path in sorted(p for p in RESOURCES.rglob("*") if p.is_file()):
                    jar.write(path, path.relative_to(RESOURCES).as_posix())
        os.replace(partial, target)  # atomic: concurrent builders never expose a half-written jar
    log.info("built Delta catalog shim %s", target)
    return target


def ensure_shim_jar(settings: Settings) -> Path | None:
    """Return the shim jar, (re)building it when missing or older than its sources.

    Returns None (with a warning) only when neither the sources nor a built jar exist, e.g. in an installed
    package without the repository. Raises LakehouseError when a build is needed but `javac` is missing or fails.
    """
    jar = settings.shim_jar
    sources = _source_files()
    if not sources:
        if jar.is_file():
            return jar
        log.warning(
            "Delta catalog shim sources (%s) and jar (%s) missing: catalog tables unavailable", SHIM_ROOT, jar
        )
        return None
    if shim_is_current(jar, sources):
        return jar
    if jar.is_file() and _javac() is None:
        log.warning("Delta catalog shim sources changed but javac is missing: using the older %s", jar)
        return jar
    return build_shim_jar(jar)
