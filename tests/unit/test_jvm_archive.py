"""Class-data sharing archives: named by the JDK and jars they were dumped from, published once, stale ones
dropped, and never required."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakehouse import jvm_archive


@pytest.fixture
def jars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    monkeypatch.setenv("LAKEHOUSE_JARS", str(tmp_path))
    found = []
    for name in ("a.jar", "b.jar"):
        (tmp_path / name).write_bytes(b"x" * 10)
        found.append(tmp_path / name)
    return found


def test_the_name_changes_with_the_jdk_and_with_any_jar(jars: list[Path], tmp_path: Path) -> None:
    first = jvm_archive.archive_path("spark-driver", "/usr/bin/java", jars)
    assert first.parent == tmp_path and first.name.startswith("spark-driver-") and first.suffix == ".jsa"
    assert jvm_archive.archive_path("spark-driver", "/usr/bin/java", jars) == first
    assert jvm_archive.archive_path("spark-driver", str(tmp_path / "other-java"), jars) != first
    jars[1].write_bytes(b"y" * 11)  # a re-fetched jar
    assert jvm_archive.archive_path("spark-driver", "/usr/bin/java", jars) != first


def test_no_options_without_an_archive_and_sharing_with_one(tmp_path: Path) -> None:
    archive = tmp_path / "spark-driver-0123456789abcdef.jsa"
    assert jvm_archive.share_options(archive) == []
    archive.write_bytes(b"archive")
    assert jvm_archive.share_options(archive) == ["-Xlog:cds*=off", f"-XX:SharedArchiveFile={archive}"]


def test_a_dump_is_published_once_and_replaces_only_stale_archives_of_its_kind(jars: list[Path], tmp_path: Path) -> None:
    stale = tmp_path / "spark-driver-ffffffffffffffff.jsa"
    broker = tmp_path / "kafka-broker-ffffffffffffffff.jsa"
    stale.write_bytes(b"old")
    broker.write_bytes(b"broker")
    archive = jvm_archive.archive_path("spark-driver", "/usr/bin/java", jars)
    dump = jvm_archive.dump_file(archive)
    assert jvm_archive.dumps_in(["java", *jvm_archive.dump_options(dump), "-cp", "x"]) == [dump]
    dump.write_bytes(b"new")

    assert jvm_archive.publish(dump) == archive
    assert archive.read_bytes() == b"new" and not dump.exists() and not stale.exists()
    assert broker.read_bytes() == b"broker"

    second = jvm_archive.dump_file(archive)  # a second JVM that dumped meanwhile: the first archive stays
    second.write_bytes(b"newer")
    assert jvm_archive.publish(second) == archive
    assert archive.read_bytes() == b"new" and not second.exists()


def test_an_empty_or_missing_dump_publishes_nothing(jars: list[Path]) -> None:
    archive = jvm_archive.archive_path("spark-driver", "/usr/bin/java", jars)
    empty = jvm_archive.dump_file(archive)
    empty.write_bytes(b"")  # a JVM killed before it wrote its dump
    assert jvm_archive.publish(empty) is None
    assert not empty.exists() and not archive.exists()
    assert jvm_archive.publish(jvm_archive.dump_file(archive)) is None
    assert sorted(os.listdir(archive.parent)) == ["a.jar", "b.jar"]
