"""The local Apache Kafka broker as a managed service: data on disk survives a clean restart and a SIGKILL,
committed group offsets too, and a port held by another home's broker is named in the error."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from conftest import KafkaTestBroker

from lakehouse.errors import LakehouseError
from lakehouse.services import broker as service
from lakehouse.services import process
from lakehouse.sources.kafka_admin import count_records, create_topics, end_offsets, list_topics, produce

RECORDS = 2000


def _commit_group_offsets(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def _group_offsets(bootstrap: str, group: str, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=30)
        return {(tp.topic, tp.partition): tp.offset for tp in committed}
    finally:
        consumer.close()


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while process.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_topics_records_and_group_offsets_survive_restart_and_sigkill(fresh_broker) -> None:
    topic, group = f"keep_{uuid.uuid4().hex[:6]}", f"g_{uuid.uuid4().hex[:6]}"
    bootstrap = fresh_broker.bootstrap
    create_topics(bootstrap, [topic], 3)
    assert produce(bootstrap, topic, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(RECORDS)]) == RECORDS
    ends = end_offsets(bootstrap, topic)
    assert sum(ends.values()) == RECORDS
    committed = {(topic, p): e // 2 for p, e in ends.items()}
    _commit_group_offsets(bootstrap, group, committed)
    first_pid = fresh_broker.pid

    fresh_broker.restart()  # SIGTERM: a clean shutdown
    assert fresh_broker.pid != first_pid
    assert list_topics(bootstrap) == {topic: 3}
    assert end_offsets(bootstrap, topic) == ends
    assert count_records(bootstrap, topic) == RECORDS
    assert _group_offsets(bootstrap, group, list(committed)) == committed

    produce(bootstrap, topic, [(b"after", b"restart")])
    _kill(fresh_broker.pid)  # a crash: the next start recovers the logs
    assert not service.broker_ready(bootstrap, timeout=1.0)
    fresh_broker.start()
    assert sum(end_offsets(bootstrap, topic).values()) == RECORDS + 1
    assert count_records(bootstrap, topic) == RECORDS + 1
    assert _group_offsets(bootstrap, group, list(committed)) == committed


def test_broker_files_live_under_the_home_and_status_reports_them(fresh_broker) -> None:
    home = fresh_broker.settings.home
    assert (home / "kafka" / "data" / "meta.properties").is_file()
    config = (home / "kafka" / "server.properties").read_text()
    assert f"listeners=PLAINTEXT://127.0.0.1:{fresh_broker.settings.broker_port},CONTROLLER://127.0.0.1:" in config
    assert "auto.create.topics.enable=false" in config
    st = service.broker_status(fresh_broker.settings)
    assert (st["running"], st["ready"], st["bootstrap"]) == (True, True, fresh_broker.bootstrap)
    assert st["log_file"] == str(home / "logs" / "broker.log")
    assert "Kafka Server started" in (home / "logs" / "broker.log").read_text()
    again = service.start_broker(fresh_broker.settings)  # idempotent: the running broker is returned
    assert again.pid == fresh_broker.pid


def test_broker_for_uses_the_answering_broker_else_runs_its_own_for_the_block(fresh_broker, tmp_path) -> None:
    with service.broker_for(fresh_broker.settings) as bootstrap:
        assert bootstrap == fresh_broker.bootstrap
    assert service.broker_ready(fresh_broker.bootstrap)  # not ours to stop
    own = KafkaTestBroker(tmp_path / "own_home")
    assert own.pid is None
    with service.broker_for(own.settings) as bootstrap:
        assert bootstrap == own.bootstrap and service.broker_ready(bootstrap)
        pid = own.pid
        assert pid is not None and pid != fresh_broker.pid
    assert own.pid is None and not service.broker_ready(own.bootstrap, timeout=1.0)


def test_port_of_another_homes_broker_is_named_in_the_error(fresh_broker, tmp_path) -> None:
    other = dataclasses.replace(fresh_broker.settings, home=tmp_path / "other_home")
    with pytest.raises(LakehouseError) as err:
        service.start_broker(other)
    assert str(err.value) == (
        f"cannot start broker: port 127.0.0.1:{fresh_broker.settings.broker_port} is already in use by broker "
        f"(pid {fresh_broker.pid}) of LAKEHOUSE_HOME={fresh_broker.settings.home}; stop it with "
        f"`LAKEHOUSE_HOME={fresh_broker.settings.home} lakehouse services stop` or choose another port"
    )
    assert not (tmp_path / "other_home" / "kafka").exists()


def test_port_held_by_another_program_names_its_pid(tmp_path) -> None:
    import socket

    b = KafkaTestBroker(tmp_path / "home")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", b.settings.broker_port))
        sock.listen()
        with pytest.raises(LakehouseError, match=rf"in use by another program \(pid {os.getpid()}: "):
            b.start()
