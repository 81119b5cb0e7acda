"""Governance on the SQL endpoint, with the repository's policies (infra/governance/policies.yaml) on small
hand-made tables of the real names (a metastore database of this module's own): password logins, each role's
exact rows and masked values through JDBC (BeeLine), refusals with a clear error for everything else, attacks
through views, CTEs, joins, subqueries, temporary views, time travel and error oracles, the append-only audit log,
and a policy change applied without a restart."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.governance.accounts import credentials
from lakehouse.governance.policies import POLICIES_ENV, POLICIES_FILE
from lakehouse.services.process import free_port
from lakehouse.services.sql_endpoint import beeline_query, start_sql_endpoint, stop_sql_endpoint

SALES = [  # order_date, channel, region, orders, revenue
    (dt.date(2026, 1, 1), "web", "EU", 3, 30),
    (dt.date(2026, 1, 1), "web", "NA", 5, 50),
    (dt.date(2026, 1, 2), "amazon", "APAC", 2, 20),
    (dt.date(2026, 1, 2), "amazon", "EU", 4, 40),
]
PEOPLE = {  # customer_id -> (name, email, address)
    1: ("Carla Diaz", "carla@example.com", "1 Main Street"),
    2: ("Bo Li", "bo@shop.example", "2 High Road"),
}


def token(value: str) -> str:
    return hashlib.sha256(f"salt:{value}".encode()).hexdigest()


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclasses.dataclass
class Governed:
    settings: Settings
    policies: Path  # the endpoint's policies file: a copy of the repository's, which a test may change

    def jdbc(self, user: str, sql: str) -> list[list[str]]:
        """Rows through BeeLine (the Hive JDBC driver), logged in as `user`."""
        out = beeline_query(self.settings, sql, user=user, output_format="tsv2")
        return [line.split("\t") for line in out.splitlines() if line]

    def db_api(self, user: str, sql: str) -> list[tuple]:
        """Rows through PyHive (Python DB-API, what notebooks and dbt use), logged in as `user`."""
        from contextlib import closing

        from pyhive import hive

        login = credentials(self.settings, user)
        with closing(hive.connect(host="127.0.0.1", port=self.settings.sql_port, username=login.user,
                                  password=login.password, auth="CUSTOM")) as conn:
            cursor = conn.cursor()
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def refusal(self, user: str, sql: str) -> str:
        """The endpoint's error for `sql` run by `user` (the test fails when it runs)."""
        with pytest.raises(Exception) as refused:  # noqa: PT011 - PyHive's OperationalError carries the server's text
            self.db_api(user, sql)
        return str(refused.value)


def _write_tables(root: str) -> None:
    def table(name: str, columns: dict) -> None:
        write_deltalake(f"{root}/{name.replace('.', '/')}", pa.table(columns))

    table("gold.sales", {
        "order_date": pa.array([r[0] for r in SALES]), "channel": [r[1] for r in SALES],
        "region": [r[2] for r in SALES], "orders": pa.array([r[3] for r in SALES], pa.int64()),
        "revenue": pa.array([float(r[4]) for r in SALES])})
    kinds = ("name", "email", "address")
    table("restricted.pii_values", {
        "source_table": ["customers"] * 6,
        "column": [k for _ in PEOPLE for k in kinds],
        "token": [token(v) for p in PEOPLE.values() for v in p],
        "value": [v for p in PEOPLE.values() for v in p]})
    table("silver.customers_history", {
        "customer_id": pa.array(list(PEOPLE), pa.int64()),
        "name": [token(p[0]) for p in PEOPLE.values()], "email": [token(p[1]) for p in PEOPLE.values()],
        "address": [token(p[2]) for p in PEOPLE.values()], "country": ["ES", "US"], "is_current": [True, True]})
    table("silver.suppliers", {"supplier_id": pa.array([1], pa.int64()), "name": ["Supplier 1"],
                               "email": ["s1@example.com"]})
    table("bronze.erp_cdc_raw", {"value": ['{"after": {"customer_id": 1, "email": "carla@example.com"}}']})


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory, new_metastore) -> Iterator[Governed]:
    home = tmp_path_factory.mktemp("governed")
    policies = home / "policies.yaml"
    shutil.copy(POLICIES_FILE, policies)
    env = {"LAKEHOUSE_HOME": str(home / "home"), "LAKEHOUSE_SQL_PORT": str(free_port()),
           "LAKEHOUSE_METASTORE_URL": new_metastore().jdbc_url, POLICIES_ENV: str(policies),
           "LAKEHOUSE_TABLES_ROOT": None}
    previous = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    try:
        settings = Settings.from_env()
        settings.ensure_dirs()
        _write_tables(settings.tables_root)
        start_sql_endpoint(settings, timeout=300)
        try:
            yield Governed(settings, policies)
        finally:
            assert stop_sql_endpoint(settings)
    finally:
        for k, v in previous.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def test_each_role_gets_exactly_the_rows_and_masked_values_the_policies_say(governed: Governed) -> None:
    by_region = "SELECT region, sum(orders) FROM gold.sales GROUP BY region ORDER BY region"
    assert governed.jdbc("ana", by_region) == [["APAC", "2"], ["EU", "7"], ["NA", "5"]]
    assert governed.jdbc("eva", by_region) == [["EU", "7"]]  # an analyst with region EU
    assert governed.jdbc("max", by_region) == [["APAC", "2"], ["EU", "7"], ["NA", "5"]]  # marketing
    pii = "SELECT `column`, value FROM restricted.pii_values WHERE token = '{}'"
    carla = PEOPLE[1]
    assert governed.jdbc("dee", pii.format(token(carla[1]))) == [["email", "carla@example.com"]]  # in clear
    assert governed.jdbc("sue", pii.format(token(carla[1]))) == [["email", "c***@example.com"]]  # partly masked
    assert governed.jdbc("sue", pii.format(token(carla[0]))) == [["name", "C***"]]
    assert governed.jdbc("sue", pii.format(token(carla[2]))) == [["address", "NULL"]]
    # analysts: personal values hashed (suppliers' e-mails), silver's tokens hashed again, addresses withheld
    assert governed.jdbc("ana", "SELECT email FROM silver.suppliers") == [[sha256("s1@example.com")]]
    assert governed.jdbc("ana", "SELECT customer_id, email FROM silver.customers_history ORDER BY 1") == [
        [str(i), sha256(token(p[1]))] for i, p in PEOPLE.items()]
    # support looks customers up: silver's tokens in clear, joined to their partly masked values
    assert governed.jdbc("sue", "SELECT h.customer_id, v.value FROM silver.customers_history h "
                                "JOIN restricted.pii_values v ON v.token = h.email ORDER BY 1") == [
        ["1", "c***@example.com"], ["2", "b***@shop.example"]]


def test_everything_else_is_refused_with_a_clear_error(governed: Governed) -> None:
    def denied(user: str, role: str, sql: str, what: str) -> None:
        assert f"Permission denied: user [{user}] (role {role}) may not {what}" in governed.refusal(user, sql), sql

    denied("ana", "analyst", "SELECT * FROM bronze.erp_cdc_raw", "read bronze.erp_cdc_raw")
    denied("ana", "analyst", "SELECT count(*) FROM restricted.pii_values", "read restricted.pii_values")
    denied("ana", "analyst", "DESCRIBE restricted.pii_values", "read restricted.pii_values")
    denied("max", "marketing", "SELECT * FROM silver.customers_history", "read silver.customers_history")
    denied("aud", "auditor", "SELECT * FROM gold.sales", "read gold.sales")
    denied("ana", "analyst", "INSERT INTO gold.sales SELECT * FROM gold.sales", "change gold.sales")
    denied("ana", "analyst", "DROP TABLE gold.sales", "change gold.sales")
    denied("ana", "analyst", "CREATE TABLE gold.copy USING delta AS SELECT * FROM gold.sales", "change gold.copy")
    denied("eva", "analyst", "CREATE VIEW sandbox_eva.all_sales AS SELECT * FROM gold.sales",
           "create a permanent view")
    denied("ana", "analyst", f"SELECT * FROM parquet.`{governed.settings.tables_root}/restricted/pii_values`",
           "read files by path")
    denied("ana", "analyst", f"SELECT * FROM delta.`{governed.settings.tables_root}/gold/sales`",
           "read files by path")
    denied("ana", "analyst", "SET spark.sql.optimizer.excludedRules=x", "change the setting")
    denied("dee", "data_engineer", "ADD JAR /tmp/anything.jar", "run AddJarsCommand")
    with pytest.raises(LakehouseError, match=r"Permission denied: user \[ana\] \(role analyst\) may not read "
                                             r"restricted.pii_values"):
        governed.jdbc("ana", "SELECT value FROM restricted.pii_values")  # the same through JDBC


def test_attacks_through_views_ctes_joins_subqueries_and_oracles_see_only_the_users_rows(governed: Governed) -> None:
    eu = [("2026-01-01", "web", "EU", 3, 30.0), ("2026-01-02", "amazon", "EU", 4, 40.0)]
    attacks = [
        "SELECT * FROM gold.sales ORDER BY order_date",
        "WITH s AS (SELECT * FROM gold.sales) SELECT * FROM s ORDER BY order_date",
        "SELECT * FROM (SELECT * FROM gold.sales) t ORDER BY order_date",
        "SELECT * FROM gold.sales VERSION AS OF 0 ORDER BY order_date",
        "SELECT a.* FROM gold.sales a JOIN gold.sales b ON a.region = b.region AND a.order_date = b.order_date "
        "ORDER BY a.order_date",
        "SELECT * FROM gold.sales WHERE region IN (SELECT region FROM gold.sales) ORDER BY order_date",
        # an error oracle: a predicate that fails on a hidden row must never see one
        "SELECT * FROM gold.sales WHERE IF(region <> 'EU', raise_error('leaked a hidden row'), true) "
        "ORDER BY order_date",
    ]
    for sql in attacks:
        assert governed.db_api("eva", sql) == eu, sql
    # a temporary view is read as its reader: the filter applies; one over a table the user may not read fails
    name = f"v_{uuid.uuid4().hex[:8]}"
    from contextlib import closing

    from pyhive import hive

    login = credentials(governed.settings, "eva")
    with closing(hive.connect(host="127.0.0.1", port=governed.settings.sql_port, username=login.user,
                              password=login.password, auth="CUSTOM")) as conn:
        cursor = conn.cursor()
        cursor.execute(f"CREATE TEMPORARY VIEW {name} AS SELECT region, orders FROM gold.sales")
        cursor.execute(f"SELECT region, sum(orders) FROM {name} GROUP BY region")
        assert cursor.fetchall() == [("EU", 7)]
    assert "may not read restricted.pii_values" in governed.refusal(
        "eva", "CREATE TEMPORARY VIEW leak AS SELECT * FROM restricted.pii_values")
    # a filter on a masked column compares masked values: the clear value is never matched
    assert governed.db_api("ana", "SELECT count(*) FROM silver.suppliers WHERE email = 's1@example.com'") == [(0,)]
    # a data engineer's view over the re-identification table: readable through the view's grant (staging.*),
    # but the masks follow the reader inside it
    view = f"staging.pii_{uuid.uuid4().hex[:8]}"
    governed.db_api("dee", "CREATE SCHEMA IF NOT EXISTS staging")
    governed.db_api("dee", f"CREATE VIEW {view} AS SELECT `column`, value FROM restricted.pii_values")
    values = governed.db_api("ana", f"SELECT `column`, value FROM {view} ORDER BY `column`, value")
    assert values == sorted([("address", None)] * 2 + [(k, sha256(p[i])) for p in PEOPLE.values()
                                                       for i, k in ((0, "name"), (1, "email"))],
                            key=lambda r: (r[0], r[1] or ""))
    # listings show only what the user may read
    schemas = {r[0] for r in governed.db_api("ana", "SHOW SCHEMAS")}
    assert {"gold", "silver", "staging"} <= schemas and not schemas & {"bronze", "restricted"}
    assert {r[1] for r in governed.db_api("ana", "SHOW TABLES IN silver")} == {"customers_history", "suppliers"}
    assert governed.db_api("ana", "SHOW TABLES IN restricted") == []


def test_jdbc_metadata_calls_list_only_the_users_schemas_and_tables(governed: Governed) -> None:
    """getTables/getColumns (HiveServer2 operations without a SQL statement, what JDBC tools browse with)."""
    from contextlib import closing

    from pyhive import hive
    from TCLIService import ttypes

    login = credentials(governed.settings, "ana")
    with closing(hive.connect(host="127.0.0.1", port=governed.settings.sql_port, username=login.user,
                              password=login.password, auth="CUSTOM")) as conn:
        def call(method: str, request) -> list[tuple] | str:  # noqa: ANN001 - a TCLIService request
            response = getattr(conn.client, method)(request)
            if response.status.statusCode != ttypes.TStatusCode.SUCCESS_STATUS:
                return response.status.errorMessage
            fetched = conn.client.FetchResults(ttypes.TFetchResultsReq(
                operationHandle=response.operationHandle, orientation=ttypes.TFetchOrientation.FETCH_NEXT,
                maxRows=1000))
            columns = [next(v.values for v in vars(c).values() if v is not None) for c in fetched.results.columns]
            return list(zip(*columns, strict=True))

        def tables(schema: str) -> list[tuple] | str:
            return call("GetTables", ttypes.TGetTablesReq(sessionHandle=conn.sessionHandle, schemaName=schema,
                                                          tableName="%"))

        assert sorted(r[1:3] for r in tables("gold")) == [("gold", "sales")]
        assert sorted(r[1:3] for r in tables("silver")) == [("silver", "customers_history"), ("silver", "suppliers")]
        assert "Permission denied: user [ana] (role analyst) may not list bronze (GET_TABLES)" in tables("bronze")
        assert "may not list bronze, default, restricted (GET_TABLES)" in tables("%")
        refused = call("GetColumns", ttypes.TGetColumnsReq(sessionHandle=conn.sessionHandle, schemaName="restricted",
                                                           tableName="pii_values"))
        assert "user [ana] (role analyst) may not list restricted.pii_values (GET_COLUMNS)" in refused


def test_logins_need_a_known_user_and_the_right_password(governed: Governed) -> None:
    import subprocess

    from pyhive import hive
    from thrift.transport.TTransport import TTransportException

    from lakehouse.jars import pyspark_jars_dir
    from lakehouse.services.sql_endpoint import BEELINE_CLASS, jdbc_url

    port = governed.settings.sql_port
    for user, password in (("ana", "wrong"), ("mallory", "anything"),
                           ("ana", credentials(governed.settings, "dee").password)):  # another user's password
        with pytest.raises(TTransportException, match="Error validating the login"):
            hive.connect(host="127.0.0.1", port=port, username=user, password=password, auth="CUSTOM")
    # JDBC without a password
    done = subprocess.run(["java", "-Xmx256m", "-cp", str(pyspark_jars_dir() / "*"), BEELINE_CLASS, "-u",
                           jdbc_url(governed.settings), "-n", "ana", "-e", "SELECT 'no password'"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert "Error validating the login" in done.stderr and "no password" not in done.stdout
    assert governed.db_api("ana", "SELECT 'logged in'") == [("logged in",)]


def _audit_rows(governed: Governed, marker: str, expected: int, timeout: float = 60.0) -> list[tuple]:
    """`ops.audit_log` rows of statements containing `marker`, once the endpoint has copied `expected` of them."""
    deadline = time.monotonic() + timeout
    while True:
        head, tail = marker.split("-")  # (this query's own text holds the marker only in two pieces)
        rows = governed.db_api("aud", "SELECT user, role, decision, reads, reason FROM ops.audit_log WHERE event = "
                                      f"'statement' AND statement LIKE concat('%', '{head}-', '{tail}%') ORDER BY user")
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(2)


def test_the_audit_log_keeps_who_read_what_and_every_refusal_and_cannot_be_changed(governed: Governed) -> None:
    marker = f"audit-{uuid.uuid4().hex[:8]}"
    governed.db_api("eva", f"SELECT /* {marker} */ count(*) FROM gold.sales")
    governed.refusal("max", f"SELECT /* {marker} */ * FROM restricted.pii_values")
    rows = _audit_rows(governed, marker, expected=2)
    assert rows == [
        ("eva", "analyst", "allowed", '["gold.sales"]', ""),
        ("max", "marketing", "denied", '["restricted.pii_values"]',
         "Permission denied: user [max] (role marketing) may not read restricted.pii_values"),
    ]
    assert "may not change ops.audit_log" in governed.refusal("aud", "DELETE FROM ops.audit_log")
    # a data engineer may change most tables, but Delta refuses deletes from an append-only table
    assert "DELTA_CANNOT_MODIFY_APPEND_ONLY" in governed.refusal("dee", "DELETE FROM ops.audit_log WHERE user = 'eva'")
    assert len(_audit_rows(governed, marker, expected=2, timeout=0)) == 2


def _policy_versions(governed: Governed) -> set[str]:
    return {r[0] for r in governed.db_api("aud", "SELECT DISTINCT policy_version FROM ops.audit_log "
                                                 "WHERE event = 'policy_compiled'")}


def test_a_policy_change_applies_without_a_restart_and_its_version_is_audited(governed: Governed) -> None:
    before = _policy_versions(governed)
    assert "may not read silver.suppliers" in governed.refusal("max", "SELECT * FROM silver.suppliers")
    text = governed.policies.read_text()
    changed = text.replace("snapshots.snap_customer_segments]", "snapshots.snap_customer_segments, silver.suppliers]")
    assert changed != text
    governed.policies.write_text(changed)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                rows = governed.db_api("max", "SELECT supplier_id, email FROM silver.suppliers")
                break
            except Exception:  # noqa: BLE001 - refused until the endpoint compiles the change
                time.sleep(2)
        assert rows == [(1, None)]  # e-mail addresses: withheld from a role without a mask for them
        while len(_policy_versions(governed) - before) < 1 and time.monotonic() < deadline + 30:
            time.sleep(2)  # the compiled version's audit line is copied by the same upkeep, right after
        assert len(_policy_versions(governed) - before) == 1
    finally:
        governed.policies.write_text(text)
