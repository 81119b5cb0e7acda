"""Small JVM modules of the project (infra/<module>/src/main/{java,resources}), compiled with the JDK's
`javac` against pyspark's own jars (no Maven) into a jar under $LAKEHOUSE_HOME/build, rebuilt only when a
source file is newer than the jar."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from lakehouse.errors import LakehouseError

log = logging.getLogger(__name__)
JAVA_RELEASE = "17"


def pyspark_jars_dir() -> Path:
    """The directory holding Spark's jars: $SPARK_HOME/jars (spark-submit sets it; there pyspark is imported
    from a zip) or the installed pyspark package's jars."""
    import pyspark

    candidates = [Path(os.environ["SPARK_HOME"]) / "jars"] if os.environ.get("SPARK_HOME") else []
    candidates.append(Path(pyspark.__file__).resolve().parent / "jars")
    for jars in candidates:
        if any(jars.glob("spark-core_*.jar")):
            return jars
    raise LakehouseError(f"Spark's jars not found in {', '.join(map(str, candidates))}")


def javac() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "javac").is_file():
        return str(Path(java_home) / "bin" / "javac")
    return shutil.which("javac")


def source_files(module_root: Path) -> list[Path]:
    files: list[Path] = []
    for root in (module_root / "src" / "main" / "java", module_root / "src" / "main" / "resources"):
        if root.is_dir():
            files += [p for p in root.rglob("*") if p.is_file()]
    return sorted(files)


def jar_is_current(jar: Path, sources: list[Path]) -> bool:
    """True when `jar` exists and no source file is newer than it."""
    if not jar.is_file():
        return False
    built = jar.stat().st_mtime
    return all(src.stat().st_mtime <= built for src in sources)


def build_jar(module_root: Path, target: Path, what: str) -> Path:
    """Compile the module's Java sources against pyspark's jars and write the jar to `target` (atomically)."""
    java_files = [str(p) for p in source_files(module_root) if p.suffix == ".java"]
    if not java_files:
        raise LakehouseError(f"no Java sources for the {what} under {module_root}")
    compiler = javac()
    if compiler is None:
        raise LakehouseError(
            f"javac (a JDK 17+) is needed to build the {what}: install openjdk-17-jdk-headless or set JAVA_HOME"
        )
    resources = module_root / "src" / "main" / "resources"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jar-build-", dir=target.parent) as tmp:
        classes = Path(tmp) / "classes"
        classes.mkdir()
        cmd = [compiler, "--release", JAVA_RELEASE, "-nowarn", "-encoding", "UTF-8",
               "-cp", str(pyspark_jars_dir() / "*"), "-d", str(classes), *java_files]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise LakehouseError(
                f"building the {what} failed (javac exit {proc.returncode}):\n{(proc.stderr or proc.stdout).strip()[-4000:]}"
            )
        partial = Path(tmp) / target.name
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: lakehouse\n\n")
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
            if resources.is_dir():
                for path in sorted(p for p in resources.rglob("*") if p.is_file()):
                    jar.write(path, path.relative_to(resources).as_posix())
        os.replace(partial, target)  # atomic: concurrent builders never expose a half-written jar
    log.info("built %s %s", what, target)
    return target


def ensure_jar(module_root: Path, target: Path, what: str) -> Path | None:
    """Return the module's jar, (re)building it when missing or older than its sources.

    Returns None (with a warning) only when neither the sources nor a built jar exist (an installed package
    without the repository). Raises LakehouseError when a build is needed but javac is missing or fails."""
    sources = source_files(module_root)
    if not sources:
        if target.is_file():
            return target
        log.warning("%s: sources (%s) and jar (%s) missing", what, module_root, target)
        return None
    if jar_is_current(target, sources):
        return target
    if target.is_file() and javac() is None:
        log.warning("%s sources changed but javac is missing: using the older %s", what, target)
        return target
    return build_jar(module_root, target, what)
