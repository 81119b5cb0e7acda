"""Cluster-user settings: state under the tables root, Kafka client options, the broker check, MLflow URIs, the
spark-submit command line and packaged resources. No Spark session, no services."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError, ServiceNotRunning

JAAS = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";'


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("LAKEHOUSE_TABLES_ROOT", "LAKEHOUSE_KAFKA_OPTIONS", "LAKEHOUSE_KAFKA_BOOTSTRAP", "MLFLOW_TRACKING_URI",
                 "MLFLOW_REGISTRY_URI", "DATABRICKS_RUNTIME_VERSION", "LAKEHOUSE_SHUFFLE_PARTITIONS",
                 "LAKEHOUSE_SNAPSHOT_PARTITIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    return monkeypatch


def test_checkpoints_and_state_live_under_the_local_tables_root(env, tmp_path):
    settings = Settings.from_env()
    assert settings.checkpoint("bronze_events_all") == f"{tmp_path}/tables/_checkpoints/bronze_events_all"
    assert settings.checkpoint("bronze_cdc", "offsets") == f"{tmp_path}/tables/_checkpoints/bronze_cdc/offsets"
    assert settings.state_root == f"{tmp_path}/tables/_state"


def test_checkpoints_and_state_follow_a_remote_tables_root(env):
    env.setenv("LAKEHOUSE_TABLES_ROOT", "s3://lake/prod/")
    settings = Settings.from_env()
    assert settings.checkpoint("bronze_landing_settlements") == "s3://lake/prod/_checkpoints/bronze_landing_settlements"
    assert settings.state_root == "s3://lake/prod/_state"
    assert settings.table_location("silver.orders") == "s3://lake/prod/silver/orders"


def test_kafka_options_from_json_get_the_kafka_prefix(env):
    env.setenv("LAKEHOUSE_KAFKA_OPTIONS", json.dumps({
        "security.protocol": "SASL_SSL", "kafka.sasl.mechanism": "PLAIN", "sasl.jaas.config": JAAS,
        "request.timeout.ms": 60000, "ssl.endpoint.identification.enabled": True}))
    assert Settings.from_env().kafka_options == {
        "kafka.security.protocol": "SASL_SSL", "kafka.sasl.mechanism": "PLAIN", "kafka.sasl.jaas.config": JAAS,
        "kafka.request.timeout.ms": "60000", "kafka.ssl.endpoint.identification.enabled": "true"}


@pytest.mark.parametrize("raw, message", [
    ("not json", "must be a JSON object"), ("[1]", "JSON object of strings"),
    ('{"bootstrap.servers": "b:9092"}', "LAKEHOUSE_KAFKA_BOOTSTRAP"),
])
def test_bad_kafka_options_are_rejected(env, raw, message):
    env.setenv("LAKEHOUSE_KAFKA_OPTIONS", raw)
    with pytest.raises(LakehouseError, match=message):
        Settings.from_env()


def test_every_kafka_read_gets_the_client_options(env):
    from lakehouse.ingest import IngestSpec, family_topic_options
    from lakehouse.sources.kafka import _options

    env.setenv("LAKEHOUSE_KAFKA_BOOTSTRAP", "b1.example.com:9096")
    env.setenv("LAKEHOUSE_KAFKA_OPTIONS", '{"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"}')
    settings = Settings.from_env()
    auth = {"kafka.security.protocol": "SASL_SSL", "kafka.sasl.mechanism": "SCRAM-SHA-512"}
    assert _options(settings, "orders", None) == {
        "kafka.bootstrap.servers": "b1.example.com:9096", "startingOffsets": "earliest", "subscribe": "orders",
        "kafka.fetch.max.wait.ms": "20", **auth}
    bronze = family_topic_options(None, settings, IngestSpec(family="orders"), False)
    assert {k: bronze[k] for k in auth} == auth
    assert bronze["kafka.bootstrap.servers"] == "b1.example.com:9096" and bronze["subscribe"] == "orders"
    assert bronze["kafka.fetch.max.wait.ms"] == "20"


def test_the_environments_kafka_options_override_the_consumer_defaults(env):
    from lakehouse.sources.kafka import consumer_options

    env.setenv("LAKEHOUSE_KAFKA_OPTIONS", '{"fetch.max.wait.ms": "500"}')
    assert consumer_options(Settings.from_env())["kafka.fetch.max.wait.ms"] == "500"


def test_a_remote_broker_that_does_not_answer_gets_no_local_broker_hint(env):
    from lakehouse.job import bootstrap_is_local, require_kafka

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.2", 0))
        port = sock.getsockname()[1]
    env.setenv("LAKEHOUSE_KAFKA_BOOTSTRAP", f"127.0.0.2:{port}")
    assert not bootstrap_is_local(f"127.0.0.2:{port}")
    with pytest.raises(ServiceNotRunning) as err:
        require_kafka(Settings.from_env(), timeout=0.5)
    assert "lakehouse services start" not in str(err.value)
    assert "LAKEHOUSE_KAFKA_BOOTSTRAP" in str(err.value) and "LAKEHOUSE_KAFKA_OPTIONS" in str(err.value)


def test_a_remote_broker_that_accepts_connections_passes(env):
    from lakehouse.job import require_kafka

    with socket.socket() as server:
        server.bind(("127.0.0.2", 0))
        server.listen()
        bootstrap = f"127.0.0.2:{server.getsockname()[1]}"
        env.setenv("LAKEHOUSE_KAFKA_BOOTSTRAP", bootstrap)
        assert require_kafka(Settings.from_env(), timeout=0.5) == bootstrap


def test_a_continuous_stage_waits_for_its_broker_instead_of_exiting(env):
    import threading
    import time

    from lakehouse.job import require_kafka

    with socket.socket() as probe:  # a port nobody listens on yet
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    env.setenv("LAKEHOUSE_KAFKA_BOOTSTRAP", f"127.0.0.2:{port}")
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def listen_later() -> None:  # the broker comes back 1.5 s later
        time.sleep(1.5)
        server.bind(("127.0.0.2", port))
        server.listen()

    threading.Thread(target=listen_later, daemon=True).start()
    try:  # without wait_s this raises (the test above): nobody listens when it first looks
        assert require_kafka(Settings.from_env(), timeout=0.2, wait_s=0.2) == f"127.0.0.2:{port}"
    finally:
        server.close()


def test_a_local_broker_that_does_not_answer_gets_the_start_hint(env):
    from lakehouse.job import bootstrap_is_local, require_kafka

    env.setenv("LAKEHOUSE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    assert bootstrap_is_local("localhost:9092,127.0.0.1:9093")
    with pytest.raises(ServiceNotRunning, match="lakehouse services start"):
        require_kafka(Settings.from_env(), timeout=0.5)


def test_mlflow_uses_the_environments_uris_and_sqlite_only_by_default(env, tmp_path):
    settings = Settings.from_env()
    assert settings.mlflow_tracking_uri == settings.mlflow_registry_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert settings.mlflow_embedded
    env.setenv("DATABRICKS_RUNTIME_VERSION", "16.4")
    assert (settings.mlflow_tracking_uri, settings.mlflow_registry_uri) == ("databricks", "databricks")
    env.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    env.setenv("MLFLOW_REGISTRY_URI", "databricks-uc")
    assert (settings.mlflow_tracking_uri, settings.mlflow_registry_uri) == ("http://mlflow.internal:5000",
                                                                           "databricks-uc")
    assert not settings.mlflow_embedded


def test_configuring_mlflow_for_one_home_leaves_the_next_home_its_own_store(env, tmp_path):
    import mlflow

    from lakehouse.ml.registry import configure_mlflow

    try:
        first = Settings.from_env()
        configure_mlflow(first)
        env.setenv("LAKEHOUSE_HOME", str(tmp_path / "second"))
        second = Settings.from_env()
        assert second.mlflow_tracking_uri == f"sqlite:///{tmp_path}/second/mlflow/mlflow.db"
        assert second.mlflow_embedded
        env.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
        configure_mlflow(second)
        assert mlflow.get_tracking_uri() == "http://mlflow.internal:5000"
        assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow.internal:5000"
        assert "MLFLOW_REGISTRY_URI" not in os.environ
    finally:  # MLflow's process-wide URIs back to unset (every job sets them before use)
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


def test_delta_log_replay_runs_in_one_wave_of_the_local_cores_unless_set(env):
    cores = os.cpu_count() or 1
    assert Settings.from_env().snapshot_partitions == min(4, cores)
    env.setenv("LAKEHOUSE_SHUFFLE_PARTITIONS", "1")
    assert Settings.from_env().snapshot_partitions == 1
    env.setenv("LAKEHOUSE_SNAPSHOT_PARTITIONS", "16")
    settings = Settings.from_env()
    assert (settings.shuffle_partitions, settings.snapshot_partitions) == (1, 16)
    from lakehouse.submit import submit_conf

    conf = submit_conf(settings, "spark://127.0.0.1:7077")
    assert (conf["spark.sql.shuffle.partitions"], conf["spark.databricks.delta.snapshotPartitions"]) == ("1", "16")


def test_a_driver_submitted_here_gets_2g_of_heap_unless_set_and_a_remote_cluster_sizes_its_own(env):
    from lakehouse.submit import submit_conf

    env.delenv("LAKEHOUSE_DRIVER_MEMORY", raising=False)
    assert submit_conf(Settings.from_env(), "local[2]")["spark.driver.memory"] == "2g"
    env.setenv("LAKEHOUSE_DRIVER_MEMORY", "3g")
    assert submit_conf(Settings.from_env(), "spark://127.0.0.1:7077")["spark.driver.memory"] == "3g"
    assert "spark.driver.memory" not in submit_conf(Settings.from_env(), "spark://spark-master.internal:7077")


def test_submit_argv_passes_jars_delta_and_python(env, tmp_path):
    import sys

    from lakehouse import jvm_archive
    from lakehouse.submit import submit_argv

    archive = tmp_path / "spark-driver-0123456789abcdef.jsa"
    archive.write_bytes(b"archive")
    env.setattr(jvm_archive, "driver_archive", lambda: archive)
    jars = [tmp_path / "delta-spark_4.1_2.13-4.4.0.jar", tmp_path / "postgresql-42.7.14.jar",
            tmp_path / "spark-sql-kafka-0-10_2.13-4.1.3.jar"]
    argv = submit_argv("silver_events", ["--family", "orders"], master="spark://127.0.0.1:7077",
                       settings=Settings.from_env(), jars=jars)
    assert argv[0].endswith("pyspark/bin/spark-submit")
    # a driver on this machine: every jar on its class path (the class path of the local driver's class archive,
    # which it maps); the Hive client needs the metastore's JDBC driver there in any case
    assert argv[1:7] == ["--master", "spark://127.0.0.1:7077", "--jars", ",".join(map(str, jars)),
                         "--driver-class-path", ":".join(map(str, jars))]
    confs = {argv[i + 1] for i, a in enumerate(argv) if a == "--conf"}
    driver = next(c for c in confs if c.startswith("spark.driver.extraJavaOptions="))
    assert driver.endswith(f" -XX:+UseParallelGC -XX:ReservedCodeCacheSize=512m -Xlog:cds*=off "
                           f"-XX:SharedArchiveFile={archive}"), driver
    assert {"spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
            "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
            "spark.sql.session.timeZone=UTC", f"spark.pyspark.python={sys.executable}",
            "spark.python.daemon.module=lakehouse.worker_daemon", "spark.sql.shuffle.partitions=4",
            "spark.driver.host=127.0.0.1", "spark.lakehouse.homeMetastore=true",
            "spark.sql.codegen.cache.maxEntries=1000", "spark.sql.codegen.wholeStage=false",
            "spark.executor.extraJavaOptions=-Duser.timezone=UTC -XX:+UseParallelGC -XX:ReservedCodeCacheSize=512m",
            } <= confs
    assert argv[-3:] == [str(Path(__file__).resolve().parents[2] / "jobs" / "silver_events.py"), "--family", "orders"]
    # a remote cluster: its own jars (none passed), its own metastore, the driver's address its own
    remote = submit_argv("gold_commerce", master="yarn", settings=Settings.from_env(), jars=[])
    assert "--jars" not in remote and "--driver-class-path" not in remote
    assert "spark.driver.extraJavaOptions=-Duser.timezone=UTC" in remote  # no archive of this machine's classes
    with_jars = submit_argv("gold_commerce", master="yarn", settings=Settings.from_env(), jars=jars)
    assert with_jars[with_jars.index("--driver-class-path") + 1] == str(jars[1])  # the JDBC driver only
    assert not any(a.startswith(("spark.driver.host=", "spark.lakehouse.homeMetastore=", "spark.sql.codegen.wholeStage="))
                   for a in remote)
    assert "spark.executor.extraJavaOptions=-Duser.timezone=UTC" in remote  # its JVMs tuned by the cluster


def test_submit_rejects_unknown_jobs(env):
    from lakehouse.submit import submit_argv

    with pytest.raises(LakehouseError, match="unknown job 'bronze_orders'"):
        submit_argv("bronze_orders", master="local[*]", settings=Settings.from_env(), jars=[])


def test_resources_resolve_to_the_checkout_folders():
    from lakehouse.resources import CHECKOUT, resource_path

    assert resource_path("expectations") == CHECKOUT / "expectations"
    assert (resource_path("schemas") / "events").is_dir()
    with pytest.raises(LakehouseError, match="unknown resource"):
        resource_path("notebooks")


def test_landing_file_log_under_a_uri_tables_root(tmp_path):
    """The file log of a URI location (s3://... on a cluster; file:// here) goes through pyarrow's filesystems."""
    from lakehouse.sources.landing import FileLog, ObjectRef, PlannedBatch

    log = FileLog(f"file://{tmp_path}/_checkpoints/bronze_landing_settlements")
    assert log.remote and log.batches() == []
    batches = [PlannedBatch(n, "bkt", "p/", (ObjectRef(f"p/{n}.csv", '"e"', 3, "2024-01-01T00:00:00+00:00"),), "now")
               for n in (0, 1, 10)]
    for batch in reversed(batches):
        log.record(batch)
    assert log.batches() == batches  # numeric order
    assert (tmp_path / "_checkpoints" / "bronze_landing_settlements" / "batches" / "10.json").is_file()
    with pytest.raises(LakehouseError, match="planned by another run"):
        log.record(batches[0])


def test_job_state_files_local_and_under_a_uri(env, tmp_path):
    from lakehouse.state import read_text, state_path, write_text

    settings = Settings.from_env()
    local = state_path(settings, "dbt_marts", "last_build.json")
    assert local == f"{tmp_path}/tables/_state/dbt_marts/last_build.json"
    assert read_text(local) is None
    write_text(local, '{"a": 1}')
    assert read_text(local) == '{"a": 1}'
    env.setenv("LAKEHOUSE_TABLES_ROOT", f"file://{tmp_path}/remote")
    remote = state_path(Settings.from_env(), "dbt_marts", "last_build.json")
    assert remote == f"file://{tmp_path}/remote/_state/dbt_marts/last_build.json"
    assert read_text(remote) is None
    write_text(remote, "x")
    write_text(remote, "y")
    assert read_text(remote) == "y"
    assert (tmp_path / "remote" / "_state" / "dbt_marts" / "last_build.json").read_text() == "y"
