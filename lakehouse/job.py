"""What every job shares: its context (session, tables, settings, run id) and a main wrapper that turns
configuration problems into one clear line and a non-zero exit."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import SparkSession

from lakehouse.config import Settings, get_settings
from lakehouse.errors import LakehouseError
from lakehouse.tables import DeltaTables, get_tables

log = logging.getLogger("lakehouse.job")


@dataclass
class JobContext:
    spark: SparkSession
    tables: DeltaTables
    settings: Settings
    run_id: str


def job_context(app_name: str) -> JobContext:
    from lakehouse.spark import get_spark

    settings = get_settings()
    spark = get_spark(app_name, settings)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return JobContext(spark, get_tables(spark, settings), settings, f"{app_name}-{stamp}-{uuid.uuid4().hex[:6]}")


def source_version_to_process(ctx: JobContext, source: str, target: str, app_id: str) -> int | None:
    """The source's current version if `target` (written by `app_id`, batch id = last source version processed)
    has not processed it yet; None, with a log line, when it is up to date."""
    done = ctx.tables.committed_batch(target, app_id) if ctx.tables.exists(target) else None
    current = ctx.tables.version(source)
    if done is not None and current <= done:
        log.info("%s is up to date with %s", target, source)
        return None
    return current


def require_tables(*names: str, hint: str = "", wait_s: float | None = None) -> None:
    """Fail fast (before a Spark session starts) when an input table is missing from a local tables root; with
    `wait_s` (a continuous run, as a pipeline stage) wait for them instead, looking every `wait_s` s."""
    import time
    from pathlib import Path

    settings = get_settings()
    if "://" in settings.tables_root:
        return  # remote roots are checked by the job itself
    while missing := [n for n in names if not (Path(settings.table_location(n)) / "_delta_log").is_dir()]:
        if wait_s is None:
            raise LakehouseError(f"{missing[0]} does not exist yet" + (f": {hint}" if hint else ""))
        log.info("waiting for %s", ", ".join(missing))
        time.sleep(wait_s)


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def bootstrap_is_local(bootstrap: str) -> bool:
    """True when every broker of `bootstrap` (host:port,...) is on this machine."""
    hosts = [server.strip().rsplit(":", 1)[0] for server in bootstrap.split(",") if server.strip()]
    return bool(hosts) and all(host in LOCAL_HOSTS for host in hosts)


def require_kafka(settings: Settings | None = None, timeout: float = 3.0, wait_s: float | None = None) -> str:
    """Fail fast (before a Spark session starts) when the job's Kafka brokers do not answer; with `wait_s` (a
    continuous pipeline stage, started again while its broker restarts) wait for them instead, looking every
    `wait_s` s. Returns the bootstrap."""
    import time

    from lakehouse.errors import ServiceNotRunning

    while True:
        try:
            return _check_kafka(settings or get_settings(), timeout)
        except ServiceNotRunning as exc:
            if wait_s is None:
                raise
            log.info("waiting for Kafka: %s", exc)
            time.sleep(wait_s)


def _check_kafka(settings: Settings, timeout: float) -> str:
    """The bootstrap when its brokers answer, else ServiceNotRunning.

    A local bootstrap is checked with a Kafka request and the error says how to start the local broker; a
    remote one (a cluster user's, maybe authenticated) only needs one broker accepting TCP connections, and
    the error names the settings to check instead."""
    import socket

    from lakehouse.errors import ServiceNotRunning

    bootstrap = settings.kafka_bootstrap
    if bootstrap_is_local(bootstrap):
        from lakehouse.services.broker import require_broker

        return require_broker(bootstrap)
    for server in (s.strip() for s in bootstrap.split(",") if s.strip()):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return bootstrap
        except (OSError, ValueError):
            continue
    raise ServiceNotRunning(
        f"no Kafka broker of {bootstrap} accepts connections from this driver; check LAKEHOUSE_KAFKA_BOOTSTRAP, "
        f"the network path to the brokers and the client options in $LAKEHOUSE_KAFKA_OPTIONS"
    )


def run_main(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run a job's main; a LakehouseError ends with one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_job_main(main, argv)
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_job_main(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None) -> None:
    """Run a job's main, then publish the Data Docs of its validations (also when a gate blocked it)."""
    from lakehouse.quality.gate import publish_all_docs

    try:
        main(argv)
    finally:
        publish_all_docs()


def parser(description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def add_trigger_arguments(p: argparse.ArgumentParser) -> None:
    """`--trigger` / `--interval` / `--timeout` of a job made of Structured Streaming queries."""
    p.add_argument("--trigger", choices=["available-now", "continuous"], default="available-now",
                   help="available-now: take what is there, then stop; continuous: keep taking what comes")
    p.add_argument("--interval", default="5 seconds", help="continuous: time between micro-batch starts")
    p.add_argument("--timeout", type=float, default=None, help="continuous: stop after this many seconds")


MAX_BACKOFF_S = 300.0


def backoff_s(every_s: float, failures: int, cap_s: float | None = None) -> float:
    """The wait before the next run after `failures` failed runs in a row: `every_s`, doubled per failure, at
    most `cap_s` (default MAX_BACKOFF_S; `every_s` when that is longer)."""
    if failures <= 0:
        return every_s
    return min(every_s * 2 ** (failures - 1), max(every_s, MAX_BACKOFF_S if cap_s is None else cap_s))
