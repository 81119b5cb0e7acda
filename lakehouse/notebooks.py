"""Run the analyst notebooks (`notebooks/*.ipynb`) headless, each in its own Python kernel (nbclient).

An executed copy of each notebook, with its outputs and charts, is written under `$LAKEHOUSE_HOME/notebooks/`; the
notebooks in git keep no outputs. Each notebook's last cell prints one line `SUMMARY {json}` with its key numbers,
which `run_notebook` returns (the tests compare them with figures computed from the tables)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config import REPO_ROOT, Settings, get_settings
from lakehouse.errors import LakehouseError

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
SUMMARY_PREFIX = "SUMMARY "


@dataclass(frozen=True)
class NotebookRun:
    """An executed notebook: its key numbers, how many charts it drew, where the executed copy is."""

    name: str
    summary: dict
    charts: int
    output: Path


def notebook_names() -> list[str]:
    return sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb"))


def _stream_text(cell: dict) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def run_notebook(name: str, settings: Settings | None = None, timeout: int = 600) -> NotebookRun:
    """Execute `notebooks/<name>.ipynb` in a new kernel (cwd: notebooks/); a failing cell raises LakehouseError."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    settings = settings or get_settings()
    source = NOTEBOOKS_DIR / f"{name}.ipynb"
    if not source.is_file():
        raise LakehouseError(f"no notebook {name!r}; notebooks: {', '.join(notebook_names())}")
    notebook = nbformat.read(source, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    output = settings.home / "notebooks" / source.name
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        client.execute()
    except CellExecutionError as exc:
        raise LakehouseError(f"notebook {name} failed (executed copy {output}): {str(exc)[-2000:]}") from exc
    finally:
        nbformat.write(notebook, output)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    lines = [line for line in _stream_text(code_cells[-1]).splitlines() if line.startswith(SUMMARY_PREFIX)]
    if not lines:
        raise LakehouseError(f"notebook {name}: its last cell printed no `{SUMMARY_PREFIX.strip()}` line")
    charts = sum(1 for c in code_cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    return NotebookRun(name, json.loads(lines[-1][len(SUMMARY_PREFIX):]), charts, output)
