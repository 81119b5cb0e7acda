"""databricks.yml, offline: every job, with each target's variables put in, is accepted by Databricks' own models of
the bundle schema (databricks-bundles: unknown fields and wrong types are refused); every entry point in jobs/ has
its job; the continuous jobs run the always-on pipeline's stages with `lakehouse pipeline start`'s arguments."""

from __future__ import annotations

import re

import pytest
import yaml
from databricks.bundles.jobs import Job

from lakehouse.config import REPO_ROOT
from lakehouse.jobs_registry import job_names
from lakehouse.pipeline import STAGES

BUNDLE = yaml.safe_load((REPO_ROOT / "databricks.yml").read_text())
TARGETS = sorted(BUNDLE["targets"])
REFERENCE = re.compile(r"\$\{([a-z_.]+)\}")


def _resolved(target: str) -> dict:
    """The bundle's jobs with `${var.*}` and `${bundle.*}` put in as `target` sets them; an unknown reference or
    a variable without a value is an error."""
    values = {f"var.{name}": spec.get("default") for name, spec in BUNDLE["variables"].items()}
    values |= {f"var.{k}": v for k, v in BUNDLE["targets"][target].get("variables", {}).items()}
    values |= {"bundle.name": BUNDLE["bundle"]["name"], "bundle.target": target}

    def put(value):  # noqa: ANN001, ANN202 - YAML values
        if isinstance(value, dict):
            return {k: put(v) for k, v in value.items()}
        if isinstance(value, list):
            return [put(v) for v in value]
        if isinstance(value, str):
            for ref in REFERENCE.findall(value):
                assert values.get(ref) is not None, f"{target}: ${{{ref}}} has no value"
            return REFERENCE.sub(lambda m: str(values[m.group(1)]), value)
        return value

    return put(BUNDLE["resources"]["jobs"])


def test_the_bundle_has_a_dev_and_a_prod_target_and_builds_the_wheel():
    assert set(BUNDLE) == {"bundle", "artifacts", "variables", "resources", "targets"}
    assert TARGETS == ["dev", "prod"]
    assert BUNDLE["targets"]["dev"]["mode"] == "development" and BUNDLE["targets"]["dev"]["default"] is True
    assert BUNDLE["targets"]["prod"]["mode"] == "production"
    assert BUNDLE["artifacts"]["lakehouse"]["build"] == "python -m pip wheel --no-deps -w dist ."


@pytest.mark.parametrize("target", TARGETS)
def test_every_job_is_valid_against_the_bundle_models(target):
    for key, job in _resolved(target).items():
        model = Job.from_dict(job)  # raises on an unknown field or a wrong type
        assert model.name == f"lakehouse {key}" or model.name.startswith(f"lakehouse {key} (")
        assert all(t.libraries[0].whl == "./dist/*.whl" for t in model.tasks)


def test_every_entry_point_has_a_job_and_every_job_file_exists():
    files = {t["spark_python_task"]["python_file"] for job in BUNDLE["resources"]["jobs"].values()
             for t in job["tasks"]}
    assert files == {f"jobs/{name}.py" for name in job_names()}
    assert all((REPO_ROOT / f).is_file() for f in files)


def test_the_continuous_jobs_are_the_pipeline_stages_with_its_arguments():
    jobs = BUNDLE["resources"]["jobs"]
    continuous = {k for k, job in jobs.items() if "continuous" in job}
    assert continuous == set(STAGES)
    for name, stage in STAGES.items():
        (task,) = jobs[name]["tasks"]
        assert task["spark_python_task"]["parameters"] == stage.args(5.0, ""), name


def test_targets_point_the_clusters_at_their_own_tables_and_brokers():
    env = {t: _resolved(t)["gold_commerce"]["job_clusters"][0]["new_cluster"]["spark_env_vars"] for t in TARGETS}
    assert env["dev"]["LAKEHOUSE_TABLES_ROOT"] == "s3://lakehouse-dev/tables"
    assert env["prod"]["LAKEHOUSE_TABLES_ROOT"] == "s3://lakehouse-prod/tables"
    assert env["prod"]["LAKEHOUSE_KAFKA_BOOTSTRAP"].count(",") == 1
    assert _resolved("prod")["gold_commerce"]["job_clusters"][0]["new_cluster"]["node_type_id"] == "m5d.2xlarge"
