"""Which home holds a port, and a failed command stops exactly the services it started (by PID)."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.services import process


def _home(tmp_path: Path, name: str) -> Settings:
    settings = dataclasses.replace(Settings.from_env(), home=tmp_path / name)
    settings.run_dir.mkdir(parents=True)
    return settings


def _serve(settings: Settings, name: str, port: int) -> process.ProcessStatus:
    """A small TCP server on 127.0.0.1:port, managed as service `name` of `settings.home`."""
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    return process.start(name, argv, settings.home / f"{name}.log", lambda: process.port_in_use(port),
                         timeout=30, port=port, settings=settings)


@pytest.fixture()
def claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(process, "PORT_CLAIMS", tmp_path / "ports")
    return tmp_path / "ports"


def test_a_port_held_by_another_home_names_that_home(tmp_path: Path, claims: Path) -> None:
    a, b = _home(tmp_path, "a"), _home(tmp_path, "b")
    port = process.free_port()
    st = _serve(a, "web", port)
    try:
        with pytest.raises(LakehouseError) as err:
            _serve(b, "web", port)
        assert str(err.value) == (
            f"cannot start web: port 127.0.0.1:{port} is already in use by web (pid {st.pid}) of "
            f"LAKEHOUSE_HOME={a.home}; stop it with `LAKEHOUSE_HOME={a.home} lakehouse services stop` or choose "
            "another port")
    finally:
        assert process.stop("web", settings=a)
    assert not (claims / f"{port}.json").exists()


def test_a_port_held_by_an_unknown_program_says_so(tmp_path: Path, claims: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(LakehouseError) as err:
            _serve(_home(tmp_path, "a"), "web", port)
    assert str(err.value).startswith(
        f"cannot start web: port 127.0.0.1:{port} is already in use by another program (pid {os.getpid()}: ")


def test_a_failure_stops_only_the_services_this_run_started(tmp_path: Path, claims: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    settings = _home(tmp_path, "a")
    old = _serve(settings, "old", process.free_port())  # running before the command
    port = process.free_port()
    started = process.StartedHere()
    with pytest.raises(RuntimeError, match="boom"), process.stop_on_failure(started):
        for name, p in (("old", None), ("new", port)):
            started.start(name, lambda n=name: process.status(n, settings).running,
                          lambda n=name, p=p: _serve(settings, n, p) if p else process.status(n, settings),
                          lambda n=name: process.stop(n, settings=settings))
        new_pid = process.status("new", settings).pid
        assert new_pid is not None and process.pid_alive(new_pid)
        raise RuntimeError("boom")
    assert capsys.readouterr().err == "stopped the services this run started: new\n"
    assert not process.pid_alive(new_pid) and process.status("new", settings).running is False
    assert process.status("old", settings).pid == old.pid and process.pid_alive(old.pid)
    assert process.stop("old", settings=settings)


def test_stop_pid_leaves_a_restarted_service_alone(tmp_path: Path, claims: Path) -> None:
    settings = _home(tmp_path, "a")
    first = _serve(settings, "web", process.free_port())
    assert process.stop("web", settings=settings)
    second = _serve(settings, "web", process.free_port())
    assert process.stop_pid("web", first.pid, settings=settings) is False
    assert process.pid_alive(second.pid)
    assert process.stop_pid("web", second.pid, settings=settings) is True
    assert not process.pid_alive(second.pid)
