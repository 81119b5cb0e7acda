"""Jobs by name: every module in the top-level `jobs/` package with a `main(argv)`."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence

from lakehouse.errors import LakehouseError
from lakehouse.job import run_job_main


def job_names() -> list[str]:
    import jobs

    return sorted(m.name for m in pkgutil.iter_modules(jobs.__path__) if not m.name.startswith("_"))


def run_job(name: str, argv: Sequence[str]) -> None:
    names = job_names()
    if name not in names:
        raise LakehouseError(f"unknown job {name!r}; jobs are: {', '.join(names)}")
    module = importlib.import_module(f"jobs.{name}")
    program, sys.argv[0] = sys.argv[0], f"lakehouse run {name}"  # argparse's usage line names the job
    try:
        run_job_main(module.main, list(argv))
    finally:
        sys.argv[0] = program
