"""The local S3 endpoint for the landing zone: moto's standalone server (`moto_server`, from moto[server]).

A real HTTP S3 API on 127.0.0.1:$LAKEHOUSE_S3_PORT (19000) that boto3 (and delta-rs) talk to. Data lives in
memory: a restart loses every bucket. Settings (environment, read here, not in `config.Settings`):

* `LAKEHOUSE_S3_PORT`         port of the local server (19000)
* `LAKEHOUSE_S3_ENDPOINT`     endpoint URL; default `http://127.0.0.1:<port>`; `aws` = the real AWS endpoints
                              with the default credential chain (on a cluster)
* `LAKEHOUSE_LANDING_BUCKET`  bucket files land in ("landing")
* `LAKEHOUSE_S3_REGION`       ("us-east-1")
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from lakehouse.config import Settings, _env_int, get_settings
from lakehouse.errors import LakehouseError, ServiceNotRunning
from lakehouse.services import process

SERVICE = "s3"
LOCAL_ACCESS_KEY = "lakehouse-local"  # moto accepts any key; these are not real credentials


@dataclass(frozen=True)
class S3Config:
    """Where the landing bucket is and how to reach it."""

    port: int
    endpoint: str | None  # None: real AWS (default credential chain)
    bucket: str
    region: str

    @property
    def is_local(self) -> bool:
        return self.endpoint is not None and self.endpoint.startswith(("http://127.0.0.1", "http://localhost"))

    @classmethod
    def from_env(cls) -> S3Config:
        port = _env_int("LAKEHOUSE_S3_PORT", 19000)
        raw = os.environ.get("LAKEHOUSE_S3_ENDPOINT") or f"http://127.0.0.1:{port}"
        bucket = os.environ.get("LAKEHOUSE_LANDING_BUCKET") or "landing"
        if not 3 <= len(bucket) <= 63:
            raise LakehouseError(f"LAKEHOUSE_LANDING_BUCKET must be 3-63 characters, got {bucket!r}")
        return cls(
            port=port,
            endpoint=None if raw == "aws" else raw,
            bucket=bucket,
            region=os.environ.get("LAKEHOUSE_S3_REGION") or "us-east-1",
        )


def s3_client(cfg: S3Config | None = None) -> Any:
    """A boto3 S3 client for `cfg` (local endpoint: fixed dummy credentials, path-style addressing)."""
    import boto3
    from botocore.config import Config

    cfg = cfg or S3Config.from_env()
    kwargs: dict[str, Any] = {"region_name": cfg.region}
    if cfg.endpoint is not None:
        kwargs["endpoint_url"] = cfg.endpoint
        kwargs["config"] = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}, connect_timeout=2)
        if cfg.is_local:
            kwargs["aws_access_key_id"] = LOCAL_ACCESS_KEY
            kwargs["aws_secret_access_key"] = LOCAL_ACCESS_KEY
    return boto3.client("s3", **kwargs)


def s3a_conf(cfg: S3Config) -> dict[str, str]:
    """Hadoop S3A settings for Spark to read `s3a://` paths of `cfg`'s endpoint (the local one: its dummy keys,
    path-style, plain HTTP); empty for AWS, where the cluster's own S3A configuration and credentials apply."""
    if cfg.endpoint is None:
        return {}
    conf = {"fs.s3a.endpoint": cfg.endpoint, "fs.s3a.endpoint.region": cfg.region,
            "fs.s3a.path.style.access": "true",
            "fs.s3a.connection.ssl.enabled": str(cfg.endpoint.startswith("https://")).lower()}
    if cfg.is_local:
        conf |= {"fs.s3a.access.key": LOCAL_ACCESS_KEY, "fs.s3a.secret.key": LOCAL_ACCESS_KEY,
                 "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"}
    return conf


def use_s3a(spark: Any, cfg: S3Config) -> None:
    """Point the session's `s3a://` reads at `cfg` (session settings reach every read's Hadoop configuration,
    on the driver and the executors)."""
    for key, value in s3a_conf(cfg).items():
        spark.conf.set(key, value)


def s3_ready(cfg: S3Config) -> bool:
    """True when the endpoint answers ListBuckets."""
    try:
        s3_client(cfg).list_buckets()
        return True
    except Exception:  # noqa: BLE001 - connection refused, timeouts, HTTP errors: not ready
        return False


def ensure_bucket(cfg: S3Config, bucket: str | None = None) -> str:
    """Create `bucket` (default: the landing bucket) unless it exists."""
    bucket = bucket or cfg.bucket
    client = s3_client(cfg)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    return bucket


def require_s3(cfg: S3Config | None = None) -> S3Config:
    """Raise ServiceNotRunning with a one-line hint unless the S3 endpoint answers."""
    cfg = cfg or S3Config.from_env()
    if not s3_ready(cfg):
        where = cfg.endpoint or "AWS S3"
        raise ServiceNotRunning(f"S3 endpoint {where} is not reachable; start it with `lakehouse landing start`")
    return cfg


def moto_server_argv(port: int) -> list[str]:
    """`python -m moto.server` with this interpreter (the venv): the PID file check compares argv[0] with the
    process's command line, which for the `moto_server` shebang script would be the interpreter."""
    import importlib.util

    if importlib.util.find_spec("moto.server") is None or importlib.util.find_spec("flask") is None:
        raise LakehouseError("moto's server is not installed: pip install 'moto[server]'")
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def start_s3(settings: Settings | None = None, cfg: S3Config | None = None, timeout: float = 20.0) -> process.ProcessStatus:
    """Start moto_server on 127.0.0.1:`cfg.port` and create the landing bucket (no-op if ours already runs)."""
    settings = settings or get_settings()
    cfg = cfg or S3Config.from_env()
    if not cfg.is_local:
        raise LakehouseError(f"LAKEHOUSE_S3_ENDPOINT={cfg.endpoint or 'aws'} is not local: nothing to start")
    settings.logs.mkdir(parents=True, exist_ok=True)
    status = process.start(
        SERVICE,
        moto_server_argv(cfg.port),
        settings.logs / "s3.log",
        ready_check=lambda: s3_ready(cfg),
        timeout=timeout,
        port=cfg.port,
        settings=settings,
        extra={"endpoint": cfg.endpoint, "bucket": cfg.bucket},
    )
    ensure_bucket(cfg)
    return status


def stop_s3(settings: Settings | None = None, timeout: float = 10.0) -> bool:
    """Stop the S3 server we started (by PID). Its in-memory buckets are lost."""
    return process.stop(SERVICE, timeout=timeout, settings=settings or get_settings())


def s3_status(settings: Settings | None = None, cfg: S3Config | None = None) -> dict[str, Any]:
    """{'running', 'pid', 'endpoint', 'bucket', 'ready', 'log_file'} for the local S3 server."""
    settings = settings or get_settings()
    cfg = cfg or S3Config.from_env()
    st = process.status(SERVICE, settings)
    return {
        "running": st.running,
        "pid": st.pid,
        "endpoint": cfg.endpoint,
        "bucket": cfg.bucket,
        "ready": s3_ready(cfg),
        "log_file": st.log_file,
    }
