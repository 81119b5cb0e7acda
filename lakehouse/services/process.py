"""Managed background processes: start once, find again by PID file, stop by PID.

Each service `name` owns two files under `settings.run_dir`:

* `<name>.pid`  - the PID of the process we started,
* `<name>.json` - metadata (argv, log file, port, start time) so `status` can report where it listens.

`start` is idempotent: when the PID file names a live process whose ready check passes, nothing is started.
Stale PID files (process gone, or PID reused by an unrelated program) are removed. Used for the Kafka
broker and reusable for PostgreSQL, Debezium, S3 and the SQL endpoint.

Ports are claimed machine-wide (`claim_port`: a file per port under /tmp/lakehouse-ports naming the service,
its PID and its $LAKEHOUSE_HOME), so a port taken by a service of another home is reported with that home.
`StartedHere` remembers which services one command started, to stop exactly those when the command fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.config import Settings, get_settings
from lakehouse.errors import LakehouseError, ServiceNotRunning

ReadyCheck = Callable[[], bool]
PORT_CLAIMS = Path(os.environ.get("LAKEHOUSE_PORT_CLAIMS") or "/tmp/lakehouse-ports")


@dataclass(frozen=True)
class ProcessStatus:
    """What `status(name)` knows about a managed process."""

    name: str
    running: bool
    pid: int | None = None
    port: int | None = None
    log_file: str | None = None
    info: dict = field(default_factory=dict)


def _run_dir(settings: Settings | None) -> Path:
    run_dir = (settings or get_settings()).run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def pid_file(name: str, settings: Settings | None = None) -> Path:
    return _run_dir(settings) / f"{name}.pid"


def meta_file(name: str, settings: Settings | None = None) -> Path:
    return _run_dir(settings) / f"{name}.json"


def pid_alive(pid: int) -> bool:
    """True when `pid` is a live (non-zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie answers kill(0) but is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot, /proc/<pid>/stat): a reused PID has another."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def cmdline(pid: int) -> list[str]:
    """The argv of `pid` ([] when it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [p.decode(errors="replace") for p in fh.read().split(b"\0") if p]
    except OSError:
        return []


def _read_pid(name: str, settings: Settings | None) -> int | None:
    path = pid_file(name, settings)
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_meta(name: str, settings: Settings | None) -> dict:
    try:
        return json.loads(meta_file(name, settings).read_text())
    except (OSError, ValueError):
        return {}


def _owned_pid(name: str, settings: Settings | None) -> int | None:
    """PID from the PID file if that process is alive and still runs the program we started; else None
    (and the stale files are removed)."""
    pid = _read_pid(name, settings)
    if pid is None:
        _clear(name, settings)
        return None
    meta = _read_meta(name, settings)
    if "start_ticks" in meta:  # the process we started, whatever it exec'd into since: same PID, same birth
        mine = pid_alive(pid) and start_ticks(pid) == meta["start_ticks"]
    else:  # files of an older version: the program must still be argv[0]
        argv0, cmd = (meta.get("argv") or [""])[0], cmdline(pid)
        mine = pid_alive(pid) and not (argv0 and cmd and Path(cmd[0]).name != Path(argv0).name)
    if not mine:
        _clear(name, settings)
        return None
    return pid


def _clear(name: str, settings: Settings | None) -> None:
    for path in (pid_file(name, settings), meta_file(name, settings)):
        path.unlink(missing_ok=True)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def listener_pid(port: int) -> int | None:
    """The PID of the process listening on TCP `port` (any local address), from /proc; None if unknown."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()  # sl local_address rem_address st ... inode
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{cols[9]}]")
    return _socket_owner(inodes) if inodes else None


def _socket_owner(sockets: set[str]) -> int | None:
    """The first PID with an open file descriptor on one of `sockets` (`socket:[inode]` link targets)."""
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            fds = list((proc_dir / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(fd) in sockets:
                    return int(proc_dir.name)
    return None


def _claims_dir() -> Path:
    if not PORT_CLAIMS.is_dir():
        PORT_CLAIMS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            PORT_CLAIMS.chmod(0o1777)  # every user's services claim ports here
    return PORT_CLAIMS


def claim_port(port: int, service: str, home: Path, pid: int) -> None:
    """Record that `service` (PID `pid`) of $LAKEHOUSE_HOME `home` listens on `port`."""
    path = _claims_dir() / f"{port}.json"
    tmp = path.with_name(f"{port}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"service": service, "home": str(home), "pid": pid}))
    tmp.chmod(0o644)
    tmp.replace(path)


def release_port(port: int, pid: int) -> None:
    """Forget the claim on `port` if process `pid` made it."""
    owner = port_owner(port, alive_only=False)
    if owner is not None and owner.get("pid") == pid:
        (PORT_CLAIMS / f"{port}.json").unlink(missing_ok=True)


def port_owner(port: int, alive_only: bool = True) -> dict | None:
    """{'service', 'home', 'pid'} of the lakehouse service that claimed `port` (None if none, or it died)."""
    try:
        owner = json.loads((PORT_CLAIMS / f"{port}.json").read_text())
    except (OSError, ValueError):
        return None
    if alive_only and not pid_alive(int(owner.get("pid") or 0)):
        return None
    return owner


def check_port_free(name: str, port: int, home: Path | None = None) -> None:
    """Raise a LakehouseError naming who holds 127.0.0.1:`port`: a service of this or another $LAKEHOUSE_HOME
    (from its claim), else the listening program's PID and command line (from /proc)."""
    if not port_in_use(port):
        return
    where = f"cannot start {name}: port 127.0.0.1:{port} is already in use by"
    owner = port_owner(port)
    if owner is None:
        pid = listener_pid(port)
        holder = f" (pid {pid}: {' '.join(cmdline(pid))[:160]})" if pid else ""
        raise LakehouseError(f"{where} another program{holder}")
    if home is not None and owner["home"] == str(home):
        raise LakehouseError(f"{where} {owner['service']} (pid {owner['pid']}) of this LAKEHOUSE_HOME")
    raise LakehouseError(
        f"{where} {owner['service']} (pid {owner['pid']}) of LAKEHOUSE_HOME={owner['home']}; stop it with "
        f"`LAKEHOUSE_HOME={owner['home']} lakehouse services stop` or choose another port"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _tail(log_file: Path, lines: int = 5) -> str:
    try:
        text = log_file.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def status(name: str, settings: Settings | None = None) -> ProcessStatus:
    """Whether the managed process `name` runs, with its PID, port and log file."""
    pid = _owned_pid(name, settings)
    if pid is None:
        return ProcessStatus(name=name, running=False)
    meta = _read_meta(name, settings)
    return ProcessStatus(
        name=name, running=True, pid=pid, port=meta.get("port"), log_file=meta.get("log_file"), info=meta
    )


def start(
    name: str,
    argv: Sequence[str],
    log_file: str | Path,
    ready_check: ReadyCheck | None = None,
    timeout: float = 30.0,
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    settings: Settings | None = None,
    extra: dict | None = None,
) -> ProcessStatus:
    """Start `argv` in the background as service `name` and wait until `ready_check()` is true.

    Idempotent: if the service already runs and is ready, its status is returned. If `port` is given and
    another program already listens there, a LakehouseError says so. On timeout or early exit the process
    is stopped and the error names the log file.
    """
    current = status(name, settings)
    if current.running:
        if ready_check is None or _wait_ready(ready_check, min(timeout, 5.0), current.pid):
            return current
        raise ServiceNotRunning(
            f"{name} (pid {current.pid}) is running but not ready; see {current.log_file} "
            f"or restart it with `lakehouse services stop` then `start`"
        )
    home = (settings or get_settings()).home
    if port is not None:
        check_port_free(name, port, home)
    log_path = Path(log_file)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=str(cwd) if cwd else None,
                start_new_session=True,  # not killed by the terminal's Ctrl-C; we stop it by PID
            )
        except OSError as exc:
            raise LakehouseError(f"cannot start {name}: {argv[0]}: {exc.strerror or exc}") from None
    pid_file(name, settings).write_text(str(proc.pid))
    meta = {
        "argv": list(argv),
        "log_file": str(log_path),
        "port": port,
        "started_at": time.time(),
        "start_ticks": start_ticks(proc.pid),
        **(extra or {}),
    }
    meta_file(name, settings).write_text(json.dumps(meta))
    if port is not None:
        claim_port(port, name, home, proc.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _clear(name, settings)
            raise LakehouseError(
                f"{name} exited with code {proc.returncode} right after start; log {log_path}: {_tail(log_path)}"
            )
        if ready_check is None or _safe_check(ready_check):
            return status(name, settings)
        time.sleep(0.1)
    stop(name, settings=settings)
    raise LakehouseError(
        f"{name} did not become ready within {timeout:.0f}s; see {log_path}: {_tail(log_path)}"
    )


def _safe_check(check: ReadyCheck) -> bool:
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False


def _wait_ready(check: ReadyCheck, timeout: float, pid: int | None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _safe_check(check):
            return True
        if pid is not None and not pid_alive(pid):
            return False
        time.sleep(0.1)
    return False


def stop(name: str, timeout: float = 10.0, settings: Settings | None = None, group: bool = False) -> bool:
    """Stop service `name` by its PID: SIGTERM, then SIGKILL after `timeout` seconds. With `group`, the
    signals go to its whole process group (`start` makes each service a session leader), so children it
    started (a JVM's Python driver) go with it.

    Returns True if a process was stopped, False if none was running. PID files are removed either way.
    """
    pid = _owned_pid(name, settings)
    if pid is None:
        return False
    port = _read_meta(name, settings).get("port")
    if port is not None:
        release_port(int(port), pid)
    kill = os.killpg if group else os.kill
    try:
        kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _clear(name, settings)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (pid_alive(pid) or (group and _group_alive(pid))):
        _reap(pid)
        time.sleep(0.05)
    if pid_alive(pid) or (group and _group_alive(pid)):
        with contextlib.suppress(ProcessLookupError):
            kill(pid, signal.SIGKILL)
        for _ in range(100):
            _reap(pid)
            if not pid_alive(pid) and not (group and _group_alive(pid)):
                break
            time.sleep(0.05)
    _clear(name, settings)
    return True


def _group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process of group `pgid` remains."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child (avoids zombies when this process started it)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@dataclass
class StartedHere:
    """The services one command started (not those already running), to stop exactly those if it fails.

    `start(label, running, start, stop)` calls `start()`; when `running()` was false before, `stop` is remembered.
    `stop_all()` stops the remembered services, newest first, and returns their labels.
    """

    stops: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def start(self, label: str, running: Callable[[], bool], start: Callable[[], object],
              stop: Callable[[], object]) -> object:
        was_running = running()
        result = start()
        if not was_running:
            self.stops.append((label, stop))
        return result

    def stop_all(self) -> list[str]:
        stopped: list[str] = []
        while self.stops:
            label, stop = self.stops.pop()
            with contextlib.suppress(Exception):  # stop the others even if one cannot be stopped
                stop()
                stopped.append(label)
        return stopped


def stop_pid(name: str, pid: int, timeout: float = 10.0, settings: Settings | None = None) -> bool:
    """Stop service `name` only if its PID file still names `pid` (the process this command started)."""
    if _owned_pid(name, settings) != pid:
        return False
    return stop(name, timeout=timeout, settings=settings)


@contextlib.contextmanager
def stop_on_failure(started: StartedHere) -> Iterator[StartedHere]:
    """Yield `started`; on any exception (Ctrl-C too) stop what it started, print which, and re-raise."""
    import sys

    try:
        yield started
    except BaseException:
        stopped = started.stop_all()
        if stopped:
            print(f"stopped the services this run started: {', '.join(stopped)}", file=sys.stderr)
        raise


def java_executable() -> str:
    """`$JAVA_HOME/bin/java`, else `java` on PATH (the JVM services need Java 17 or later)."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    found = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if not found:
        raise LakehouseError("java not found (set JAVA_HOME or install a JDK 17: `make system`)")
    return found
