"""Governance on the SQL endpoint: the Spark settings that turn it on, and the endpoint's upkeep (policies compiled
again when their file changes, audit lines copied into `ops.audit_log`)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.governance import private_dir
from lakehouse.governance.audit import ingest_audit_files, record_policy_compiled
from lakehouse.governance.policies import policies_file, write_compiled

log = logging.getLogger(__name__)

UPKEEP_INTERVAL_S = 15.0


def governance_dir(settings: Settings) -> Path:
    """Compiled policies and audit lines (statements' text may hold personal values): its owner's only."""
    return private_dir(settings.home / "governance")


def compiled_policies_file(settings: Settings) -> Path:
    return governance_dir(settings) / "policies.json"


def audit_dir(settings: Settings) -> Path:
    return governance_dir(settings) / "audit"


def governed_conf(settings: Settings) -> dict[str, str]:
    """The endpoint's authentication and authorization: logins checked against the accounts file, each session
    run as its user (`doAs`), every statement authorized against the compiled policies with masks and row filters
    applied (lakehouse.governance.GovernanceExtension; it refuses clients' reads of files by path, which the
    endpoint's own work, the audit copy, still does)."""
    from lakehouse.governance.accounts import ACCOUNTS_ENV, ensure_accounts
    from lakehouse.governance.jar import (
        AUTHENTICATOR_CLASS,
        EXTENSION_CLASS,
        METADATA_AUTHORIZER_CLASS,
        ensure_governance_jar,
    )
    from lakehouse.jars import spark_jars
    from lakehouse.spark import DELTA_EXTENSION

    compiled = write_compiled(compiled_policies_file(settings))
    record_policy_compiled(audit_dir(settings), compiled)
    os.environ.setdefault(ACCOUNTS_ENV, str(ensure_accounts(settings, sorted(compiled["users"]))))
    jars = os.pathsep.join(str(p) for p in [*spark_jars(), ensure_governance_jar()])
    return {
        "spark.sql.extensions": f"{DELTA_EXTENSION},{EXTENSION_CLASS}",
        "spark.driver.extraClassPath": jars,  # Hive's login and the sessions' extensions load from the class path
        "spark.lakehouse.governance.policies": str(compiled_policies_file(settings)),
        "spark.lakehouse.governance.auditDir": str(audit_dir(settings)),
        "spark.hadoop.hive.server2.authentication": "CUSTOM",
        "spark.hadoop.hive.server2.custom.authentication.class": AUTHENTICATOR_CLASS,
        "spark.hadoop.hive.server2.enable.doAs": "true",
        # JDBC metadata calls (getTables, getColumns), which no SQL statement carries
        "spark.hadoop.hive.security.authorization.enabled": "true",
        "spark.hadoop.hive.security.authorization.manager": METADATA_AUTHORIZER_CLASS,
    }


class GovernanceUpkeep:
    """Run by the endpoint's main loop: every UPKEEP_INTERVAL_S, compile the policies again when their file
    changed (the authorization layer reloads the compiled file) and copy new audit lines into `ops.audit_log`."""

    def __init__(self, spark: SparkSession, settings: Settings, policies: Path | None = None) -> None:
        from lakehouse.governance.audit import ensure_audit_table
        from lakehouse.tables import get_tables

        self.settings, self.policies = settings, policies or policies_file()
        self.tables = get_tables(spark, settings)
        try:
            ensure_audit_table(self.tables)
        except LakehouseError as exc:  # the name taken in a metastore shared by several homes: kept by path
            log.warning("ops.audit_log not registered by name: %s", exc)
        self.policies_stamp = self.policies.stat().st_mtime_ns
        self.last = 0.0

    def tick(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last < UPKEEP_INTERVAL_S:
            return
        self.last = time.monotonic()
        stamp = self.policies.stat().st_mtime_ns
        if stamp != self.policies_stamp:
            self.policies_stamp = stamp
            try:
                record_policy_compiled(audit_dir(self.settings),
                                       write_compiled(compiled_policies_file(self.settings), self.policies))
            except LakehouseError as exc:  # the policies in force stay; the error is the reviewer's to fix
                log.error("the changed policies were not applied: %s", exc)
        try:
            copied = ingest_audit_files(self.tables, audit_dir(self.settings))
        except Exception:  # noqa: BLE001 - the lines stay in their files for the next tick
            log.exception("audit lines not copied into ops.audit_log (next try in %.0f s)", UPKEEP_INTERVAL_S)
            return
        if copied:
            log.info("audit: %d lines copied into ops.audit_log", copied)
