"""`lakehouse services start` that fails half-way stops what it started itself, and only that."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.config import REPO_ROOT, Settings
from lakehouse.services import broker, postgres, process


def lakehouse(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lakehouse.cli", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300)


@pytest.fixture()
def home(tmp_path: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    """A home with free broker and PostgreSQL ports; its cluster is deleted afterwards."""
    broker_port, pg_port = process.free_port(), process.free_port()
    env = {"LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_BROKER_PORT": str(broker_port),
           "LAKEHOUSE_PG_PORT": str(pg_port), "LAKEHOUSE_METASTORE_URL": ""}
    settings = dataclasses.replace(Settings.from_env(), home=tmp_path / "home", broker_port=broker_port,
                                   kafka_bootstrap=f"127.0.0.1:{broker_port}")
    yield settings, env
    broker.stop_broker(settings)
    postgres.destroy(postgres.pg_config(settings, port=pg_port))


def _occupied(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_failed_start_stops_the_broker_it_started(home: tuple[Settings, dict[str, str]]) -> None:
    settings, env = home
    pg_port = int(env["LAKEHOUSE_PG_PORT"])
    with _occupied(pg_port):
        result = lakehouse("services", "start", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "stopped the services this run started: kafka broker" and len(lines) == 2
    assert lines[1].startswith(f"error: cannot start PostgreSQL: port 127.0.0.1:{pg_port} is already in use by "
                               f"another program (pid {os.getpid()}: ")
    assert process.status(broker.SERVICE, settings).running is False


def test_failed_start_leaves_a_broker_that_already_ran(home: tuple[Settings, dict[str, str]]) -> None:
    settings, env = home
    settings.ensure_dirs()
    before = broker.start_broker(settings)
    pg_port = int(env["LAKEHOUSE_PG_PORT"])
    with _occupied(pg_port):
        result = lakehouse("services", "start", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: cannot start PostgreSQL: port 127.0.0.1:{pg_port} is already in use by another program "
        f"(pid {os.getpid()}: ")
    assert process.status(broker.SERVICE, settings).pid == before.pid


def test_start_then_stop_runs_broker_and_postgres(home: tuple[Settings, dict[str, str]]) -> None:
    settings, env = home
    result = lakehouse("services", "start", env=env)
    assert result.returncode == 0, result.stderr
    cfg = postgres.pg_config(settings, port=int(env["LAKEHOUSE_PG_PORT"]))
    pid = postgres.server_pid(cfg)
    assert pid is not None
    assert result.stdout.splitlines()[1] == (
        f"postgres: running (pid {pid}) on 127.0.0.1:{cfg.port}; "
        f"Hive metastore jdbc:postgresql://127.0.0.1:{cfg.port}/metastore")
    result = lakehouse("services", "stop", env=env)
    assert result.stdout.splitlines() == ["kafka broker: stopped", "postgres: stopped"]
    assert postgres.server_pid(cfg) is None
