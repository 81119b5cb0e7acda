"""The JVM artifacts the embedded default runs on, fetched once by `make` (infra/maven/pom.xml pins them).

`$LAKEHOUSE_JARS` (default `.jars/` in the checkout) holds `spark/` (Delta Lake, Spark's Kafka connector and
token provider, the PostgreSQL JDBC driver) and `kafka-broker/` (the Apache Kafka broker's classpath). Nothing
is downloaded at run time: a missing folder is an error naming the set-up command.
"""

from __future__ import annotations

import os
from pathlib import Path

from lakehouse.config import REPO_ROOT
from lakehouse.errors import LakehouseError

POM = REPO_ROOT / "infra" / "maven" / "pom.xml"
FETCH_COMMAND = "make jars  (mvn -f infra/maven/pom.xml package; `make demo` and `make test` run it)"


def pyspark_jars_dir() -> Path:
    """Spark's own jars: $SPARK_HOME/jars (spark-submit sets it) or the installed pyspark package's."""
    import pyspark

    candidates = [Path(os.environ["SPARK_HOME"]) / "jars"] if os.environ.get("SPARK_HOME") else []
    candidates.append(Path(pyspark.__file__).resolve().parent / "jars")
    for jars in candidates:
        if any(jars.glob("spark-core_*.jar")):
            return jars
    raise LakehouseError(f"Spark's jars not found in {', '.join(map(str, candidates))}")


def jars_root() -> Path:
    return Path(os.environ.get("LAKEHOUSE_JARS") or REPO_ROOT / ".jars").expanduser().resolve()


def _jars(folder: str, must_have: str) -> list[Path]:
    root = jars_root() / folder
    found = sorted(root.glob("*.jar"))
    if not any(p.name.startswith(must_have) for p in found):
        raise LakehouseError(f"{must_have}*.jar not found in {root}: fetch the pinned jars with {FETCH_COMMAND}")
    return found


def spark_jars() -> list[Path]:
    """Jars added to every local Spark session (and passed to `spark-submit --jars`)."""
    jars = _jars("spark", "delta-spark_")
    for needed in ("spark-sql-kafka-0-10_", "postgresql-"):
        if not any(p.name.startswith(needed) for p in jars):
            raise LakehouseError(f"{needed}*.jar not found in {jars_root() / 'spark'}: run {FETCH_COMMAND}")
    return jars


def postgres_jdbc_jar() -> Path:
    return next(p for p in spark_jars() if p.name.startswith("postgresql-"))


def kafka_broker_classpath() -> str:
    """The broker's classpath (`java -cp <this> kafka.Kafka server.properties`)."""
    return str(jars_root() / "kafka-broker" / "*") if _jars("kafka-broker", "kafka_2.13-") else ""
