"""The local Kafka broker: Apache Kafka 4.4 in KRaft mode, one node that is both broker and controller.

Runs `java -cp "<.jars/kafka-broker>/*" kafka.Kafka server.properties` from the pinned jars (lakehouse.jars;
nothing is downloaded at run time). Everything lives under `$LAKEHOUSE_HOME/kafka/`: `server.properties`,
`log4j2.properties` (written at every start) and `data/` (the log dir, formatted once with Kafka's
StorageTool). Topics, their records and committed offsets are on disk: they survive a restart and a SIGKILL
(the broker recovers its logs on the next start). Clients connect to 127.0.0.1:`settings.broker_port`; the
KRaft controller listens on another loopback port picked at each start. Topics are never auto-created:
every producer path of the platform creates its topics first (`kafka_admin.create_topics`), so a job that
subscribes before anything was produced cannot create a topic with the wrong partition count.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lakehouse import jvm_archive
from lakehouse.config import Settings, get_settings
from lakehouse.errors import LakehouseError, ServiceNotRunning
from lakehouse.jars import jars_root, kafka_broker_classpath
from lakehouse.services import process

SERVICE = "broker"
NODE_ID = 1
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
# Small heap; C1 only: on 2 busy cores C2's compile threads more than double the start (~25 s -> ~12 s) and
# buy no throughput here (300k records produced and read back were no faster with C2). Class-data sharing
# (`cds_archive`) halves the start again.
JVM_OPTIONS = ("-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
NUM_PARTITIONS = 1  # only for topics created without a partition count; create_topics always gives one

# One node: every internal topic has one replica and one partition; small thread pools and cleaner buffer (the
# machine is shared); no rebalance delay (tests and jobs join groups right away); no time or size retention
# (a local lakehouse keeps what it was sent; the generator's records may carry old timestamps).
STATIC_CONFIG: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": str(NODE_ID),
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "num.partitions": str(NUM_PARTITIONS),
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "auto.create.topics.enable": "false",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "log.retention.ms": "-1",
    "log.retention.bytes": "-1",
    "log.cleaner.dedupe.buffer.size": str(16 << 20),
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    "num.recovery.threads.per.data.dir": "2",
}

# Warnings and errors only, plus the server's own start/stop lines; to stdout, which process.start appends
# to $LAKEHOUSE_HOME/logs/broker.log.
LOG4J2 = """\
status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
"""


def broker_dir(settings: Settings) -> Path:
    """`$LAKEHOUSE_HOME/kafka`: the broker's config files and data."""
    return settings.home / "kafka"


def data_dir(settings: Settings) -> Path:
    """The broker's log dir (topics, offsets, KRaft metadata)."""
    return broker_dir(settings) / "data"


def config_file(settings: Settings) -> Path:
    return broker_dir(settings) / "server.properties"


def server_config(settings: Settings, controller_port: int) -> dict[str, str]:
    """server.properties of the local broker: clients on broker_port, the controller on controller_port."""
    broker, controller = f"127.0.0.1:{settings.broker_port}", f"127.0.0.1:{controller_port}"
    return {
        **STATIC_CONFIG,
        "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{broker}",
        "controller.quorum.voters": f"{NODE_ID}@{controller}",
        "log.dirs": str(data_dir(settings)),
    }


def write_config(settings: Settings, controller_port: int) -> Path:
    """Write server.properties and log4j2.properties under `broker_dir`; returns server.properties."""
    folder = broker_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log4j2.properties").write_text(LOG4J2)
    path = config_file(settings)
    path.write_text("".join(f"{k}={v}\n" for k, v in server_config(settings, controller_port).items()))
    return path


def cds_archive(java: str) -> Path:
    """The class-data-sharing archive of the broker's classes for this JVM and these exact jars, next to the jars:
    shared by every $LAKEHOUSE_HOME of the checkout."""
    return jvm_archive.archive_path("kafka-broker", java, sorted((jars_root() / "kafka-broker").glob("*.jar")))


def cds_options(java: str, dump: bool) -> list[str]:
    """Use the archive when it exists; else, with `dump`, have this JVM write one when it exits (to a private
    file that `jvm_archive.publish` moves into place once the broker stopped; not when the jars folder is
    read-only)."""
    archive = cds_archive(java)
    if archive.is_file():
        return jvm_archive.share_options(archive)
    if not dump or not os.access(archive.parent, os.W_OK):
        return []
    return jvm_archive.dump_options(jvm_archive.dump_file(archive))


def jvm_argv(settings: Settings, main_class: str, *args: str) -> list[str]:
    """`java <options> -cp <broker jars> <main_class> <args>` with the broker's log4j configuration."""
    java = process.java_executable()
    log4j = broker_dir(settings) / "log4j2.properties"
    return [java, *JVM_OPTIONS, *cds_options(java, dump=main_class == MAIN_CLASS), f"-Dlog4j2.configurationFile={log4j}",
            "-cp", kafka_broker_classpath(), main_class, *args]


def new_cluster_id() -> str:
    """A random KRaft cluster id (a UUID in URL-safe base64, as `kafka-storage random-uuid` prints it)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka never hands out ids that look like a command-line flag
            return text


def format_storage(settings: Settings, config: Path, timeout: float = 120.0) -> bool:
    """Format the data dir once (StorageTool); False when it already is. A LakehouseError names the output."""
    if (data_dir(settings) / "meta.properties").is_file():
        return False
    argv = jvm_argv(settings, STORAGE_TOOL, "format", "--ignore-formatted", "-t", new_cluster_id(),
                    "-c", str(config))
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        tail = " | ".join((result.stderr + result.stdout).strip().splitlines()[-3:])
        raise LakehouseError(f"cannot format the broker's data dir {data_dir(settings)}: {tail}")
    return True


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


def start_broker(settings: Settings | None = None, timeout: float = 90.0) -> process.ProcessStatus:
    """Start the broker on 127.0.0.1:`settings.broker_port` and wait until it answers (no-op when this home's
    broker already runs there). Formats the data dir on the first start."""
    settings = settings or get_settings()
    current = process.status(SERVICE, settings)
    if current.running and current.port != settings.broker_port:
        raise LakehouseError(
            f"the broker of {settings.home} already runs on 127.0.0.1:{current.port} (pid {current.pid}); "
            f"stop it (`lakehouse services stop`) before starting it on port {settings.broker_port}"
        )
    extra: dict[str, object] = {}
    if not current.running:
        process.check_port_free(SERVICE, settings.broker_port, settings.home)  # before formatting anything
        controller_port = process.free_port()
        format_storage(settings, write_config(settings, controller_port))
        extra = {"controller_port": controller_port, "data_dir": str(data_dir(settings))}
    bootstrap = f"127.0.0.1:{settings.broker_port}"
    return process.start(
        SERVICE,
        jvm_argv(settings, MAIN_CLASS, str(config_file(settings))),
        settings.logs / "broker.log",
        ready_check=lambda: broker_ready(bootstrap, timeout=1.0),
        timeout=timeout,
        port=settings.broker_port,
        settings=settings,
        extra={"bootstrap": bootstrap, **extra},
    )


def stop_broker(settings: Settings | None = None, timeout: float = 30.0) -> bool:
    """Stop this home's broker by its PID (SIGTERM: a clean shutdown; SIGKILL after `timeout` s). Its data
    stays on disk for the next start."""
    settings = settings or get_settings()
    argv = process.status(SERVICE, settings).info.get("argv") or []
    stopped = process.stop(SERVICE, timeout=timeout, settings=settings)
    for dump in jvm_archive.dumps_in(argv):
        jvm_archive.publish(dump)
    return stopped


@contextmanager
def broker_for(settings: Settings) -> Iterator[str]:
    """The broker at `settings.kafka_bootstrap` for the block: the one that answers there, else this home's,
    started now and stopped after the block (benchmarks run against either). Yields the bootstrap."""
    started = not broker_ready(settings.kafka_bootstrap, timeout=1.0)
    if started:
        start_broker(settings)
    try:
        yield settings.kafka_bootstrap
    finally:
        if started:
            stop_broker(settings)


def broker_status(settings: Settings | None = None) -> dict:
    """{'running', 'pid', 'bootstrap', 'ready', 'log_file', 'data_dir'} for the local broker."""
    settings = settings or get_settings()
    st = process.status(SERVICE, settings)
    return {
        "running": st.running,
        "pid": st.pid,
        "bootstrap": settings.kafka_bootstrap,
        "ready": st.running and broker_ready(settings.kafka_bootstrap, timeout=1.0),
        "log_file": st.log_file,
        "data_dir": str(data_dir(settings)),
    }
