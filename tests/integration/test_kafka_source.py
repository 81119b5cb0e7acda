"""The Python `kafka` source against a real local broker (Tansu): exact ranges, exactly-once, limits, data loss."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from lakehouse.errors import LakehouseError, ServiceNotRunning
from lakehouse.sources.kafka_admin import create_topics, end_offsets, produce


def _topic(partitions: int, bootstrap: str) -> str:
    name = f"t_{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, [name], partitions)
    return name


def _records(n: int, tag: str = "v") -> list[tuple[bytes, bytes]]:
    return [(f"k{i}".encode(), f"{tag}{i}".encode()) for i in range(n)]


def _stream(spark, bootstrap: str, topic: str, **options: str):
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
    )
    for key, value in options.items():
        reader = reader.option(key, value)
    return reader.load()


def _run_available_now(df, out: Path, checkpoint: Path) -> list[int]:
    q = (
        df.writeStream.format("parquet")
        .option("path", str(out))
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    q.awaitTermination(240)
    if q.exception() is not None:
        raise q.exception()
    return [p["numInputRows"] for p in q.recentProgress]


def test_end_offsets_correct_with_multi_record_batches(broker) -> None:
    """Tansu's ListOffsets is wrong after multi-record batches; end_offsets uses the fetch high watermark."""
    topic = _topic(3, broker.bootstrap)
    produce(broker.bootstrap, topic, _records(5000))  # batched: many records per produce request
    ends = end_offsets(broker.bootstrap, topic)
    assert sum(ends.values()) == 5000
    produce(broker.bootstrap, topic, _records(7), partition=1)
    assert end_offsets(broker.bootstrap, topic)[1] == ends[1] + 7


def test_unreachable_broker_is_one_clear_error() -> None:
    from lakehouse.services.broker import require_broker
    from lakehouse.services.process import free_port

    with pytest.raises(ServiceNotRunning, match="is not reachable; start it with `lakehouse services start`"):
        require_broker(f"127.0.0.1:{free_port()}", timeout=0.5)


def test_broker_start_is_idempotent_and_port_busy_is_clear(broker, tmp_path) -> None:
    import dataclasses

    from lakehouse.services.broker import broker_status, start_broker

    assert start_broker(broker.settings).pid == broker_status(broker.settings)["pid"]
    other = dataclasses.replace(broker.settings, home=tmp_path / "other")
    other.bin_dir.mkdir(parents=True)
    (other.bin_dir / "tansu").symlink_to(broker.settings.bin_dir / "tansu")
    with pytest.raises(LakehouseError, match="already in use"):
        start_broker(other)


def test_batch_read_exact_offset_range(spark, broker) -> None:
    topic = _topic(2, broker.bootstrap)
    produce(broker.bootstrap, topic, [(None, f"p0-{i}".encode()) for i in range(20)], partition=0)
    produce(broker.bootstrap, topic, [(None, f"p1-{i}".encode()) for i in range(10)], partition=1)
    df = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", broker.bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", json.dumps({topic: {"0": 5, "1": -2}}))
        .option("endingOffsets", json.dumps({topic: {"0": 12, "1": 3}}))
        .load()
    )
    assert [f.name for f in df.schema.fields] == [
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        "timestamp",
        "timestampType",
    ]
    rows = sorted((r.partition, r.offset, bytes(r.value).decode()) for r in df.collect())
    expected = [(0, o, f"p0-{o}") for o in range(5, 12)] + [(1, o, f"p1-{o}") for o in range(3)]
    assert rows == expected
    everything = spark.read.format("kafka").option("kafka.bootstrap.servers", broker.bootstrap)
    assert everything.option("subscribe", topic).load().count() == 30


def test_one_task_reads_several_partitions_and_split_ranges_exactly(spark, broker) -> None:
    """A task reads all its partitions at once with one consumer: records prefetched past a range's end are
    dropped, two ranges of one partition are both read, an empty range reads nothing."""
    from lakehouse.sources.kafka_source import KafkaOptions, KafkaRange, read_ranges

    topic = _topic(3, broker.bootstrap)
    for p in range(3):
        produce(broker.bootstrap, topic, [(None, f"p{p}-{i}".encode()) for i in range(50)], partition=p)
    opts = KafkaOptions.parse({"kafka.bootstrap.servers": broker.bootstrap, "subscribe": topic})
    ranges = [KafkaRange(topic, 0, 0, 10), KafkaRange(topic, 0, 20, 30), KafkaRange(topic, 1, 5, 45),
              KafkaRange(topic, 2, 49, 50), KafkaRange(topic, 2, 7, 7)]
    rows = [(r["partition"], r["offset"], r["value"].decode())
            for batch in read_ranges(opts, ranges) for r in batch.to_pylist()]
    expected = ([(0, o, f"p0-{o}") for o in [*range(10), *range(20, 30)]]
                + [(1, o, f"p1-{o}") for o in range(5, 45)] + [(2, 49, "p2-49")])
    assert sorted(rows) == expected
    # minPartitions splits every partition's range into pieces spread over the tasks: still each record once
    split = (spark.read.format("kafka").option("kafka.bootstrap.servers", broker.bootstrap)
             .option("subscribe", topic).option("minPartitions", "7").load())
    assert split.rdd.getNumPartitions() >= 2
    got = sorted((r.partition, r.offset) for r in split.select("partition", "offset").collect())
    assert got == [(p, o) for p in range(3) for o in range(50)]


def test_stream_exactly_once_across_restart(spark, broker, tmp_path) -> None:
    topic = _topic(2, broker.bootstrap)
    produce(broker.bootstrap, topic, _records(300, "a"))
    out, ck = tmp_path / "out", tmp_path / "ck"
    assert sum(_run_available_now(_stream(spark, broker.bootstrap, topic), out, ck)) == 300
    produce(broker.bootstrap, topic, _records(200, "b"))
    assert sum(_run_available_now(_stream(spark, broker.bootstrap, topic), out, ck)) == 200
    assert _run_available_now(_stream(spark, broker.bootstrap, topic), out, ck) in ([], [0])  # nothing new
    got = spark.read.parquet(str(out))
    assert got.count() == 500
    assert got.select("partition", "offset").distinct().count() == 500
    values = {bytes(r.value).decode() for r in got.select("value").collect()}
    assert values == {f"a{i}" for i in range(300)} | {f"b{i}" for i in range(200)}


def test_max_offsets_per_trigger_splits_batches(spark, broker, tmp_path) -> None:
    topic = _topic(2, broker.bootstrap)
    produce(broker.bootstrap, topic, _records(250))
    name = f"m_{uuid.uuid4().hex[:8]}"
    q = (
        _stream(spark, broker.bootstrap, topic, maxOffsetsPerTrigger="100")
        .writeStream.format("memory")
        .queryName(name)
        .option("checkpointLocation", str(tmp_path / "ck"))
        .start()
    )
    try:
        q.processAllAvailable()
        sizes = [p["numInputRows"] for p in q.recentProgress if p["numInputRows"]]
    finally:
        q.stop()
    assert sizes == [100, 100, 50]
    assert spark.table(name).select("partition", "offset").distinct().count() == 250


def test_fail_on_data_loss_after_broker_restart(spark, fresh_broker, tmp_path) -> None:
    b = fresh_broker
    topic = _topic(1, b.bootstrap)
    produce(b.bootstrap, topic, _records(50))
    out, ck = tmp_path / "out", tmp_path / "ck"
    assert sum(_run_available_now(_stream(spark, b.bootstrap, topic), out, ck)) == 50

    b.restart()  # in-memory broker: every record is gone
    create_topics(b.bootstrap, [topic], 1)
    produce(b.bootstrap, topic, _records(10, "new"))
    with pytest.raises(Exception, match="failOnDataLoss") as err:
        _run_available_now(_stream(spark, b.bootstrap, topic), out, ck)
    assert "checkpoint is at offset 50" in str(err.value)

    rows = _run_available_now(_stream(spark, b.bootstrap, topic, failOnDataLoss="false"), out, ck)
    assert sum(rows) == 10
    values = {bytes(r.value).decode() for r in spark.read.parquet(str(out)).select("value").collect()}
    assert {f"new{i}" for i in range(10)} <= values and len(values) == 60


def test_managed_process_stale_pid_idempotent_start_and_stop(broker, tmp_path) -> None:
    import dataclasses

    from lakehouse.services import process

    s = dataclasses.replace(broker.settings, home=tmp_path / "home")
    process.pid_file("ghost", s).write_text("999999")  # stale: no such process
    assert not process.status("ghost", s).running and not process.pid_file("ghost", s).exists()
    first = process.start("sleeper", ["sleep", "60"], tmp_path / "s.log", settings=s)
    assert process.start("sleeper", ["sleep", "60"], tmp_path / "s.log", settings=s).pid == first.pid
    assert process.stop("sleeper", settings=s) and not process.status("sleeper", s).running
    with pytest.raises(LakehouseError, match="exited with code 1"):
        process.start("bad", ["false"], tmp_path / "b.log", ready_check=lambda: False, timeout=3, settings=s)
