"""Landing files -> bronze against a real local S3 (moto server) and real Delta tables (read back with delta-rs).

One S3 server for the module (buckets per test); tables and the file log are per test."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakehouse.config import REPO_ROOT
from lakehouse.landing_generator import generate_landing_files, upload
from lakehouse.services import s3 as s3_service
from lakehouse.sources.landing import KINDS, LandingIngestor, PlannedBatch, list_objects


@dataclasses.dataclass
class Landing:
    cfg: s3_service.S3Config
    bucket: str
    client: object
    tag: str
    checkpoints: Path

    def table(self, kind: str) -> str:
        return f"bronze.t_{self.tag}_{kind}"

    @property
    def dead_letter_table(self) -> str:
        return f"bronze.t_{self.tag}_dead_letter"

    def ingestor(self, spark, tables, kind: str, max_files: int = 4) -> LandingIngestor:
        return LandingIngestor(
            spark, tables, self.client, KINDS[kind], self.bucket, self.checkpoints / kind,
            table=self.table(kind), dead_letter_table=self.dead_letter_table, app_id=f"landing_{self.tag}_{kind}",
            max_files=max_files,
        )


@pytest.fixture()
def landing(s3: s3_service.S3Config, tmp_path: Path) -> Landing:
    tag = uuid.uuid4().hex[:8]
    bucket = s3_service.ensure_bucket(s3, f"landing-{tag}")
    return Landing(s3, bucket, s3_service.s3_client(s3), tag, tmp_path / "checkpoints")


def _delta(tables, name: str):
    return DeltaTable(tables.location(name)).to_pyarrow_table().to_pylist()


def _check_bronze(tables, landing: Landing, kind: str, expected_records: int) -> list[dict]:
    rows = _delta(tables, landing.table(kind))
    coords = [(r["object_key"], r["etag"], r["line_number"]) for r in rows]
    assert len(coords) == expected_records
    assert len(set(coords)) == expected_records, "a record was ingested twice"
    return rows


def _dead_letters(tables, landing: Landing, kind: str) -> list[dict]:
    return [r for r in _delta(tables, landing.dead_letter_table) if r["source_kind"] == kind]


def test_files_ingested_exactly_once_rerun_adds_nothing_new_files_picked_up(spark, tables, landing):
    files, report = generate_landing_files(seed=11, manifests=7, settlements=6, rows_per_file=10)
    upload(landing.client, landing.bucket, files)
    for kind in KINDS:
        expected = report.kinds[kind]
        first = landing.ingestor(spark, tables, kind).run()
        assert first.files == expected.files and first.records == expected.records
        assert first.batches_committed == -(-expected.files // 4)  # 4 files per batch
        _check_bronze(tables, landing, kind, expected.records)
        dead = _dead_letters(tables, landing, kind)
        assert Counter(r["reason"] for r in dead) == expected.reasons
        assert all(r["detail"] and r["object_key"].startswith(KINDS[kind].prefix) for r in dead)
        assert {r["line_number"] is None for r in dead if r["reason"] in expected.bad_files} <= {True}
        assert all(r["line_number"] and r["raw_line"] is not None for r in dead if r["reason"] in expected.bad_lines)

    versions = {n: tables.version(n) for n in (landing.table("settlements"), landing.dead_letter_table)}
    again = landing.ingestor(spark, tables, "settlements").run()
    assert (again.batches_committed, again.files, again.records) == (0, 0, 0)
    assert {n: tables.version(n) for n in versions} == versions

    later, later_report = generate_landing_files(seed=11, manifests=0, settlements=3, rows_per_file=10, start=6)
    upload(landing.client, landing.bucket, later)
    third = landing.ingestor(spark, tables, "settlements").run()
    assert third.files == 3 and third.records == later_report.kinds["settlements"].records
    total = report.kinds["settlements"].records + later_report.kinds["settlements"].records
    _check_bronze(tables, landing, "settlements", total)
    dead = _dead_letters(tables, landing, "settlements")
    assert Counter(r["reason"] for r in dead) == (
        report.kinds["settlements"].reasons + later_report.kinds["settlements"].reasons
    )


def test_crash_after_planning_or_between_commits_loses_and_duplicates_nothing(spark, tables, landing, monkeypatch):
    files, report = generate_landing_files(seed=5, manifests=0, settlements=6, rows_per_file=8)
    upload(landing.client, landing.bucket, files[:3])
    ingestor = landing.ingestor(spark, tables, "settlements", max_files=2)
    # crash 1: batch 0 planned (file log written) but nothing committed
    planned = list_objects(landing.client, landing.bucket, "settlements/")[:2]
    ingestor.log.record(PlannedBatch(0, landing.bucket, "settlements/", tuple(planned), "t"))
    upload(landing.client, landing.bucket, files[3:])  # more files arrive before the restart

    # crash 2: batch 1's dead letters committed, then the process dies before the bronze commit
    real_write = tables.write_batch_arrow
    calls: list[tuple[str, int]] = []

    def dying_write(rows, name, app_id, batch_id, **kw):
        calls.append((name, batch_id))
        if name == landing.table("settlements") and batch_id == 1:
            raise RuntimeError("simulated crash before the bronze commit")
        return real_write(rows, name, app_id, batch_id, **kw)

    monkeypatch.setattr(tables, "write_batch_arrow", dying_write)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ingestor.run()
    assert tables.committed_batch(landing.table("settlements"), ingestor.app_id) == 0
    monkeypatch.setattr(tables, "write_batch_arrow", real_write)

    restarted = landing.ingestor(spark, tables, "settlements", max_files=2).run()
    assert restarted.batches_replayed == 1
    logged = [b.files for b in ingestor.log.batches()]
    assert [f.key for f in logged[0]] == [f.key for f in planned], "a replay must read exactly the planned files"
    assert sum(len(b) for b in logged) == len(files)
    _check_bronze(tables, landing, "settlements", report.kinds["settlements"].records)
    dead = _dead_letters(tables, landing, "settlements")
    assert Counter(r["reason"] for r in dead) == report.kinds["settlements"].reasons
    assert len({(r["object_key"], r["line_number"], r["reason"]) for r in dead}) == len(dead)


def test_overwritten_object_is_a_new_file_and_a_vanished_one_is_dead_lettered(spark, tables, landing):
    header = "processor,settlement_id,payment_id,order_id,amount,currency,fee,settled_at\n"
    line = "stripe,S1,P{n},O{n},1.00,EUR,0.10,2024-06-01T00:00:00Z\n"
    put = landing.client.put_object
    put(Bucket=landing.bucket, Key="settlements/a.csv", Body=(header + line.format(n=1)).encode())
    ingestor = landing.ingestor(spark, tables, "settlements")
    assert ingestor.run().records == 1
    put(Bucket=landing.bucket, Key="settlements/a.csv", Body=(header + line.format(n=1) + line.format(n=2)).encode())
    assert ingestor.run().records == 2  # a corrected re-upload (new ETag) is a new file version
    rows = _check_bronze(tables, landing, "settlements", 3)
    assert len({r["etag"] for r in rows}) == 2

    put(Bucket=landing.bucket, Key="settlements/b.csv", Body=(header + line.format(n=3)).encode())
    gone = list_objects(landing.client, landing.bucket, "settlements/b")
    ingestor.log.record(PlannedBatch(2, landing.bucket, "settlements/", tuple(gone), "t"))
    landing.client.delete_object(Bucket=landing.bucket, Key="settlements/b.csv")
    assert ingestor.run().reasons == {"object_missing": 1}
    assert [r["reason"] for r in _dead_letters(tables, landing, "settlements")] == ["object_missing"]


# --- the job as a process, SIGKILLed mid-ingestion ----------------------------------------------------------


def _job(home: Path, s3: s3_service.S3Config, bucket: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_S3_ENDPOINT": s3.endpoint or "",
           "LAKEHOUSE_LANDING_BUCKET": bucket}
    log = open(home / f"landing-{time.time_ns()}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.bronze_landing", "--kind", "settlements", *args],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _commits(table: Path) -> int:
    log = table / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


@pytest.mark.e2e
def test_sigkill_mid_ingestion_then_restart_loses_and_duplicates_nothing(s3, tmp_path):
    bucket = s3_service.ensure_bucket(s3, f"landing-kill-{uuid.uuid4().hex[:6]}")
    files, report = generate_landing_files(seed=3, manifests=0, settlements=40, rows_per_file=5)
    upload(s3_service.s3_client(s3), bucket, files)
    expected = report.kinds["settlements"]
    home = tmp_path / "home"
    home.mkdir()
    table = home / "tables" / "bronze" / "settlements_raw"

    job = _job(home, s3, bucket, "--max-files-per-batch", "1")
    deadline = time.time() + 240
    while _commits(table) < 3 and time.time() < deadline and job.poll() is None:
        time.sleep(0.1)
    assert job.poll() is None, "the landing job ended before it could be killed"
    assert _commits(table) >= 3, "the landing job committed nothing within 240 s"
    os.killpg(job.pid, signal.SIGKILL)  # driver and its JVM
    job.wait(30)
    killed_at = DeltaTable(str(table)).to_pyarrow_table().num_rows
    assert 0 < killed_at < expected.records

    restart = _job(home, s3, bucket, "--max-files-per-batch", "8")
    assert restart.wait(300) == 0

    rows = DeltaTable(str(table)).to_pyarrow_table(columns=["object_key", "line_number"]).to_pylist()
    coords = {(r["object_key"], r["line_number"]) for r in rows}
    assert len(rows) == len(coords) == expected.records
    dead = DeltaTable(str(home / "tables" / "bronze" / "landing_dead_letter")).to_pyarrow_table().to_pylist()
    assert Counter(r["reason"] for r in dead) == expected.reasons
    assert len({(r["object_key"], r["line_number"]) for r in dead}) == len(dead)


def test_a_manifest_that_changes_its_columns_raises_schema_alerts_from_bronze_alone(spark, tables, landing):
    """A 3PL adds a column to its manifests, another renames one: the SLA rules see both in bronze (the first as
    a new column set, the second as a file rejected for its header) before silver or gold run."""
    import datetime as dt

    from pyspark.sql import functions as F

    from lakehouse.sla import Rule, evaluate

    kind = KINDS["shipment_manifests"]
    header, row = ",".join(kind.required), "DHL,M1,S1,ORD-00000001,TRK1,2026-12-01T10:00:00Z"

    def put(name: str, text: str) -> None:
        landing.client.put_object(Bucket=landing.bucket, Key=f"{kind.prefix}{name}", Body=text.encode())

    put("a.csv", f"{header}\n{row}\n")
    landing.ingestor(spark, tables, kind.name).run()
    first = tables.read(landing.table(kind.name)).agg(F.max("ingested_at")).first()[0]
    put("b.csv", f"{header},weight_kg\n{row},2.5\n")
    put("c.csv", f"{header.replace('carrier', 'carrier_code')}\n{row}\n")
    landing.ingestor(spark, tables, kind.name).run()
    rules = [Rule("manifest_columns", "schema_change", landing.table(kind.name),
                  params={"column": "record_json", "group_by": "source_kind", "window_minutes": 1}),
             Rule("bad_headers", "dead_letters", landing.dead_letter_table,
                  params={"reasons": ["bad_header"], "window_minutes": 1})]
    alerts = evaluate(spark, tables, rules, now=first + dt.timedelta(minutes=1, milliseconds=1))
    assert {a.rule: a.message for a in alerts} == {
        "manifest_columns": f"{landing.table(kind.name)} columns changed: shipment_manifests: added ['weight_kg'], "
                            "removed []",
        "bad_headers": f"{landing.dead_letter_table}: 1 dead letters in the last 1 min",
    }
