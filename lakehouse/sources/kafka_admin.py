"""Small confluent-kafka helpers: create topics, produce fast, read partitions' offsets (ListOffsets)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.errors import LakehouseError, ServiceNotRunning

Header = tuple[str, bytes | None]
Record = tuple[bytes | None, bytes, Sequence[Header] | None]

PRODUCER_DEFAULTS: dict[str, object] = {
    "linger.ms": 20,
    "batch.num.messages": 10000,
    "batch.size": 1 << 20,
    "queue.buffering.max.messages": 500000,
    "queue.buffering.max.kbytes": 1 << 20,
    "compression.type": "none",
    "acks": "all",
    "enable.idempotence": False,
}


def _unreachable(bootstrap: str) -> ServiceNotRunning:
    return ServiceNotRunning(
        f"Kafka broker at {bootstrap} is not reachable; start it with `lakehouse services start`"
    )


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000})


def list_topics(bootstrap: str, timeout: float = 5.0) -> dict[str, int]:
    """{topic: number of partitions} for every topic on the broker."""
    try:
        md = admin_client(bootstrap).list_topics(timeout=timeout)
    except KafkaException:
        raise _unreachable(bootstrap) from None
    return {name: len(t.partitions) for name, t in md.topics.items() if not name.startswith("__")}


def create_topics(
    bootstrap: str, names: Iterable[str], partitions: int = 1, timeout: float = 10.0,
    config: dict[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (with `partitions` each and the topic `config`, e.g.
    {"cleanup.policy": "compact"}); returns the names created."""
    existing = list_topics(bootstrap, timeout)
    wanted = [n for n in dict.fromkeys(names) if n not in existing]
    if not wanted:
        return []
    admin = admin_client(bootstrap)  # keep a reference until the futures resolve
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1, config=config or {}) for n in wanted],
        operation_timeout=timeout,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise LakehouseError(f"cannot create topic {name!r}: {exc.args[0].str()}") from None
    _wait_for_topics(bootstrap, wanted, timeout)
    return created


def _wait_for_topics(bootstrap: str, names: Sequence[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(n in list_topics(bootstrap) for n in names):
            return
        time.sleep(0.1)


def delete_topics(bootstrap: str, names: Iterable[str], timeout: float = 10.0) -> None:
    """Delete topics (missing ones are ignored)."""
    existing = list_topics(bootstrap, timeout)
    names = [n for n in names if n in existing]
    if names:
        admin = admin_client(bootstrap)
        for fut in admin.delete_topics(names, operation_timeout=timeout).values():
            fut.result(timeout)


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[Record | tuple[bytes | None, bytes]],
    partition: int | None = None,
    config: dict | None = None,
    timeout: float = 60.0,
) -> int:
    """Produce `(key, value[, headers])` records with client-side batching, then flush.

    Keys choose the partition (murmur2, like the Java client) unless `partition` is given. Returns the number
    of records delivered; raises LakehouseError if any delivery failed.
    """
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            **PRODUCER_DEFAULTS,
            **(config or {}),
        }
    )
    errors: list[str] = []
    delivered = 0

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        nonlocal delivered
        if err is not None:
            errors.append(err.str())
        else:
            delivered += 1

    extra = {} if partition is None else {"partition": partition}
    for rec in records:
        key, value = rec[0], rec[1]
        headers = rec[2] if len(rec) > 2 else None  # type: ignore[misc]
        while True:
            try:
                producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=on_delivery, **extra
                )
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(timeout)
    if remaining:
        raise (
            _unreachable(bootstrap)
            if delivered == 0
            else LakehouseError(f"{remaining} records to {topic!r} were not delivered within {timeout:.0f}s")
        )
    if errors:
        raise LakehouseError(f"{len(errors)} records to {topic!r} failed: {errors[0]}")
    return delivered


def topic_partitions(bootstrap: str, topic: str, timeout: float = 5.0) -> list[int]:
    """Partition ids of `topic`; LakehouseError if the topic does not exist."""
    try:
        md = admin_client(bootstrap).list_topics(topic, timeout=timeout)
    except KafkaException:
        raise _unreachable(bootstrap) from None
    tmd = md.topics.get(topic)
    if tmd is None or tmd.error is not None or not tmd.partitions:
        raise LakehouseError(f"Kafka topic {topic!r} does not exist on {bootstrap}")
    return sorted(tmd.partitions)


def offsets_consumer(bootstrap: str, extra: dict | None = None) -> Consumer:
    """A group-less consumer for explicit `assign` reads (never commits offsets)."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "lakehouse-offsets",  # required by librdkafka; never joined (assign only)
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
            "socket.timeout.ms": 10000,
            **(extra or {}),
        }
    )


def watermarks(
    bootstrap: str,
    partitions: Iterable[tuple[str, int]],
    consumer: Consumer | None = None,
    timeout: float = 10.0,
) -> dict[tuple[str, int], tuple[int, int]]:
    """{(topic, partition): (earliest, end)} where `end` is the high watermark (the next offset to write)."""
    own = consumer is None
    consumer = consumer or offsets_consumer(bootstrap)
    try:
        return {
            (topic, part): consumer.get_watermark_offsets(TopicPartition(topic, part), timeout=timeout)
            for topic, part in partitions
        }
    except KafkaException:
        raise _unreachable(bootstrap) from None
    finally:
        if own:
            consumer.close()


def end_offsets(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """{partition: high watermark} of `topic` (the offset the next record will get)."""
    parts = topic_partitions(bootstrap, topic, timeout)
    return {
        p: hw
        for (_, p), (_, hw) in watermarks(bootstrap, [(topic, p) for p in parts], timeout=timeout).items()
    }


def start_offsets(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """{partition: earliest available offset} of `topic`."""
    parts = topic_partitions(bootstrap, topic, timeout)
    consumer = offsets_consumer(bootstrap)
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[0] for p in parts
        }
    finally:
        consumer.close()


def delete_records(bootstrap: str, topic: str, before: dict[int, int], timeout: float = 30.0) -> dict[int, int]:
    """Delete every record of `topic` below `before[partition]` (Kafka's DeleteRecords: the partition's log start
    moves there); returns {partition: new log start}."""
    wanted = [TopicPartition(topic, p, o) for p, o in sorted(before.items()) if o > 0]
    if not wanted:
        return {}
    admin = admin_client(bootstrap)  # held until the futures complete: they die with their client
    futures = admin.delete_records(wanted, request_timeout=timeout, operation_timeout=timeout)
    try:
        return {tp.partition: f.result(timeout).low_watermark for tp, f in futures.items()}
    except KafkaException as exc:
        raise LakehouseError(f"deleting records of Kafka topic {topic!r} failed: {exc}") from None


def read_records(bootstrap: str, topic: str, timeout: float = 30.0) -> list[tuple[int, int, bytes | None, bytes]]:
    """Read the whole topic (for tests/diagnostics): (partition, offset, key, value) of every record still
    retained, in offset order per partition."""
    bounds = {p: span for (_, p), span in watermarks(
        bootstrap, [(topic, p) for p in topic_partitions(bootstrap, topic)], timeout=timeout).items()}
    ends = {p: end for p, (start, end) in bounds.items() if end > start}
    consumer = offsets_consumer(bootstrap)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        seen: dict[int, int] = {}
        records = []
        deadline = time.monotonic() + timeout
        while any(seen.get(p, -1) < e - 1 for p, e in ends.items()) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10000, timeout=0.2):
                if msg.error() is None:
                    records.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
                    seen[msg.partition()] = msg.offset()
        return records
    finally:
        consumer.close()


def count_records(bootstrap: str, topic: str, timeout: float = 30.0) -> int:
    """Read the whole topic (for tests/diagnostics) and return how many records it holds."""
    return len(read_records(bootstrap, topic, timeout))
