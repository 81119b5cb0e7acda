"""`kafka` as a Python data source: a drop-in for Spark's Kafka connector when its jar is absent.

Same options and output schema as Spark's native source::

    spark.read.format("kafka")                       # batch: exact offset ranges
        .option("kafka.bootstrap.servers", "127.0.0.1:19092")
        .option("subscribe", "orders")               # or subscribePattern / assign
        .option("startingOffsets", "earliest")       # earliest | JSON {"orders":{"0":5}} (-2 = earliest)
        .option("endingOffsets", "latest")           # latest | JSON {"orders":{"0":9}} (-1 = latest)
        .load()
    spark.readStream.format("kafka")...              # micro-batches; offsets live in Spark's checkpoint
        .option("maxOffsetsPerTrigger", 10000)
        .option("failOnDataLoss", "true")

Columns: key, value (binary), topic, partition, offset, timestamp, timestampType (+ headers when
`includeHeaders`). Offsets are `{topic: {partition: next offset}}`; each micro-batch is the half-open range
[start, end) per partition, so re-running a batch from the checkpoint reads exactly the same records.
Executors read with confluent-kafka `assign` + explicit offsets (no consumer group, no commits) and yield
Arrow record batches. End offsets come from fetch-response high watermarks (correct on Tansu, see
`kafka_admin`).

Spark 4.1 has no read-limit API for Python sources, so `maxOffsetsPerTrigger` is applied in `latestOffset()`
relative to the end of the last planned batch. With `Trigger.AvailableNow` Spark 4.1 calls `latestOffset()`
once, so a run then stops after at most `maxOffsetsPerTrigger` records. Instead, the option `availableNow`
("true"; not a native option) bounds the stream at the offsets that are latest when the query starts, and
`lakehouse.streaming.run_query` runs it with back-to-back micro-batches until a trigger finds no new data.

Another option of ours, `emitOffsetRanges` ("true"), plans and checkpoints exactly the same micro-batches but
returns one row per offset range (topic, partition, fromOffset, untilOffset) instead of the records: a writer
that runs Python tasks anyway (bronze_events on delta-rs) reads the records itself with `read_ranges` in the
task that writes them, so they never cross into the JVM and back (that crossing cost as much CPU as reading).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql.datasource import DataSource, DataSourceReader, DataSourceStreamReader, InputPartition
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from lakehouse.errors import LakehouseError

log = logging.getLogger(__name__)

TP = tuple[str, int]
Offsets = dict[TP, int]

EARLIEST, LATEST = -2, -1
CONSUME_BATCH = 50_000  # messages per consume() call = rows per Arrow record batch
IDLE_TIMEOUT_S = 30.0
# options of Spark's Kafka source that are not librdkafka settings
_IGNORED_KAFKA_OPTS = {"kafka.bootstrap.servers", "kafka.group.id", "kafka.auto.offset.reset"}

HEADERS_TYPE = ArrayType(StructType([StructField("key", StringType()), StructField("value", BinaryType())]))


def kafka_schema(include_headers: bool = False) -> StructType:
    """The output schema of Spark's native Kafka source."""
    fields = [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
        StructField("timestampType", IntegerType()),
    ]
    if include_headers:
        fields.append(StructField("headers", HEADERS_TYPE))
    return StructType(fields)


ARROW_HEADERS = to_arrow_schema(kafka_schema(include_headers=True), timestamp_utc=True).field("headers").type
RANGES_SCHEMA = StructType([
    StructField("topic", StringType()), StructField("partition", IntegerType()),
    StructField("fromOffset", LongType()), StructField("untilOffset", LongType()),
])
_ARROW_RANGES = to_arrow_schema(RANGES_SCHEMA)


def kafka_arrow_schema(include_headers: bool = False) -> pa.Schema:
    """`kafka_schema` as the Arrow schema of the record batches the source's tasks return."""
    return to_arrow_schema(kafka_schema(include_headers), timestamp_utc=True)


def _bool(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    if value.strip().lower() in ("true", "1", "yes"):
        return True
    if value.strip().lower() in ("false", "0", "no"):
        return False
    raise LakehouseError(f"expected true or false, got {value!r}")


def offsets_to_json(offsets: Offsets) -> dict[str, dict[str, int]]:
    """{(topic, p): o} -> {"topic": {"p": o}} (the checkpoint format, like Spark's native source)."""
    out: dict[str, dict[str, int]] = {}
    for (topic, part), off in sorted(offsets.items()):
        out.setdefault(topic, {})[str(part)] = int(off)
    return out


def offsets_from_json(data: dict | str) -> Offsets:
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            raise LakehouseError(f'offsets must be JSON like {{"orders":{{"0":5}}}}, got {data!r}') from None
    if not isinstance(data, dict):
        raise LakehouseError(f'offsets must be a JSON object like {{"orders":{{"0":5}}}}, got {data!r}')
    out: Offsets = {}
    for topic, parts in data.items():
        if not isinstance(parts, dict):
            raise LakehouseError(f"offsets for topic {topic!r} must be an object {{partition: offset}}")
        for part, off in parts.items():
            out[(topic, int(part))] = int(off)
    return out


@dataclass(frozen=True)
class KafkaOptions:
    """Parsed and validated options (shared by batch and streaming readers; picklable)."""

    bootstrap: str
    subscribe: tuple[str, ...] = ()
    pattern: str | None = None
    assign: tuple[TP, ...] = ()
    starting: str | None = None
    ending: str = "latest"
    max_offsets: int | None = None
    fail_on_data_loss: bool = True
    include_headers: bool = False
    min_partitions: int = 0
    available_now: bool = False  # streams: never plan past the offsets that were latest at query start
    emit_offset_ranges: bool = False  # rows are the planned ranges, not the records (see the module doc)
    consumer_config: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, options: dict[str, str]) -> KafkaOptions:
        opts = {k.lower(): v for k, v in options.items()}
        bootstrap = opts.get("kafka.bootstrap.servers")
        if not bootstrap:
            raise LakehouseError("option kafka.bootstrap.servers is required (e.g. 127.0.0.1:19092)")
        chosen = [k for k in ("subscribe", "subscribepattern", "assign") if opts.get(k)]
        if len(chosen) != 1:
            raise LakehouseError("set exactly one of the options subscribe, subscribePattern or assign")
        subscribe = tuple(t.strip() for t in opts.get("subscribe", "").split(",") if t.strip())
        assign: tuple[TP, ...] = ()
        if opts.get("assign"):
            try:
                parsed = json.loads(opts["assign"])
                assign = tuple((t, int(p)) for t, ps in parsed.items() for p in ps)
            except (ValueError, AttributeError, TypeError):
                raise LakehouseError(
                    f'assign must be JSON like {{"orders":[0,1]}}, got {opts["assign"]!r}'
                ) from None
        max_offsets = opts.get("maxoffsetspertrigger")
        config = tuple(
            sorted(
                (k[len("kafka.") :], v)
                for k, v in opts.items()
                if k.startswith("kafka.") and k not in _IGNORED_KAFKA_OPTS
            )
        )
        try:
            return cls(
                bootstrap=bootstrap,
                subscribe=subscribe,
                pattern=opts.get("subscribepattern") or None,
                assign=assign,
                starting=opts.get("startingoffsets"),
                ending=opts.get("endingoffsets") or "latest",
                max_offsets=int(max_offsets) if max_offsets else None,
                fail_on_data_loss=_bool(opts.get("failondataloss"), True),
                include_headers=_bool(opts.get("includeheaders"), False),
                min_partitions=int(opts.get("minpartitions") or 0),
                available_now=_bool(opts.get("availablenow"), False),
                emit_offset_ranges=_bool(opts.get("emitoffsetranges"), False),
                consumer_config=config,
            )
        except ValueError as exc:
            raise LakehouseError(f"invalid Kafka source option: {exc}") from None


class _KafkaMeta:
    """Driver-side view of the broker: which partitions to read and their (earliest, end) offsets."""

    def __init__(self, opts: KafkaOptions) -> None:
        self.opts = opts
        self._consumer: Any = None

    def __getstate__(self) -> dict:
        return {"opts": self.opts, "_consumer": None}

    def consumer(self) -> Any:
        if self._consumer is None:
            from lakehouse.sources.kafka_admin import offsets_consumer

            self._consumer = offsets_consumer(self.opts.bootstrap, dict(self.opts.consumer_config))
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def topic_partitions(self) -> list[TP]:
        from confluent_kafka import KafkaException

        from lakehouse.sources.kafka_admin import _unreachable

        if self.opts.assign:
            return sorted(self.opts.assign)
        try:
            md = self.consumer().list_topics(timeout=10)
        except KafkaException:
            raise _unreachable(self.opts.bootstrap) from None
        if self.opts.pattern:
            regex = re.compile(self.opts.pattern)
            topics = [t for t in md.topics if regex.fullmatch(t) and not t.startswith("__")]
        else:
            topics = [t for t in self.opts.subscribe if t in md.topics and md.topics[t].error is None]
        return sorted((t, p) for t in topics for p in md.topics[t].partitions)

    def watermarks(self, tps: list[TP]) -> dict[TP, tuple[int, int]]:
        from lakehouse.sources.kafka_admin import watermarks

        return watermarks(self.opts.bootstrap, tps, consumer=self.consumer())

    def resolve(self, spec: str | None, default: str, marks: dict[TP, tuple[int, int]], what: str) -> Offsets:
        """Turn earliest / latest / JSON into concrete offsets for the partitions in `marks`."""
        spec = (spec or default).strip()
        if spec.lower() == "earliest":
            return {tp: low for tp, (low, _) in marks.items()}
        if spec.lower() == "latest":
            return {tp: high for tp, (_, high) in marks.items()}
        wanted = offsets_from_json(spec)
        out: Offsets = {}
        for tp, off in wanted.items():
            if tp not in marks:
                raise LakehouseError(
                    f"{what}: topic {tp[0]!r} partition {tp[1]} is not among the subscribed partitions"
                )
            low, high = marks[tp]
            out[tp] = low if off == EARLIEST else high if off == LATEST else off
        for tp, (low, high) in marks.items():  # partitions the JSON does not name: like the default
            if tp not in out:
                out[tp] = high if default == "latest" else low
        return out


def _data_loss(opts: KafkaOptions, message: str) -> None:
    if opts.fail_on_data_loss:
        raise LakehouseError(
            f"{message}. Data was lost (e.g. the broker restarted or retention deleted it). Set failOnDataLoss "
            "to false to continue from the available data, or restart the query with a new checkpoint."
        )
    log.warning("%s; continuing because failOnDataLoss=false", message)


class KafkaRange:
    """Records [start, end) of one topic partition."""

    def __init__(self, topic: str, partition: int, start: int, end: int) -> None:
        self.topic, self.partition, self.start, self.end = topic, partition, start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __repr__(self) -> str:
        return f"KafkaRange({self.topic}[{self.partition}] {self.start}..{self.end})"


class KafkaTask(InputPartition):
    """The ranges one Spark task reads, one after the other, with one consumer."""

    def __init__(self, ranges: list[KafkaRange]) -> None:
        self.ranges = ranges

    def __repr__(self) -> str:
        return f"KafkaTask({self.ranges})"


def _split(ranges: list[KafkaRange], min_partitions: int) -> list[KafkaRange]:
    """Split big ranges so there are at least `min_partitions` of them (order within a partition is kept)."""
    total = sum(map(len, ranges))
    if min_partitions <= len(ranges) or total == 0:
        return ranges
    out = []
    for r in ranges:
        pieces = max(1, round(min_partitions * len(r) / total))
        step = -(-len(r) // pieces)
        out += [
            KafkaRange(r.topic, r.partition, s, min(s + step, r.end)) for s in range(r.start, r.end, step)
        ]
    return out


def _tasks(ranges: list[KafkaRange], min_partitions: int) -> list[InputPartition]:
    """Ranges -> Spark tasks: at least `minPartitions` (big ranges are split), else as many tasks as cores, each
    range on the least loaded task, largest first. (A task per topic partition would pay Spark's per-task cost,
    and a file per output table, for every partition: with 5 topics x 2 partitions on 2 cores that was a third
    of a micro-batch.)"""
    ranges = _split(ranges, min_partitions)
    if not ranges:
        return [KafkaTask([])]  # Spark needs at least one partition; this one reads nothing
    tasks: list[list[KafkaRange]] = [[] for _ in range(min(len(ranges), max(min_partitions, os.cpu_count() or 1)))]
    for r in sorted(ranges, key=len, reverse=True):
        min(tasks, key=lambda t: sum(map(len, t))).append(r)
    return [KafkaTask(t) for t in tasks]


def _consumer_config(opts: KafkaOptions) -> dict[str, Any]:
    """librdkafka settings for an executor's assigned consumer: large fetches and a deep prefetch queue so
    `consume()` returns big batches without waiting on the network (user `kafka.*` options win)."""
    return {
        "bootstrap.servers": opts.bootstrap,
        "group.id": "lakehouse-kafka-source",  # never joined: assign() only, no commits
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "queued.min.messages": 1_000_000,
        "queued.max.messages.kbytes": 256 << 10,
        "fetch.max.bytes": 64 << 20,
        "max.partition.fetch.bytes": 32 << 20,
        "receive.message.max.bytes": (64 << 20) + 4096,
        "fetch.wait.max.ms": 10,
        **dict(opts.consumer_config),
    }


def _to_record_batch(msgs: list[Any], schema: pa.Schema, include_headers: bool) -> pa.RecordBatch:
    """Good messages (of any partitions) -> one Arrow record batch, column by column (one C-level conversion
    per column instead of per-row Python objects)."""
    stamps = [m.timestamp() for m in msgs]  # (type, ms); zip(*stamps) would cost 1 us per record
    kind = pa.array([s[0] for s in stamps], pa.int32())
    has_ts = pc.not_equal(kind, 0)
    micros = pc.multiply(pa.array([s[1] for s in stamps], pa.int64()), 1000)
    columns = [
        pa.array([m.key() for m in msgs], pa.binary()),
        pa.array([m.value() for m in msgs], pa.binary()),
        pa.array([m.topic() for m in msgs], pa.string()),
        pa.array([m.partition() for m in msgs], pa.int32()),
        pa.array([m.offset() for m in msgs], pa.int64()),
        pc.if_else(has_ts, micros, pa.scalar(None, pa.int64())).cast(pa.timestamp("us", tz="UTC")),
        # confluent-kafka 0 (none) / 1 (create) / 2 (log append) -> Kafka's -1 / 0 / 1
        pc.if_else(pc.less_equal(kind, 2), pc.subtract(kind, 1), pa.scalar(-1, pa.int32())),
    ]
    if include_headers:  # [(key, value), ...] or None per record: null where a record has none, as Spark's
        columns.append(pa.array([m.headers() for m in msgs], ARROW_HEADERS))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def read_ranges(opts: KafkaOptions, ranges: list[KafkaRange]) -> Iterator[pa.RecordBatch]:
    """Executor side: read the task's ranges with one assigned consumer; yield Arrow batches.

    All partitions of the task are assigned at once, so every fetch request asks for all of them (reading
    them one after the other waits a broker round trip per fetch and partition: 3x slower on Tansu). Two
    ranges of one partition (a range split for `minPartitions`) are read in successive rounds."""
    from confluent_kafka import Consumer

    rounds: list[list[KafkaRange]] = []
    for rng in (r for r in ranges if len(r) > 0):
        tp = (rng.topic, rng.partition)
        free = next((rd for rd in rounds if all((r.topic, r.partition) != tp for r in rd)), None)
        if free is None:
            rounds.append(free := [])
        free.append(rng)
    if not rounds:
        return
    consumer = Consumer(_consumer_config(opts))
    schema = kafka_arrow_schema(opts.include_headers)
    try:
        for round_ranges in rounds:
            yield from _read_concurrently(consumer, opts, round_ranges, schema)
    finally:
        consumer.close()


def read_task(opts: KafkaOptions, task: InputPartition) -> Iterator[pa.RecordBatch]:
    """What a source task returns: the records of its ranges, or with `emitOffsetRanges` the ranges."""
    assert isinstance(task, KafkaTask)
    if opts.emit_offset_ranges:
        ranges = [r for r in task.ranges if len(r) > 0]
        if ranges:
            yield pa.RecordBatch.from_pylist(
                [{"topic": r.topic, "partition": r.partition, "fromOffset": r.start, "untilOffset": r.end}
                 for r in ranges], schema=_ARROW_RANGES)
        return
    yield from read_ranges(opts, task.ranges)


def ranges_of(batch: pa.RecordBatch) -> list[KafkaRange]:
    """Rows of an `emitOffsetRanges` stream -> the ranges to give `read_ranges`."""
    return [KafkaRange(r["topic"], r["partition"], r["fromOffset"], r["untilOffset"]) for r in batch.to_pylist()]


def _partition_end(consumer: Any, opts: KafkaOptions, rng: KafkaRange, err: Any, next_offset: int) -> bool:
    """An error event of a partition being read: True when reading it must stop (data loss, already reported
    or tolerated by failOnDataLoss=false); raises on other errors."""
    from confluent_kafka import KafkaError, TopicPartition

    if err.code() == KafkaError._PARTITION_EOF:
        _, high = consumer.get_watermark_offsets(TopicPartition(rng.topic, rng.partition), cached=True)
        if high < rng.end:
            _data_loss(
                opts,
                f"Kafka topic {rng.topic!r} partition {rng.partition} ends at offset {high} but offsets up to "
                f"{rng.end - 1} were planned",
            )
            return True
        return False
    if err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
        _data_loss(
            opts,
            f"Kafka topic {rng.topic!r} partition {rng.partition}: offset {next_offset} is out of range "
            f"({err.str()})",
        )
        return True
    raise LakehouseError(f"reading Kafka {rng.topic}[{rng.partition}]: {err.str()}")


def _read_concurrently(consumer: Any, opts: KafkaOptions, ranges: list[KafkaRange],
                       schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Read [start, end) of several partitions (one range each) at once: messages come in large `consume()`
    batches of mixed partitions and are turned into Arrow columns in bulk; records outside a partition's
    range (prefetched past its end) are dropped with one vectorised filter, and a partition is unassigned
    as soon as its range is complete. Only error events (partition EOF, out of range) are looked at one by
    one."""
    from confluent_kafka import TopicPartition

    pending = {(r.topic, r.partition): r for r in ranges}
    next_offset = {tp: r.start for tp, r in pending.items()}
    _trace("read start", ranges, time.time())
    consumer.assign([TopicPartition(t, p, r.start) for (t, p), r in pending.items()])
    idle_since = time.monotonic()
    try:
        while pending:
            left = sum(pending[tp].end - next_offset[tp] for tp in pending)
            msgs = consumer.consume(num_messages=min(CONSUME_BATCH, left), timeout=1.0)
            if not msgs:
                if time.monotonic() - idle_since > IDLE_TIMEOUT_S:
                    for tp, rng in sorted(pending.items()):
                        _data_loss(opts, f"timed out reading {tp[0]}[{tp[1]}] offsets {next_offset[tp]}..{rng.end - 1}")
                    break
                continue
            finished: list[TP] = []
            errors = [m for m in msgs if m.error() is not None]
            if errors:
                for m in errors:
                    tp = (m.topic(), m.partition())
                    if tp in pending and tp not in finished and _partition_end(
                            consumer, opts, pending[tp], m.error(), next_offset[tp]):
                        finished.append(tp)
                msgs = [m for m in msgs if m.error() is None]
            if msgs:
                batch = _to_record_batch(msgs, schema, opts.include_headers)
                keep = None
                for tp, rng in pending.items():
                    if tp in finished:
                        continue
                    mine = pc.and_(pc.equal(batch["topic"], tp[0]), pc.equal(batch["partition"], tp[1]))
                    in_range = pc.and_(mine, pc.and_(pc.greater_equal(batch["offset"], next_offset[tp]),
                                                     pc.less(batch["offset"], rng.end)))
                    last = pc.max(pc.filter(batch["offset"], in_range)).as_py()
                    if last is not None:
                        next_offset[tp] = last + 1
                        keep = in_range if keep is None else pc.or_(keep, in_range)
                    if next_offset[tp] >= rng.end:
                        finished.append(tp)
                if keep is not None:
                    idle_since = time.monotonic()
                    yield batch if pc.all(keep).as_py() else batch.filter(keep)
            if finished:
                consumer.incremental_unassign([TopicPartition(t, p) for t, p in finished])
                for tp in finished:
                    pending.pop(tp, None)
    finally:
        _trace("read end", {f"{r.topic}[{r.partition}]": next_offset[(r.topic, r.partition)] - r.start
                            for r in ranges}, time.time())
        consumer.unassign()


def _trace(*args: Any) -> None:
    import os

    path = os.environ.get("LAKEHOUSE_KAFKA_TRACE")
    if path:
        with open(path, "a") as fh:
            fh.write(" ".join(map(str, args)) + "\n")


class KafkaBatchReader(DataSourceReader):
    """`spark.read.format("kafka")`: one task per topic partition range [startingOffsets, endingOffsets)."""

    def __init__(self, opts: KafkaOptions) -> None:
        self.opts = opts

    def partitions(self) -> list[InputPartition]:
        if (self.opts.starting or "").strip().lower() == "latest":
            raise LakehouseError(
                "startingOffsets=latest is not valid for batch queries (use earliest or JSON)"
            )
        if self.opts.ending.strip().lower() == "earliest":
            raise LakehouseError("endingOffsets=earliest is not valid for batch queries (use latest or JSON)")
        meta = _KafkaMeta(self.opts)
        try:
            tps = meta.topic_partitions()
            marks = meta.watermarks(tps)
            start = meta.resolve(self.opts.starting, "earliest", marks, "startingOffsets")
            end = meta.resolve(self.opts.ending, "latest", marks, "endingOffsets")
        finally:
            meta.close()
        ranges = []
        for tp in tps:
            low, high = marks[tp]
            s, e = start[tp], end[tp]
            if s < low:
                _data_loss(
                    self.opts,
                    f"Kafka topic {tp[0]!r} partition {tp[1]}: starting offset {s} is below the earliest available offset {low}",
                )
                s = low
            if e > high:
                _data_loss(
                    self.opts,
                    f"Kafka topic {tp[0]!r} partition {tp[1]}: ending offset {e} is beyond the end of the partition ({high})",
                )
                e = high
            if e > s:
                ranges.append(KafkaRange(tp[0], tp[1], s, e))
        return _tasks(ranges, self.opts.min_partitions)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        yield from read_task(self.opts, partition)


class KafkaStreamReader(DataSourceStreamReader):
    """`spark.readStream.format("kafka")`: offsets {topic: {partition: next offset}} kept in the checkpoint."""

    def __init__(self, opts: KafkaOptions) -> None:
        self.opts = opts
        self.meta = _KafkaMeta(opts)
        self._planned: Offsets | None = None  # end of the last batch Spark planned (cap base for maxOffsets)
        self._low: dict[TP, int] = {}
        self._until: Offsets | None = None  # availableNow: the end of input, fixed at the first latestOffset

    def __getstate__(self) -> dict:
        return {"opts": self.opts, "meta": _KafkaMeta(self.opts), "_planned": None, "_low": {}, "_until": None}

    def initialOffset(self) -> dict:
        _trace("initialOffset", self._planned)
        tps = self.meta.topic_partitions()
        marks = self.meta.watermarks(tps)
        start = self.meta.resolve(self.opts.starting, "latest", marks, "startingOffsets")
        self._planned = dict(start)
        return offsets_to_json(start)

    def latestOffset(self) -> dict:
        _trace("latestOffset", self._planned)
        tps = self.meta.topic_partitions()
        marks = self.meta.watermarks(tps)
        self._low = {tp: low for tp, (low, _) in marks.items()}
        end: Offsets = {tp: high for tp, (_, high) in marks.items()}
        if self._planned is None:
            # a new query: Spark asks for latestOffset before initialOffset (a restarted one first replays the
            # checkpointed offset through partitions(), which sets _planned)
            self._planned = self.meta.resolve(self.opts.starting, "latest", marks, "startingOffsets")
        base = self._planned
        if base is not None:
            for tp, off in base.items():
                if tp not in marks:
                    _data_loss(self.opts, f"Kafka topic {tp[0]!r} partition {tp[1]} no longer exists")
                    continue
                low, high = marks[tp]
                if off > high:
                    _data_loss(
                        self.opts,
                        f"Kafka topic {tp[0]!r} partition {tp[1]}: the checkpoint is at offset {off} but the broker "
                        f"only has offsets up to {high}",
                    )
                elif off < low:
                    _data_loss(
                        self.opts,
                        f"Kafka topic {tp[0]!r} partition {tp[1]}: the checkpoint is at offset {off} but the "
                        f"earliest available offset is {low}",
                    )
        if self.opts.available_now:
            self._until = self._until or dict(end)
            end = {tp: min(high, self._until.get(tp, self._low[tp])) for tp, high in end.items()}
        if self.opts.max_offsets and base is not None:
            end = self._cap(base, end, self.opts.max_offsets)
        return offsets_to_json(end)

    def _cap(self, base: Offsets, end: Offsets, limit: int) -> Offsets:
        """Limit the batch to `limit` records in total, shared in proportion to each partition's backlog."""
        starts = {tp: self._effective_start(tp, base.get(tp), end[tp]) for tp in end}
        lag = {tp: max(0, end[tp] - starts[tp]) for tp in end}
        total = sum(lag.values())
        if total <= limit:
            return end
        capped: Offsets = {}
        given = 0
        for tp in sorted(end):
            take = lag[tp] * limit // total
            capped[tp] = starts[tp] + take
            given += take
        for tp in sorted(end, key=lambda t: -lag[t]):  # hand out the rounding remainder
            if given >= limit:
                break
            if capped[tp] < end[tp]:
                capped[tp] += 1
                given += 1
        return capped

    def _effective_start(self, tp: TP, start: int | None, end: int) -> int:
        """Where reading really starts: the checkpointed offset, or earliest for new / reset partitions."""
        low = self._low.get(tp)
        if low is None:
            low = self.meta.watermarks([tp])[tp][0]
            self._low[tp] = low
        if start is None or start > end or start < low:
            return low  # new partition, or data lost (failOnDataLoss=false already warned)
        return start

    def partitions(self, start: dict, end: dict) -> list[InputPartition]:
        _trace("partitions", start, end)
        s_off, e_off = offsets_from_json(start), offsets_from_json(end)
        self._planned = dict(e_off)
        ranges = []
        for tp, e in sorted(e_off.items()):
            s = s_off.get(tp)
            if s == e:
                continue
            s = self._effective_start(tp, s, e)
            if e > s:
                ranges.append(KafkaRange(tp[0], tp[1], s, e))
        return _tasks(ranges, self.opts.min_partitions)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        yield from read_task(self.opts, partition)

    def commit(self, end: dict) -> None:
        """Nothing to do: progress lives in Spark's checkpoint, not in Kafka consumer groups."""

    def stop(self) -> None:
        self.meta.close()


class KafkaPythonSource(DataSource):
    """Spark data source `kafka` (batch and streaming) in Python, options compatible with the native one."""

    @classmethod
    def name(cls) -> str:
        return "kafka"

    def schema(self) -> StructType:
        opts = {k.lower(): v for k, v in self.options.items()}
        if _bool(opts.get("emitoffsetranges"), False):
            return RANGES_SCHEMA
        return kafka_schema(_bool(opts.get("includeheaders"), False))

    def reader(self, schema: StructType) -> DataSourceReader:
        return KafkaBatchReader(KafkaOptions.parse(self.options))

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return KafkaStreamReader(KafkaOptions.parse(self.options))


# --- registration under the name `kafka` -------------------------------------------------------------------
# Spark 4.1 reserves `kafka`: DataSource.lookupDataSource("kafka") throws "Failed to find data source: kafka ..."
# *before* it looks at Python data sources, and spark.dataSource.register refuses the name. Two pieces fix it:
#  1. a tiny JVM class (below, compiled with javac against pyspark's jars, no Maven) that extends
#     PythonDataSourceV2 and is listed as a DataSourceRegister with shortName "kafka", so the lookup finds it first;
#     Spark then calls setShortName("kafka") and resolves the Python source registered under that name;
#  2. registering the Python class with the session's DataSourceManager directly (skipping register's name check).

KAFKA_PROVIDER_CLASS = "lakehouse.kafka.KafkaPythonProvider"
def provider_jar_path(settings: Any = None) -> Any:
    from lakehouse.config import get_settings

    settings = settings or get_settings()
    return settings.home / "build" / "lakehouse-kafka-provider.jar"


def ensure_kafka_provider_jar(settings: Any = None) -> Any:
    """Build (when missing or stale) and return the jar with the JVM `kafka` provider (infra/kafka-provider);
    it goes on the driver classpath only when Spark's own Kafka connector is absent."""
    from lakehouse.config import REPO_ROOT
    from lakehouse.jvm import ensure_jar

    return ensure_jar(REPO_ROOT / "infra" / "kafka-provider", provider_jar_path(settings), "Kafka format provider")


def _jvm_class_visible(spark: Any, name: str) -> bool:
    jvm = spark.sparkContext._jvm
    try:
        jvm.java.lang.Class.forName(name, False, jvm.Thread.currentThread().getContextClassLoader())
        return True
    except Exception:  # noqa: BLE001 - Py4J wraps ClassNotFoundException
        return False


def register_kafka_source(spark: Any) -> None:
    """Register `KafkaPythonSource` as `kafka` in `spark`'s session (bypassing register's reserved-name check).

    Also makes the JVM `kafka` provider visible: from `spark.jars` if the session was started with the jar
    from `ensure_kafka_provider_jar`, else by `ADD JAR` (visible to this thread and threads it starts).
    """
    from pyspark.sql.udf import _wrap_function

    if not _jvm_class_visible(spark, KAFKA_PROVIDER_CLASS):  # session built without it on spark.jars
        # session jar class loader; it becomes this thread's context loader (and that of threads it starts,
        # e.g. streaming query threads), which is where Spark's data source lookup searches
        spark.sql(f"ADD JAR '{ensure_kafka_provider_jar()}'")
    sc = spark.sparkContext
    wrapped = _wrap_function(sc, KafkaPythonSource)
    cls = getattr(sc._jvm, "org.apache.spark.sql.execution.datasources.v2.python.UserDefinedPythonDataSource")
    spark._jsparkSession.sessionState().dataSourceManager().registerDataSource(
        KafkaPythonSource.name(), cls(wrapped)
    )
    # `kafka` is on Spark's default V1 list, which would send the (V2) provider down the V1 path
    v1 = spark.conf.get("spark.sql.sources.useV1SourceList", "avro,csv,json,kafka,orc,parquet,text") or ""
    names = [n for n in v1.split(",") if n.strip() and n.strip().lower() != "kafka"]
    spark.conf.set("spark.sql.sources.useV1SourceList", ",".join(names))
