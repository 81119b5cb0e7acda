"""The SQL endpoint's authorization layer and password authenticator (Scala, `infra/governance/jvm`), compiled with
the Scala compiler pyspark ships (its jars are the class path: nothing is downloaded) into
`$LAKEHOUSE_JARS/governance/lakehouse-governance-<sources hash>.jar`. `make` builds it at set-up; the endpoint
builds it on start when the sources changed since (about 15 s).

`python -m lakehouse.governance.jar` builds it (a no-op when up to date) and prints its path.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from lakehouse.config import REPO_ROOT
from lakehouse.errors import LakehouseError
from lakehouse.jars import jars_root, pyspark_jars_dir

SOURCES = REPO_ROOT / "infra" / "governance" / "jvm"
EXTENSION_CLASS = "lakehouse.governance.GovernanceExtension"
AUTHENTICATOR_CLASS = "lakehouse.governance.PasswordAuthenticator"
METADATA_AUTHORIZER_CLASS = "lakehouse.governance.MetadataAuthorizerFactory"


def _sources() -> list[Path]:
    return sorted(SOURCES.rglob("*.scala"))


def governance_jar() -> Path:
    """The jar of the current sources (it may not be built yet)."""
    digest = hashlib.sha256()
    for source in _sources():
        digest.update(source.relative_to(SOURCES).as_posix().encode() + b"\0" + source.read_bytes())
    return jars_root() / "governance" / f"lakehouse-governance-{digest.hexdigest()[:12]}.jar"


def ensure_governance_jar() -> Path:
    """Build the jar of the current sources when missing (older builds are removed)."""
    target = governance_jar()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="governance-", dir=target.parent) as work:
        classes = Path(work) / "classes"
        classes.mkdir()
        compile_cmd = ["java", "-Xmx1g", "-cp", str(pyspark_jars_dir() / "*"), "scala.tools.nsc.Main",
                       "-usejavacp", "-deprecation", "-Werror", "-d", str(classes), *map(str, _sources())]
        built = subprocess.run(compile_cmd, capture_output=True, text=True, check=False)
        if built.returncode != 0:
            raise LakehouseError(f"compiling {SOURCES} failed:\n{built.stdout[-4000:]}{built.stderr[-4000:]}")
        partial = Path(work) / target.name
        jarred = subprocess.run(["jar", "--create", "--file", str(partial), "-C", str(classes), "."],
                                capture_output=True, text=True, check=False)
        if jarred.returncode != 0:
            raise LakehouseError(f"jar failed: {jarred.stderr[-2000:]}")
        for old in target.parent.glob("lakehouse-governance-*.jar"):
            old.unlink()
        shutil.move(partial, target)
    return target


if __name__ == "__main__":
    print(ensure_governance_jar())
