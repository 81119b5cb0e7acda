"""Shared fixtures: one Spark session and one $LAKEHOUSE_HOME per test session (Spark starts in ~10 s)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse import config


@pytest.fixture(scope="session")
def lakehouse_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An isolated $LAKEHOUSE_HOME for the whole test session (tables, checkpoints, metastore, MLflow)."""
    home = Path(os.environ.get("LAKEHOUSE_TEST_HOME") or tmp_path_factory.mktemp("lakehouse_home"))
    previous = os.environ.get("LAKEHOUSE_HOME")
    os.environ["LAKEHOUSE_HOME"] = str(home)
    config.reset_settings()
    yield home
    if previous is None:
        os.environ.pop("LAKEHOUSE_HOME", None)
    else:
        os.environ["LAKEHOUSE_HOME"] = previous
    config.reset_settings()


@pytest.fixture(scope="session")
def settings(lakehouse_home: Path) -> config.Settings:
    return config.get_settings()


@pytest.fixture(scope="session")
def spark(settings: config.Settings):
    """The one Spark session of the test process, built by the platform's own factory."""
    from lakehouse.spark import get_spark

    session = get_spark("lakehouse-tests", settings)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tables(spark, settings):
    from lakehouse.tables import get_tables

    return get_tables(spark, settings)


@pytest.fixture()
def table_name() -> str:
    """A fresh table name per test (tables share one home)."""
    return f"silver.t_{uuid.uuid4().hex[:10]}"
