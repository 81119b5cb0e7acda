"""The Superset asset bundle in infra/superset/assets: every reference resolves (dashboard -> charts -> datasets ->
the database) and the SQL endpoint's port and the BI account's credentials (URL-quoted) are filled in at import."""

from __future__ import annotations

import dataclasses
import io
import zipfile

import yaml

from lakehouse.config import Settings
from lakehouse.governance.accounts import Credentials
from lakehouse.services.superset import DASHBOARD_SLUG, asset_bundle


def _bundle(settings: Settings) -> dict[str, dict]:
    login = Credentials("bi", "p@ss:w/rd")
    with zipfile.ZipFile(io.BytesIO(asset_bundle(settings, login))) as bundle:
        return {name: yaml.safe_load(bundle.read(name)) for name in bundle.namelist()}


def test_the_bundle_points_at_this_homes_sql_endpoint_and_every_reference_resolves(tmp_path):
    settings = dataclasses.replace(Settings.from_env(), home=tmp_path, sql_port=23456)
    files = _bundle(settings)
    assert files["lakehouse_bi/metadata.yaml"]["type"] == "Dashboard"
    (database,) = [f for n, f in files.items() if "/databases/" in n]
    assert database["sqlalchemy_uri"] == "hive://bi:p%40ss%3Aw%2Frd@127.0.0.1:23456/default?auth=CUSTOM"
    datasets = {f["uuid"]: f for n, f in files.items() if "/datasets/" in n}
    charts = {f["uuid"]: f for n, f in files.items() if "/charts/" in n}
    (dashboard,) = [f for n, f in files.items() if "/dashboards/" in n]
    assert dashboard["slug"] == DASHBOARD_SLUG
    assert {d["database_uuid"] for d in datasets.values()} == {database["uuid"]}
    assert {c["dataset_uuid"] for c in charts.values()} == set(datasets)
    placed = {p["meta"]["uuid"] for p in dashboard["position"].values()
              if isinstance(p, dict) and p.get("type") == "CHART"}
    assert placed == set(charts)
    for chart in charts.values():  # every metric and column a chart names is its dataset's
        dataset = datasets[chart["dataset_uuid"]]
        params = chart["params"]
        metrics = set(params.get("metrics", [])) | ({params["metric"]} if "metric" in params else set())
        assert metrics <= {m["metric_name"] for m in dataset["metrics"]}, chart["slice_name"]
        columns = set(params.get("groupby", [])) | set(params.get("all_columns", []))
        assert columns <= {c["column_name"] for c in dataset["columns"]}, chart["slice_name"]
