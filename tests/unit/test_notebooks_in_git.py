"""The analyst notebooks are kept in git without outputs (executed copies go under $LAKEHOUSE_HOME/notebooks), and
each ends with the `SUMMARY` line `lakehouse notebooks run` reads."""

from __future__ import annotations

import json

import pytest

from lakehouse.notebooks import NOTEBOOKS_DIR, SUMMARY_PREFIX, notebook_names

NAMES = notebook_names()


def test_the_five_analyst_notebooks_are_there():
    assert NAMES == ["customer_360_clv", "data_quality", "forecast_accuracy", "inventory_monitor", "sales_overview"]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_has_no_outputs_and_prints_its_summary_last(name):
    notebook = json.loads((NOTEBOOKS_DIR / f"{name}.ipynb").read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert [(c["outputs"], c["execution_count"]) for c in code] == [([], None)] * len(code)
    assert f'print("{SUMMARY_PREFIX}" + json.dumps(summary))' in "".join(code[-1]["source"])
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
