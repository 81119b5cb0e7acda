"""Bronze for every family against the real broker: bronze + dead-letter = produced, per family and reason,
every Kafka coordinate exactly once, and a replayed batch changes nothing."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from pyspark.sql.types import BinaryType

from lakehouse.errors import LakehouseError
from lakehouse.events import FAMILIES
from lakehouse.events.generator import FAULTS, StreamConfig, generate_stream, produce_stream
from lakehouse.sources.kafka_admin import create_topics, produce


def _look_alikes(prefix: str) -> list[str]:
    return [f"erp.{prefix}inventory", f"{prefix}inventory.positions", f"x{prefix}orders"]


@pytest.fixture(scope="module")
def ingested(spark, tables, settings, broker, tmp_path_factory):
    from lakehouse.ingest import IngestSpec, ingest

    uid = uuid.uuid4().hex[:6]
    config = StreamConfig(seed=11, rate=40, duration_s=30, faults=dict.fromkeys(FAULTS, 0.03),
                          topic_prefix=f"ev_{uid}_", max_bytes=8192)
    stream = generate_stream(config)
    produce_stream(broker.bootstrap, stream, partitions=2)
    # topics whose names contain a family topic's: CDC, an output topic, another prefix; none is a family's
    for topic in _look_alikes(config.topic_prefix):
        create_topics(broker.bootstrap, [topic], 1)
        produce(broker.bootstrap, topic, [(b"k", b'{"event_id": "look-alike"}')])
    spec = IngestSpec(family="all", topic_prefix=config.topic_prefix, max_bytes=config.max_bytes,
                      tables={f: f"bronze.t_{uid}_{f}" for f in FAMILIES},
                      dead_letter_table=f"bronze.t_{uid}_dead_letter",
                      checkpoint=str(tmp_path_factory.mktemp("ck") / "bronze_events"))
    local = dataclasses.replace(settings, kafka_bootstrap=broker.bootstrap)
    stats = ingest(spark, tables, local, spec)
    return stream, spec, local, stats


def test_bronze_plus_dead_letter_equals_produced_per_family_and_reason(ingested, tables) -> None:
    stream, spec, _, stats = ingested
    assert sum(s.rows for s in stats) == stream.report.produced
    dead = tables.read(spec.dead_letter_table)
    dead_counts = {(r["event_family"], r["reason"]): r["count"]
                   for r in dead.groupBy("event_family", "reason").count().collect()}
    for family, rep in stream.report.families.items():
        assert tables.read(spec.table(family)).count() == rep.bronze, family
        assert {reason: dead_counts.get((family, reason), 0) for reason in rep.dead_letter} == rep.dead_letter
        assert rep.bronze + sum(rep.dead_letter.values()) == rep.produced
    assert sum(dead_counts.values()) == sum(sum(r.dead_letter.values()) for r in stream.report.families.values())


def test_every_kafka_coordinate_lands_exactly_once_with_headers(ingested, tables) -> None:
    stream, spec, _, _ = ingested
    coords: list[tuple[str, int, int]] = []
    for family in FAMILIES:
        df = tables.read(spec.table(family))
        coords += [(r[0], r[1], r[2]) for r in df.select("topic", "partition", "offset").collect()]
        headers = df.select("headers").first()["headers"]
        assert {h["key"]: bytes(h["value"]) for h in headers}["event_family"] == family.encode()
    coords += [(r[0], r[1], r[2]) for r in tables.read(spec.dead_letter_table)
               .select("topic", "partition", "offset").collect()]
    assert len(coords) == len(set(coords)) == stream.report.produced
    for topic in {t for t, _, _ in coords}:
        for part in {p for t, p, _ in coords if t == topic}:
            offsets = sorted(o for t, p, o in coords if t == topic and p == part)
            assert offsets == list(range(len(offsets)))  # contiguous: nothing skipped


def test_only_the_family_topics_are_read(ingested, tables) -> None:
    """`--family all` subscribes by pattern; topics that merely contain a family topic's name are not read."""
    stream, spec, _, stats = ingested
    read = {r.topic for name in [*(spec.table(f) for f in FAMILIES), spec.dead_letter_table]
            for r in tables.read(name).select("topic").distinct().collect()}
    assert read == {f"{stream.config.topic_prefix}{f}" for f in FAMILIES}
    assert sum(s.rows for s in stats) == stream.report.produced  # look-alike records were not even counted


def test_replayed_batch_is_skipped_and_modes_do_not_mix(ingested, spark, tables, tmp_path) -> None:
    from lakehouse.ingest import IngestSpec, check_single_mode, ingest

    stream, spec, local, _ = ingested
    before = {t: tables.version(t) for t in [spec.table(f) for f in FAMILIES] + [spec.dead_letter_table]}
    # a lost checkpoint replays batch 0 from the earliest offsets: every table already has (app id, 0)
    ingest(spark, tables, local, dataclasses.replace(spec, checkpoint=str(tmp_path / "ck")))
    assert {t: tables.version(t) for t in before} == before
    with pytest.raises(LakehouseError, match="one mode"):
        check_single_mode(tables, IngestSpec(family="orders", tables=spec.tables))


def test_kafka_keys_are_kept_byte_for_byte(spark, tables, settings, broker, tmp_path) -> None:
    """Keys need not be UTF-8: bronze and the dead letters keep them as the bytes Kafka delivered."""
    from lakehouse.ingest import IngestSpec, ingest

    uid = uuid.uuid4().hex[:6]
    keys = [b"\xff\xfeorder-1", b"caf\xe9", "kéy-€".encode(), b"", None]
    records = [(k, v) for k in keys for v in (b'{"event_id": "e1"}', b"{not json")]
    create_topics(broker.bootstrap, [f"keys_{uid}_orders"], 1)
    produce(broker.bootstrap, f"keys_{uid}_orders", records)
    spec = IngestSpec(topic_prefix=f"keys_{uid}_", tables={f: f"bronze.k_{uid}_{f}" for f in FAMILIES},
                      dead_letter_table=f"bronze.k_{uid}_dead_letter", checkpoint=str(tmp_path / "ck"))
    ingest(spark, tables, dataclasses.replace(settings, kafka_bootstrap=broker.bootstrap), spec)

    for name in (spec.table("orders"), spec.dead_letter_table):
        df = tables.read(name)
        assert isinstance(df.schema["key"].dataType, BinaryType), name
        stored = [None if r.key is None else bytes(r.key) for r in df.select("key").collect()]
        assert sorted(stored, key=repr) == sorted(keys, key=repr), name


def test_the_next_stream_takes_order_numbers_no_record_of_these_topics_used(ingested, broker) -> None:
    """unused_first_order counts the family topics' records only (the look-alikes hold one each), plus one."""
    from lakehouse.events.generator import unused_first_order

    stream, _, _, _ = ingested
    assert unused_first_order(broker.bootstrap, stream.config.topic_prefix) == stream.report.produced + 1
    assert unused_first_order(broker.bootstrap, "no_such_prefix_") == 1  # no family topic exists yet


def test_a_table_a_micro_batch_creates_is_selectable_by_name_right_after_its_commit(spark, tables, settings,
                                                                                    broker) -> None:
    """The always-on stage never ends, so its tables are registered by the micro-batch that creates them."""
    from lakehouse.ingest import IngestSpec, make_batch_writer
    from lakehouse.sources.kafka import read_kafka_batch

    uid = uuid.uuid4().hex[:6]
    create_topics(broker.bootstrap, [f"reg_{uid}_payments"], 1)
    produce(broker.bootstrap, f"reg_{uid}_payments", [(b"k", b'{"event_id": "p1"}'), (b"k", b"{not json")])
    spec = IngestSpec(topic_prefix=f"reg_{uid}_", tables={f: f"bronze.r_{uid}_{f}" for f in FAMILIES},
                      dead_letter_table=f"bronze.r_{uid}_dead_letter")
    batch = read_kafka_batch(spark, dataclasses.replace(settings, kafka_bootstrap=broker.bootstrap),
                             f"reg_{uid}_payments", {"includeHeaders": "true"})
    registered: set[str] = set()
    make_batch_writer(tables, spec, [], registered)(batch, 0)

    written = {spec.table("payments"), spec.dead_letter_table}
    assert registered == written  # tables the batch did not write (the other families) are not created
    assert [spark.table(name).count() for name in sorted(written)] == [1, 1]
    assert not spark.catalog.tableExists(spec.table("orders"))
