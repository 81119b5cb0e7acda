"""The wheel carries its data folders and its jobs run from the installed package on the Spark cluster.

The wheel is built offline (`pip wheel --no-deps --no-build-isolation --no-index`) from a copy of the sources,
installed without dependencies into a fresh venv outside the checkout whose only view of the test venv is a
.pth line to its site-packages (the libraries, not the checkout: the editable install's own .pth is not read
there). `lakehouse submit` of that venv then runs bronze_events and silver_events (which reads expectations/
and schemas/) on the session's standalone cluster, driver and executors on the venv's interpreter, from a
working directory outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from pathlib import Path

import pytest
from commerce_inputs import reference_tables
from deltalake import DeltaTable, write_deltalake

from lakehouse.config import REPO_ROOT
from lakehouse.events.generator import DEFAULT_START, StreamConfig, generate_stream, produce_stream

pytestmark = pytest.mark.e2e
DATA = ("expectations", "schemas", "dbt_project")


def _sources(dest: Path) -> Path:
    """The checkout's files (tracked and new, not ignored) copied to `dest`."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO_ROOT, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO_ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    src, dist = _sources(root / "src"), root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(dist), str(src)], check=True, capture_output=True, text=True, timeout=600)
    (built,) = dist.glob("ecommerce_lakehouse-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A venv with the wheel installed and the test venv's libraries reachable through a .pth line."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "test_venv_libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    return root


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    return {**env, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_JARS": str(REPO_ROOT / ".jars"), **extra}


def test_the_wheel_contains_the_data_folders(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for folder in DATA:
        checkout = sorted(str(p.relative_to(REPO_ROOT / folder)) for p in (REPO_ROOT / folder).rglob("*")
                          if p.is_file() and not {"target", "dbt_packages", "logs"} & set(p.parts))
        packaged = sorted(n.removeprefix(f"lakehouse/_resources/{folder}/") for n in names
                          if n.startswith(f"lakehouse/_resources/{folder}/"))
        assert packaged == checkout, folder
    assert "lakehouse/_resources/infra/log4j2.properties" in names


def test_the_installed_package_reads_its_own_data(venv, tmp_path):
    probe = ("import json, lakehouse, jobs; from lakehouse.resources import resource_path; "
             "from lakehouse.quality.suites import EXPECTATIONS_DIR; from lakehouse.events.schemas import SCHEMA_ROOT; "
             "print(json.dumps([lakehouse.__file__, jobs.__file__, str(EXPECTATIONS_DIR), str(SCHEMA_ROOT)]))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=_env(tmp_path),
                         check=True, capture_output=True, text=True).stdout
    paths = json.loads(out)
    assert all(p.startswith(str(venv)) for p in paths), paths
    assert paths[2].endswith("lakehouse/_resources/expectations")


def test_jobs_of_the_installed_wheel_run_on_the_cluster(venv, spark_cluster, broker, tmp_path):
    prefix = f"whl_{uuid.uuid4().hex[:6]}_"
    stream = generate_stream(StreamConfig(seed=5, rate=10, duration_s=20, families={"orders": 1.0}, faults={},
                                          topic_prefix=prefix, start=DEFAULT_START))
    produce_stream(broker.bootstrap, stream, partitions=2, config={"linger.ms": 0, "batch.num.messages": 1})
    home = tmp_path / "home"
    for name, rows in reference_tables(stream).items():  # the catalogue and FX rates silver checks against
        if name in ("silver.products", "silver.fx_rates_history"):
            write_deltalake(str(home / "tables" / name.replace(".", "/")), rows)
    env = _env(home, LAKEHOUSE_KAFKA_BOOTSTRAP=broker.bootstrap)
    lakehouse = str(venv / "bin" / "lakehouse")
    for job, args in (("bronze_events", ["--family", "orders", "--topic-prefix", prefix]),
                      ("silver_events", ["--family", "orders"])):
        done = subprocess.run([lakehouse, "submit", "--master", spark_cluster.master_url, job, *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=900)
        (tmp_path / f"{job}.log").write_text(done.stdout + done.stderr)
        assert done.returncode == 0, f"{job}: {(done.stdout + done.stderr)[-4000:]}"
    silver = DeltaTable(str(home / "tables" / "silver" / "orders_events")).to_pyarrow_table()
    assert silver.num_rows == stream.report.families["orders"].clean
    assert (home / "tables" / "ops" / "quality_validations").is_dir()  # the gates ran with the packaged suites
