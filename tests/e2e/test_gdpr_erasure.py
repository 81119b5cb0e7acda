"""GDPR erasure proven on the real stack: PostgreSQL ERP -> Debezium -> Apache Kafka -> bronze -> silver, then
`lakehouse gdpr erase --customer-id 3` (its own process, as an operator runs it). Afterwards no Parquet file under
the tables root (data, change data, the Delta log's checkpoints), no other file there and no record Kafka retains
holds customer 3's email addresses or address, while every other customer's rows are the same as before.

Customer 3's values are chosen to be substrings of others': 'Customer 3' of 'Customer 30', '3 Main Street' of
'13 Main Street', so a match that is not whole would erase someone else. Customer 25 is renamed 'Customer 3': that
value is theirs too and stays."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lakehouse.config import REPO_ROOT
from lakehouse.services.postgres import PG_BIN

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason="postgresql-15 is not installed (make system)"),
]

ERASED, KEPT_SAME_NAME = 3, 25
EMAILS = ("c3@example.com", "c3.new@example.com")  # before and after an update: both must go
ADDRESS, NAME = "3 Main Street", "Customer 3"
CUSTOMERS_TOPIC = "erp.public.customers"


@dataclasses.dataclass
class Stack:
    home: Path
    env: dict[str, str]
    settings: object

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lakehouse.cli", *args], cwd=REPO_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=900)

    def run_jobs(self, *jobs: str) -> None:
        """`lakehouse run <job>` of each, one after the other in one process (one Spark start)."""
        calls = "; ".join(f"run_job({job!r}, [])" for job in jobs)
        done = subprocess.run([sys.executable, "-c", f"from lakehouse.jobs_registry import run_job; {calls}"],
                              cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    @property
    def tables_root(self) -> Path:
        return Path(self.settings.tables_root)


def _whole(value: str) -> re.Pattern:
    return re.compile(rf"(?<![^\W]){re.escape(value)}(?![^\W])")


def _holders(stack: Stack, values: tuple[str, ...]) -> dict[str, set[str]]:
    """{place: values found}: every file under the tables root (Parquet decoded, including the Delta log's
    checkpoints; any other file as text) and every record every Kafka topic retains."""
    import pyarrow.parquet as pq

    from lakehouse.sources.kafka_admin import list_topics, read_records

    patterns = {v: _whole(v) for v in values}
    found: dict[str, set[str]] = {}

    def look(place: str, text: str) -> None:
        hits = {v for v, p in patterns.items() if p.search(text)}
        if hits:
            found.setdefault(place, set()).update(hits)

    files = [p for p in stack.tables_root.rglob("*") if p.is_file()]
    assert sum(p.suffix == ".parquet" for p in files) > 20  # the scan reads what is there
    for path in files:
        if path.suffix == ".parquet":
            look(str(path), str(pq.read_table(path).to_pylist()))
        else:
            look(str(path), path.read_bytes().decode("utf-8", "replace"))
    for topic in list_topics(stack.settings.kafka_bootstrap):
        for part, offset, key, value in read_records(stack.settings.kafka_bootstrap, topic):
            look(f"kafka {topic}/{part}@{offset}", f"{key!r} {value!r}")
    return found


def _rows(stack: Stack, spark, layer_table: str) -> list[tuple]:
    path = stack.tables_root / Path(*layer_table.split("."))
    return sorted(tuple(str(v) for v in r) for r in spark.read.format("delta").load(str(path)).collect())


@pytest.fixture(scope="module")
def stack(new_metastore) -> Stack:
    from lakehouse.cdc import wait_quiet, workload
    from lakehouse.cdc.capture import start_capture, stop_capture
    from lakehouse.config import Settings
    from lakehouse.services import postgres
    from lakehouse.services.broker import start_broker, stop_broker
    from lakehouse.services.process import free_port
    from lakehouse.sources.kafka_admin import produce

    home = Path(tempfile.mkdtemp(prefix="lh-gdpr-e2e-"))
    home.chmod(0o755)  # PostgreSQL runs as the `postgres` user when tests run as root
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_BROKER_PORT": str(free_port()),
           "LAKEHOUSE_PG_PORT": str(free_port()), "LAKEHOUSE_METASTORE_URL": new_metastore().jdbc_url}
    env.pop("LAKEHOUSE_TABLES_ROOT", None)
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    os.environ.pop("LAKEHOUSE_TABLES_ROOT", None)
    settings = Settings.from_env()
    cfg = postgres.pg_config(settings)
    try:
        start_broker(settings)
        postgres.start(cfg)
        with postgres.connect(cfg) as conn:
            workload.seed(conn, seed=5, products=10, customers=40)
        start_capture(settings, cfg)
        wait_quiet(settings.kafka_bootstrap, timeout=300, at_least=40)  # the snapshot first, then the changes
        with postgres.connect(cfg) as conn:
            conn.execute("UPDATE customers SET email = %s WHERE customer_id = %s", (EMAILS[1], ERASED))
            conn.execute("UPDATE customers SET name = %s WHERE customer_id = %s", (NAME, KEPT_SAME_NAME))
            conn.execute("DELETE FROM customers WHERE customer_id = %s", (ERASED,))
            conn.commit()
        wait_quiet(settings.kafka_bootstrap, timeout=300, at_least=40)
        # records the CDC pipeline cannot parse: dead letters, one of customer 3 by its key, one holding its
        # address only, one of customer 13 (whose address contains customer 3's)
        produce(settings.kafka_bootstrap, CUSTOMERS_TOPIC, [
            (b'{"customer_id":3}', b"{truncated: c3.new@example.com", None),
            (None, b"<customer><address>3 Main Street</address></customer>", None),
            (b'{"customer_id":13}', b"{truncated: c13@example.com, 13 Main Street", None),
        ])
        stack = Stack(home, {k: v for k, v in os.environ.items()}, settings)
        stack.run_jobs("bronze_cdc", "silver_cdc")
        yield stack
    finally:
        stop_capture(settings)
        postgres.destroy(cfg)
        stop_broker(settings)
        for k, v in previous.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def erased(stack, spark):
    """Tables keyed by the ERP's customer id (gold, a training snapshot) and one keyed by the storefront's ids
    written beside the pipeline's; the rows of every table and what holds customer 3's values, before and after
    `lakehouse gdpr erase --customer-id 3`."""
    from lakehouse.tables.catalog import discover_tables

    for name, rows in {"gold/customer_scores": [(3, 0.9), (13, 0.2), (30, 0.5)],
                       "snapshots/churn_training": [(3, 0.9), (4, 0.1)]}.items():
        spark.createDataFrame(rows, "customer_id bigint, score double").write.format("delta").save(
            str(stack.tables_root / name))
    spark.createDataFrame([("CUST-000003", 1)], "customer_id string, orders int").write.format("delta").save(
        str(stack.tables_root / "gold" / "storefront_customers"))
    names = sorted(discover_tables(str(stack.tables_root)))
    before = {n: _rows(stack, spark, n) for n in names}
    held_before = _holders(stack, (*EMAILS, ADDRESS))
    done = stack.cli("gdpr", "erase", "--customer-id", str(ERASED))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    after = {n: _rows(stack, spark, n) for n in sorted(discover_tables(str(stack.tables_root)))}
    return before, after, held_before, done.stdout


def test_nothing_holds_the_erased_customers_values_afterwards(stack, erased):
    _, _, held_before, _ = erased
    places = {p.split("@")[0].rsplit("/", 1)[0] if p.startswith("kafka") else
              "/".join(Path(p).relative_to(stack.tables_root).parts[:2]) for p in held_before}
    assert {"bronze/erp_cdc_raw", "silver/cdc_dead_letter", "restricted/pii_values",
            f"kafka {CUSTOMERS_TOPIC}"} <= places  # where they were: the scan finds them
    assert _holders(stack, (*EMAILS, ADDRESS)) == {}


def test_every_other_customers_rows_are_unchanged(erased):
    before, after, _, _ = erased
    removed = {n: sorted(set(before[n]) - set(after[n])) for n in before}
    assert all(set(after[n]) <= set(before[n]) for n in before)  # nothing rewritten, only removed
    assert {n: len(r) for n, r in removed.items() if r} == {
        "bronze.erp_cdc_raw": 6,  # snapshot read, update, delete, Debezium's tombstone, 2 unparsable records
        "silver.cdc_dead_letter": 2,
        "silver.customers_history": 2,  # the versions before and after the e-mail changed
        "restricted.pii_values": 3,  # two e-mails and the address; the name is customer 25's too
        "gold.customer_scores": 1,
        "snapshots.churn_training": 1,
    }
    assert [r[0] for r in removed["gold.customer_scores"]] == ["3"]
    assert any("c13@example.com" in str(r) for r in after["silver.cdc_dead_letter"])
    assert after["gold.storefront_customers"] == before["gold.storefront_customers"]  # another identifier space
    assert any(r[3] == NAME for r in after["restricted.pii_values"])  # customer 25's name


def test_the_erasure_is_logged_without_personal_data(stack, spark, erased):
    _, _, _, out = erased
    assert "bronze.erp_cdc_raw" in out and "request " in out
    log = spark.read.format("delta").load(str(stack.tables_root / "ops" / "gdpr_erasures")).orderBy(
        "finished_at").collect()
    assert [r.status for r in log] == ["started", "erased"] and log[0].request_id == log[1].request_id
    assert log[0].rows_deleted == log[1].rows_deleted
    row = log[1]
    assert re.fullmatch(r"[0-9a-f]{64}", row.subject) and row.subject == log[0].subject
    assert row.rows_deleted["silver.customers_history"] == 2 and row.files_removed > 0
    assert row.kafka_log_start and all(tp.startswith(f"{CUSTOMERS_TOPIC}/") and offset > 0
                                       for tp, offset in row.kafka_log_start.items())
    assert all(v not in str(row.asDict()) for v in (*EMAILS, ADDRESS, NAME))


def test_erasure_is_refused_while_the_erp_has_the_customer_or_bronze_lags(stack):
    from lakehouse.sources.kafka_admin import produce

    live = stack.cli("gdpr", "erase", "--customer-id", "4")
    assert live.returncode == 2
    assert ("error: customer 4 still exists in the ERP (its current row in silver.customers_history): delete it "
            "in the ERP first") in live.stderr
    produce(stack.settings.kafka_bootstrap, CUSTOMERS_TOPIC, [(b'{"customer_id":7}', b"{not json", None)])
    lagging = stack.cli("gdpr", "erase", "--customer-id", str(ERASED))
    assert lagging.returncode == 2
    assert re.search(r"error: bronze.erp_cdc_raw does not hold every record of erp.public.customers yet "
                     r"\(partition \d offsets \d+\.\.\d+\): run `lakehouse run bronze_cdc`", lagging.stderr)
    stack.run_jobs("bronze_cdc")
