"""Driver-side Delta commits through delta-rs: one commit per write, idempotent by application transaction."""

from __future__ import annotations

import logging

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import AddAction, create_table_with_add_actions

from pyspark_lakehouse.files import WrittenFile, delete_files

log = logging.getLogger(__name__)


def table_exists(path: str) -> bool:
    return DeltaTable.is_deltatable(path)


def already_committed(path: str, app_id: str, version: int) -> bool:
    """True when (app_id, version) or a later version of the same application is in the table's log."""
    if not table_exists(path):
        return False
    committed = DeltaTable(path).transaction_version(app_id)
    return committed is not None and committed >= version


def merged_schema(current: pa.Schema, incoming: pa.Schema, allow_new_columns: bool) -> pa.Schema:
    """Schema after a write: the table's, plus new columns when allowed; clear errors otherwise."""
    missing = [f.name for f in incoming if current.get_field_index(f.name) < 0]
    if missing and not allow_new_columns:
        raise ValueError(
            f"write has columns not in the table: {missing}; set option mergeSchema=true to add them"
        )
    # added columns are nullable: files written before the change have no values for them
    fields = list(current) + [incoming.field(name).with_nullable(True) for name in missing]
    return pa.schema(fields)


def commit_files(
    path: str,
    files: list[WrittenFile],
    schema: pa.Schema,
    mode: str,
    partition_by: list[str],
    app_id: str | None = None,
    txn_version: int | None = None,
    merge_schema: bool = False,
) -> bool:
    """Commit written files as one Delta version. Returns False (and removes the files) if already committed."""
    properties = None
    if app_id is not None and txn_version is not None:
        if already_committed(path, app_id, txn_version):
            log.info("skip commit: %s already holds transaction %s v%s", path, app_id, txn_version)
            delete_files(path, [f.path for f in files])
            return False
        properties = CommitProperties(app_transactions=[Transaction(app_id=app_id, version=txn_version)])
    actions = [
        AddAction(f.path, f.size, f.partition_values, f.modification_time, True, f.stats) for f in files
    ]
    try:
        table = DeltaTable(path)
    except TableNotFoundError:
        create_table_with_add_actions(
            path, DeltaSchema.from_arrow(schema), actions, mode="append", partition_by=partition_by or None, commit_properties=properties
        )
        return True
    current = pa.schema(table.schema().to_arrow())
    target = schema if mode == "overwrite" else merged_schema(current, schema, merge_schema)
    added = [f for f in target if current.get_field_index(f.name) < 0]
    if added and mode != "overwrite":
        # An append's transaction keeps the table's metadata: evolve the schema first (its own commit).
        table.alter.add_columns(DeltaSchema.from_arrow(pa.schema(added)).fields)
        table = DeltaTable(path)
    table.create_write_transaction(
        actions,
        mode=mode,
        schema=DeltaSchema.from_arrow(target),
        partition_by=partition_by or None,
        commit_properties=properties,
    )
    return True
