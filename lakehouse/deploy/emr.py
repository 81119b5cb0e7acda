"""`lakehouse deploy emr`: the platform on Amazon EMR, submitted with boto3.

What it does, in order:
1. builds the wheel (`pip wheel --no-deps`, the package users install) and uploads it, the pinned jars of
   `make jars` (Delta Lake, Spark's Kafka connector, hadoop-aws: nothing is fetched from Maven on the cluster) and
   the bootstrap script (`infra/emr/bootstrap.sh`) under `s3://<bucket>/<prefix>/`;
2. creates a cluster (`run_job_flow`: the bootstrap action on every node, step concurrency for the streaming
   stages) or uses `--cluster-id`'s;
3. adds one step per stage of the always-on pipeline (lakehouse.pipeline.STAGES, with the same continuous
   arguments as `lakehouse pipeline start`) and one per `--job` (a batch job, run once): each step is
   `lakehouse-emr submit --master yarn <job> -- <args>` through `command-runner.jar`, the project's own
   spark-submit (lakehouse.submit) with the deployment's environment the bootstrap wrote.
The driver of each step runs on the primary node (client mode), so the primary node needs memory for the six
stage drivers (2 GB heap each by default). Tables live under `--tables-root` (an `s3a://` URI).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.config import REPO_ROOT
from lakehouse.errors import LakehouseError

BOOTSTRAP = REPO_ROOT / "infra" / "emr" / "bootstrap.sh"
LAUNCHER = "lakehouse-emr"  # written by the bootstrap on every node
DEFAULT_RELEASE = "emr-7.5.0"


@dataclass(frozen=True)
class EmrDeployment:
    """Where the deployment goes and what it runs."""

    bucket: str
    prefix: str = "lakehouse"
    region: str = "us-east-1"
    kafka_bootstrap: str = ""
    tables_root: str = ""  # default s3a://<bucket>/<prefix>/tables
    cluster_id: str | None = None  # None: create one
    name: str = "lakehouse"
    release_label: str = DEFAULT_RELEASE
    instance_type: str = "m5.2xlarge"
    core_instances: int = 2
    every_s: float = 5.0
    jobs: tuple[str, ...] = ()  # batch jobs run once after the stages start
    endpoint_url: str | None = None  # an AWS-compatible endpoint (tests: moto)
    extra_tags: dict[str, str] = field(default_factory=dict)

    @property
    def s3_prefix(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.strip('/')}"

    @property
    def tables(self) -> str:
        return self.tables_root or f"s3a://{self.bucket}/{self.prefix.strip('/')}/tables"


def stage_steps(deployment: EmrDeployment) -> list[dict]:
    """The EMR steps: one per pipeline stage (continuous) and one per batch job."""
    from lakehouse.jobs_registry import job_names
    from lakehouse.pipeline import STAGES

    unknown = [j for j in deployment.jobs if j not in job_names()]
    if unknown:
        raise LakehouseError(f"unknown job {unknown[0]!r}; jobs are: {', '.join(job_names())}")
    runs = [(stage.name, stage.args(deployment.every_s, "")) for stage in STAGES.values()]
    runs += [(job, []) for job in deployment.jobs]
    return [{
        "Name": f"lakehouse {name}",
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar",
                          "Args": [LAUNCHER, "submit", "--master", "yarn", name, "--", *args]},
    } for name, args in runs]


def build_wheel(dist: Path) -> Path:
    """`pip wheel --no-deps` of the checkout into `dist`; returns the wheel."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(dist), str(REPO_ROOT)], capture_output=True, text=True,
                          timeout=600)
    wheels = sorted(dist.glob("ecommerce_lakehouse-*.whl"))
    if done.returncode or not wheels:
        raise LakehouseError(f"pip wheel failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return wheels[-1]


def _client(deployment: EmrDeployment, service: str):  # noqa: ANN202 - a boto3 client
    import boto3

    return boto3.client(service, region_name=deployment.region, endpoint_url=deployment.endpoint_url)


def upload(deployment: EmrDeployment, wheel: Path) -> list[str]:
    """The wheel, the pinned jars and the bootstrap script under the deployment's prefix; returns the keys."""
    from lakehouse.jars import spark_jars

    s3, key_prefix = _client(deployment, "s3"), deployment.prefix.strip("/")
    files = [(wheel, f"wheel/{wheel.name}"), (BOOTSTRAP, "bootstrap.sh"),
             *((jar, f"jars/{jar.name}") for jar in spark_jars())]
    keys = []
    for path, key in files:
        s3.upload_file(str(path), deployment.bucket, f"{key_prefix}/{key}")
        keys.append(f"{key_prefix}/{key}")
    return keys


def _create_cluster(deployment: EmrDeployment, steps: int) -> str:
    emr = _client(deployment, "emr")
    done = emr.run_job_flow(
        Name=deployment.name,
        ReleaseLabel=deployment.release_label,
        Applications=[{"Name": "Hadoop"}, {"Name": "Spark"}],
        LogUri=f"{deployment.s3_prefix}/logs/",
        Instances={
            "InstanceGroups": [
                {"Name": "primary", "InstanceRole": "MASTER", "InstanceType": deployment.instance_type,
                 "InstanceCount": 1},
                {"Name": "core", "InstanceRole": "CORE", "InstanceType": deployment.instance_type,
                 "InstanceCount": deployment.core_instances},
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        BootstrapActions=[{"Name": "lakehouse", "ScriptBootstrapAction": {
            "Path": f"{deployment.s3_prefix}/bootstrap.sh",
            "Args": [deployment.s3_prefix, deployment.tables, deployment.kafka_bootstrap]}}],
        StepConcurrencyLevel=steps,  # the streaming stages never end: each needs a slot of its own
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        VisibleToAllUsers=True,
        Tags=[{"Key": k, "Value": v} for k, v in {"app": "lakehouse", **deployment.extra_tags}.items()],
    )
    return done["JobFlowId"]


@dataclass(frozen=True)
class Deployed:
    cluster_id: str
    step_ids: list[str]
    uploaded: list[str]


def deploy_emr(deployment: EmrDeployment, wheel: Path | None = None) -> Deployed:
    """Upload, create the cluster (or use the given one), add the steps; see the module's docstring."""
    if not deployment.kafka_bootstrap:
        raise LakehouseError("the Kafka bootstrap servers the cluster reads (--kafka-bootstrap) are required")
    steps = stage_steps(deployment)
    with tempfile.TemporaryDirectory(prefix="lakehouse-wheel-") as dist:
        uploaded = upload(deployment, wheel or build_wheel(Path(dist)))
    cluster = deployment.cluster_id or _create_cluster(deployment, len(steps))
    step_ids = _client(deployment, "emr").add_job_flow_steps(JobFlowId=cluster, Steps=steps)["StepIds"]
    return Deployed(cluster, step_ids, uploaded)
