"""The wheel carries its data folders and its jobs run from the installed package on the Spark cluster.

The wheel is built offline (`pip wheel --no-deps --no-build-isolation --no-index`) from a copy of the sources,
installed without dependencies into a fresh venv outside the checkout whose only view of the test venv is a
.pth line to its site-packages (the libraries, not the checkout: the editable install's own .pth is not read
there). The installed package finds its suites, schemas, dbt project, CDC table specs and log4j config inside
itself, and `lakehouse submit` of that venv runs bronze_events on the session's standalone cluster, driver and
executor on the venv's interpreter, from a working directory outside the checkout. (silver_events on the
cluster is test_commerce_model's; here it would double this module's minutes for what the probe already shows.)
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from pathlib import Path

import pytest
from deltalake import DeltaTable

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
    probe = ("import json, lakehouse, jobs; from lakehouse.quality.suites import EXPECTATIONS_DIR, load_suite; "
             "from lakehouse.events.schemas import SCHEMA_ROOT; from lakehouse.dbt import DBT_PROJECT_DIR; "
             "from lakehouse.cdc.specs import SPECS_DIR, load_specs; from lakehouse.spark import LOG4J_CONFIG; "
             "load_suite('silver.orders_events'); load_specs(); "
             "print(json.dumps([lakehouse.__file__, jobs.__file__, str(EXPECTATIONS_DIR), str(SCHEMA_ROOT), "
             "str(DBT_PROJECT_DIR / 'dbt_project.yml'), str(SPECS_DIR), str(LOG4J_CONFIG)]))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=_env(tmp_path),
                         check=True, capture_output=True, text=True).stdout
    paths = json.loads(out)
    assert all(p.startswith(str(venv)) and Path(p).exists() for p in paths), paths
    resources = [str(Path(p).relative_to(Path(paths[0]).parent)) for p in paths[2:]]
    assert resources == ["_resources/expectations", "_resources/schemas/events",
                         "_resources/dbt_project/dbt_project.yml", "cdc/tables", "_resources/infra/log4j2.properties"]


def test_a_job_of_the_installed_wheel_runs_on_the_cluster(venv, spark_cluster, broker, new_metastore, tmp_path):
    prefix = f"whl_{uuid.uuid4().hex[:6]}_"
    stream = generate_stream(StreamConfig(seed=5, rate=5, duration_s=20, families={"orders": 1.0},
                                          faults={"malformed_json": 0.05}, topic_prefix=prefix, start=DEFAULT_START))
    produce_stream(broker.bootstrap, stream, partitions=2)
    home = tmp_path / "home"
    env = _env(home, LAKEHOUSE_KAFKA_BOOTSTRAP=broker.bootstrap, LAKEHOUSE_METASTORE_URL=new_metastore().jdbc_url)
    argv = [str(venv / "bin" / "lakehouse"), "submit", "--master", spark_cluster.master_url, "bronze_events",
            "--family", "orders", "--topic-prefix", prefix]
    printed = subprocess.run([*argv[:2], "--print", *argv[2:]], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    job_file = shlex.split(printed.stdout)[-5]  # the installed package's job, run by the venv's interpreter
    assert job_file.startswith(str(venv)) and job_file.endswith("/jobs/bronze_events.py")
    assert f"spark.pyspark.python={venv / 'bin' / 'python'}" in shlex.split(printed.stdout)
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    (tmp_path / "bronze_events.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = stream.report.families["orders"]
    bronze = DeltaTable(str(home / "tables" / "bronze" / "orders_events")).to_pyarrow_table()
    dead = DeltaTable(str(home / "tables" / "bronze" / "dead_letter")).to_pyarrow_table()
    assert (bronze.num_rows, dead.num_rows) == (report.bronze, report.dead_letter["not_json"]) == (95, 5)
