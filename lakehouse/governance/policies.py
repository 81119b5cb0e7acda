"""Governance policies as code (`infra/governance/policies.yaml`): roles, the tables each may read and write, column
masks by tag, row filters by user attribute, and the users of each role.

`compile_policies` validates the file and resolves it per user into what the SQL endpoint's authorization layer
(infra/governance/jvm, lakehouse.governance.GovernanceExtension) looks up: anchored regular expressions over
`schema.table`, one SQL mask template per column, one SQL predicate per filtered table. Everything that can be
wrong in the file is refused here, with the offending entry named, before an endpoint loads it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lakehouse.config import REPO_ROOT
from lakehouse.errors import LakehouseError

POLICIES_FILE = REPO_ROOT / "infra" / "governance" / "policies.yaml"
POLICIES_ENV = "LAKEHOUSE_GOVERNANCE_POLICIES"  # a deployment's (or a test's) own policies file
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_TABLE_GLOB = re.compile(r"^[a-z0-9_*{}]+\.[a-z0-9_*{}]+$")


@dataclass(frozen=True)
class TaggedColumn:
    table: str  # schema.table glob
    column: str
    when: str | None  # SQL predicate: the tag covers the rows where it holds (key-value columns)


def policies_file() -> Path:
    return Path(os.environ.get(POLICIES_ENV) or POLICIES_FILE)


def load_policies(path: Path | None = None) -> dict[str, Any]:
    path = path or policies_file()
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LakehouseError(f"cannot read the governance policies {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise LakehouseError(f"{path}: expected a mapping with `version: 1`")
    return doc


def _glob_regex(glob: str) -> str:
    return "^" + fnmatch.translate(glob.lower()).removeprefix("(?s:").removesuffix(")\\Z") + "$"


def _sql_literal(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tagged_columns(doc: dict[str, Any]) -> dict[str, list[TaggedColumn]]:
    tags: dict[str, list[TaggedColumn]] = {}
    for tag, entries in (doc.get("tags") or {}).items():
        columns = []
        for entry in entries or []:
            spec, when = (entry, None) if isinstance(entry, str) else (entry.get("column"), entry.get("when"))
            parts = str(spec).lower().rsplit(".", 1)
            if len(parts) != 2 or not _TABLE_GLOB.match(parts[0]):
                raise LakehouseError(f"tag {tag!r}: {spec!r} is not schema.table.column")
            columns.append(TaggedColumn(parts[0], parts[1], when))
        tags[tag] = columns
    return tags


def _check(doc: dict[str, Any]) -> None:
    masks = doc.get("masks") or {}
    tags = doc.get("tags") or {}
    roles = doc.get("roles") or {}
    for role, spec in roles.items():
        if not _NAME.match(role):
            raise LakehouseError(f"role {role!r}: names are lower-case letters, digits and _")
        unknown = set(spec) - {"description", "read", "write", "masks", "row_filters", "create_views"}
        if unknown:
            raise LakehouseError(f"role {role!r}: unknown keys {sorted(unknown)}")
        for pattern in [*(spec.get("read") or []), *(spec.get("write") or [])]:
            if not _TABLE_GLOB.match(str(pattern).lower()):
                raise LakehouseError(f"role {role!r}: {pattern!r} is not a schema.table pattern")
        for tag, mask in (spec.get("masks") or {}).items():
            if tag not in tags:
                raise LakehouseError(f"role {role!r}: mask for unknown tag {tag!r} (tags: {sorted(tags)})")
            if mask not in masks:
                raise LakehouseError(f"role {role!r}: unknown mask {mask!r} (masks: {sorted(masks)})")
    for user, spec in (doc.get("users") or {}).items():
        if not _NAME.match(user):
            raise LakehouseError(f"user {user!r}: names are lower-case letters, digits and _")
        if spec.get("role") not in roles:
            raise LakehouseError(f"user {user!r}: unknown role {spec.get('role')!r} (roles: {sorted(roles)})")


def _mask_sql(doc: dict[str, Any], mask: str | None) -> str | None:
    return (doc.get("masks") or {}).get(mask or "redact", "CAST(NULL AS STRING)")


def _column_masks(doc: dict[str, Any], role_masks: dict[str, str]) -> dict[str, str]:
    """schema.table-glob.column -> SQL template, for every tagged column whose mask for the role is not `clear`.
    Conditional tags of one column combine into one CASE (rows no tag covers are redacted)."""
    by_column: dict[str, list[tuple[str | None, str | None]]] = {}
    for tag, columns in _tagged_columns(doc).items():
        sql = _mask_sql(doc, role_masks.get(tag))
        for c in columns:
            by_column.setdefault(f"{c.table}.{c.column}", []).append((c.when, sql))
    compiled = {}
    for column, cases in by_column.items():
        if all(sql is None for _, sql in cases):
            continue  # clear for every tag of the column
        conditional = [(when, sql) for when, sql in cases if when]
        if not conditional:
            compiled[column] = next(sql for _, sql in cases if sql is not None)
            continue
        branches = " ".join(f"WHEN {when} THEN {sql or '{col}'}" for when, sql in conditional)
        compiled[column] = f"CASE {branches} ELSE {_mask_sql(doc, None)} END"
    return compiled


def _row_filters(spec: dict[str, Any], attributes: dict[str, str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for attribute, tables in (spec.get("row_filters") or {}).items():
        if attribute not in attributes:
            continue  # a user without the attribute sees every row
        for table, predicate in tables.items():
            clause = predicate.replace("{" + attribute + "}", _sql_literal(attributes[attribute]))
            filters[table.lower()] = f"({filters[table.lower()]}) AND ({clause})" if table.lower() in filters else clause
    return filters


def compile_user(doc: dict[str, Any], user: str) -> dict[str, Any]:
    """What the endpoint enforces for `user`."""
    spec = doc["users"][user]
    role = doc["roles"][spec["role"]]
    attributes = {k: str(v) for k, v in spec.items() if k != "role"}
    read = [str(p).lower().replace("{user}", user) for p in role.get("read") or []]
    write = [str(p).lower().replace("{user}", user) for p in role.get("write") or []]
    masks = _column_masks(doc, role.get("masks") or {})
    return {
        "role": spec["role"],
        "read": [_glob_regex(p) for p in read + write],
        "schemas": sorted({_glob_regex(p.split(".", 1)[0]) for p in read + write}),
        "write": [_glob_regex(p) for p in write],
        # masks of tables matched by a glob are expanded by the endpoint per table; exact names go as they are
        "table_column_masks": {k: v for k, v in masks.items() if "*" not in k},
        "glob_column_masks": [{"table": _glob_regex(k.rsplit(".", 1)[0]), "column": k.rsplit(".", 1)[1], "sql": v}
                              for k, v in masks.items() if "*" in k],
        "row_filters": _row_filters(role, attributes),
        "settings": [s.lower() for s in doc.get("settings") or []],
        "create_views": bool(role.get("create_views", False)),
    }


def policy_source(path: Path) -> dict[str, str]:
    """The policy file's content hash and the commit and author that last changed it (who changed the policies)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    log = subprocess.run(["git", "log", "-1", "--format=%H%x09%an <%ae>%x09%cI", "--", path.name],
                         cwd=path.parent, capture_output=True, text=True, check=False)
    commit, author, date = (log.stdout.strip().split("\t") + ["", "", ""])[:3] if log.returncode == 0 else ("", "", "")
    return {"sha256": digest, "commit": commit, "author": author, "committed_at": date, "path": str(path)}


def compile_policies(path: Path | None = None) -> dict[str, Any]:
    path = path or policies_file()
    doc = load_policies(path)
    _check(doc)
    source = policy_source(path)
    return {"version": source["sha256"][:16], "source": source,
            "users": {user: compile_user(doc, user) for user in doc.get("users") or {}}}


def write_compiled(target: Path, path: Path | None = None) -> dict[str, Any]:
    """Compile the policies into `target` (atomically: the endpoint reloads the file when it changes)."""
    compiled = compile_policies(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(compiled, indent=1, sort_keys=True))
    partial.replace(target)
    return compiled


def _reads_in_short(patterns: list[str]) -> str:
    """`gold.*, silver (3 tables)`: whole schemas as patterns, single tables counted per schema."""
    whole = [p for p in patterns if p.endswith(".*")]
    single: dict[str, int] = {}
    for p in patterns:
        if not p.endswith(".*"):
            single[p.split(".", 1)[0]] = single.get(p.split(".", 1)[0], 0) + 1
    return ", ".join([*whole, *(f"{schema} ({n} table{'s' if n > 1 else ''})" for schema, n in single.items())])


def roles_summary(jdbc_url: str, path: Path | None = None) -> str:
    """The users of the policies, their roles and what each reads, and how to connect as one (for `make demo`)."""
    doc = load_policies(path)
    lines = [f"  {'user':<5} {'role':<14} {'sees':<6} reads"]
    for user, spec in (doc.get("users") or {}).items():
        role = doc["roles"][spec["role"]]
        scope = spec.get("region", "all")
        lines.append(f"  {user:<5} {spec['role']:<14} {scope:<6} {_reads_in_short(role.get('read') or [])}")
    lines.append(f"  connect as one: `eval \"$(lakehouse sql-endpoint login --user <user>)\"`, then "
                 f"`beeline -u {jdbc_url} -n $LAKEHOUSE_SQL_USER -p $LAKEHOUSE_SQL_PASSWORD`, "
                 "`cd dbt_project && dbt build` (as dee), a notebook, or `lakehouse sql-endpoint query 'SQL' --user "
                 "<user>`; policies: infra/governance/policies.yaml")
    return "\n".join(lines)
