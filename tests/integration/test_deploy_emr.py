"""`lakehouse deploy emr` against moto's EMR and S3 APIs (a moto server on the loopback), and the bootstrap
script it uploads run on what it uploaded: the steps' launcher it writes runs the project's CLI with the
deployment's environment."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest

from lakehouse.config import REPO_ROOT
from lakehouse.deploy.emr import LAUNCHER
from lakehouse.jars import spark_jars
from lakehouse.pipeline import STAGES

BUCKET, KAFKA = "lakehouse-deploy", "b-1.msk.example:9092"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}


@pytest.fixture(scope="module")
def aws():
    from moto.server import ThreadedMotoServer

    from lakehouse.services.process import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    previous = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    yield endpoint
    server.stop()
    for k, v in previous.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _deploy(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "deploy", "emr", "--bucket", BUCKET, "--region", "eu-west-1",
         "--endpoint-url", endpoint, *args], cwd=REPO_ROOT, env={**os.environ, **AWS_ENV}, capture_output=True,
        text=True, timeout=900)


@pytest.fixture(scope="module")
def deployed(aws):
    done = _deploy(aws, "--kafka-bootstrap", KAFKA, "--job", "dbt_marts")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    emr = boto3.client("emr", endpoint_url=aws)
    (cluster,) = emr.list_clusters()["Clusters"]
    return aws, emr, cluster["Id"], done.stdout


def test_the_wheel_jars_and_bootstrap_are_uploaded(deployed):
    endpoint, _, _, _ = deployed
    keys = sorted(o["Key"] for o in boto3.client("s3", endpoint_url=endpoint).list_objects_v2(
        Bucket=BUCKET, Prefix="lakehouse/")["Contents"])
    assert sorted(k for k in keys if k.startswith("lakehouse/jars/")) == sorted(
        f"lakehouse/jars/{p.name}" for p in spark_jars())
    assert "lakehouse/bootstrap.sh" in keys and "lakehouse/jars/delta-spark_4.1_2.13-4.4.0.jar" in keys
    (wheel,) = [k for k in keys if k.startswith("lakehouse/wheel/")]
    assert wheel.startswith("lakehouse/wheel/ecommerce_lakehouse-") and wheel.endswith(".whl")
    assert len(keys) == len(spark_jars()) + 2


def test_the_cluster_runs_the_bootstrap_and_one_step_per_stage(deployed):
    _, emr, cluster, out = deployed
    described = emr.describe_cluster(ClusterId=cluster)["Cluster"]
    assert described["ReleaseLabel"] == "emr-7.5.0" and described["StepConcurrencyLevel"] == len(STAGES) + 1
    (action,) = emr.list_bootstrap_actions(ClusterId=cluster)["BootstrapActions"]
    assert action["ScriptPath"] == f"s3://{BUCKET}/lakehouse/bootstrap.sh"
    assert action["Args"] == [f"s3://{BUCKET}/lakehouse", f"s3a://{BUCKET}/lakehouse/tables", KAFKA]
    steps = {s["Name"]: s for s in emr.list_steps(ClusterId=cluster)["Steps"]}
    assert sorted(steps) == sorted([f"lakehouse {name}" for name in STAGES] + ["lakehouse dbt_marts"])
    assert steps["lakehouse bronze_events"]["Config"]["Args"] == [
        LAUNCHER, "submit", "--master", "yarn", "bronze_events", "--", "--family", "all", "--trigger", "continuous",
        "--interval", "5 seconds"]
    assert steps["lakehouse dbt_marts"]["Config"]["Args"] == [LAUNCHER, "submit", "--master", "yarn", "dbt_marts",
                                                              "--"]
    assert all(s["ActionOnFailure"] == "CONTINUE" and s["Config"]["Jar"] == "command-runner.jar"
               for s in steps.values())
    assert out.startswith(f"EMR cluster {cluster}: {len(STAGES) + 1} steps")


def test_a_deployment_to_an_existing_cluster_adds_steps_and_bad_input_is_refused(deployed):
    endpoint, emr, cluster, _ = deployed
    again = _deploy(endpoint, "--kafka-bootstrap", KAFKA, "--cluster-id", cluster, "--job", "no_such_job")
    assert again.returncode == 2
    assert "error: unknown job 'no_such_job'; jobs are: backfill, bronze_cdc" in again.stderr
    missing = _deploy(endpoint)
    assert missing.returncode == 2 and "the following arguments are required: --kafka-bootstrap" in missing.stderr
    assert len(emr.list_clusters()["Clusters"]) == 1


def test_the_bootstrap_installs_what_was_uploaded_and_its_launcher_runs_the_cli(deployed, tmp_path):
    """bootstrap.sh with `aws s3 cp` served by the moto server, `sudo` as a no-op prefix and `pip install`
    recorded: the jars and the wheel land where the launcher points, and the launcher runs `lakehouse jobs`."""
    endpoint, _, _, _ = deployed
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "sudo").write_text('#!/bin/bash\nexec "$@"\n')
    (stubs / "aws").write_text(f"""#!{sys.executable}
import sys, pathlib, boto3
src, dst = [a for a in sys.argv[1:] if not a.startswith("--")][2:]
bucket, prefix = src.removeprefix("s3://").split("/", 1)
s3 = boto3.client("s3", endpoint_url="{endpoint}")
for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
    target = pathlib.Path(dst, o["Key"][len(prefix):])
    target.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(bucket, o["Key"], str(target))
""")
    (stubs / "python3").write_text(f"""#!/bin/bash
if [ "$1 $2" = "-m pip" ]; then echo "$@" >> {tmp_path}/pip.log; exit 0; fi
exec {sys.executable} "$@"
""")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    root, bin_dir = tmp_path / "opt", tmp_path / "bin"
    bin_dir.mkdir()
    env = {**os.environ, **AWS_ENV, "PATH": f"{stubs}:{os.environ['PATH']}", "LAKEHOUSE_EMR_ROOT": str(root),
           "LAKEHOUSE_EMR_BIN": str(bin_dir)}
    boot = subprocess.run(["bash", str(REPO_ROOT / "infra" / "emr" / "bootstrap.sh"), f"s3://{BUCKET}/lakehouse",
                           f"s3a://{BUCKET}/lakehouse/tables", KAFKA], env=env, capture_output=True, text=True,
                          timeout=300)
    assert boot.returncode == 0, boot.stderr
    assert sorted(p.name for p in (root / "jars" / "spark").iterdir()) == sorted(p.name for p in spark_jars())
    (wheel,) = (root / "wheel").glob("ecommerce_lakehouse-*.whl")
    assert (tmp_path / "pip.log").read_text().split() == ["-m", "pip", "install", "--quiet", str(wheel)]
    probe = ("from lakehouse.config import get_settings as g; from lakehouse.jars import spark_jars as j; "
             "s = g(); print(s.tables_root, s.kafka_bootstrap, j()[0].parent)")
    launched = subprocess.run([str(bin_dir / LAUNCHER), "jobs"], env=env, capture_output=True, text=True,
                              cwd=REPO_ROOT, timeout=120)
    assert launched.returncode == 0 and "silver_cdc" in launched.stdout.split(), launched.stderr
    settings = subprocess.run(["bash", "-c", f'source <(grep ^export "{bin_dir / LAUNCHER}"); '
                               f'python3 -c "{probe}"'], env=env, capture_output=True, text=True, timeout=60)
    assert settings.stdout.split() == [f"s3a://{BUCKET}/lakehouse/tables", KAFKA, str(root / "jars" / "spark")], \
        settings.stderr
