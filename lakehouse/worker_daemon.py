"""Spark's Python worker daemon for the embedded default (`spark.python.daemon.module`), with the libraries
tasks use imported once, before it forks workers.

Spark forks every Python worker from this daemon; with the stock daemon each new worker imports pyarrow and
pandas itself (0.5-1 s per worker, paid by the first job of every Python UDF, today the MLflow models' scoring). Importing creates no threads in these libraries (their thread
pools start on first use), so forking afterwards is safe. A module that fails to import is skipped: the worker
then imports it itself, with the same error it would have had anyway.
"""

from __future__ import annotations

import contextlib
import importlib

PRELOAD = ("pyarrow", "pyarrow.compute", "pandas", "pyspark.worker")  # the MLflow model UDFs' workers


def preload() -> None:
    for name in PRELOAD:
        with contextlib.suppress(Exception):  # the worker reports it when it needs the module
            importlib.import_module(name)


if __name__ == "__main__":
    preload()
    from pyspark import daemon

    daemon.manager()
