"""Governance policies compiled per user (lakehouse.governance.policies): table patterns, masks by tag (conditional
tags of a key-value column combined), row filters from user attributes (quoted as SQL literals), refusals of a
wrong policy file naming the offending entry, and the accounts file's password hashes."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
import yaml

from lakehouse.errors import LakehouseError
from lakehouse.governance.accounts import password_hash
from lakehouse.governance.policies import POLICIES_FILE, compile_policies

POLICIES = {
    "version": 1,
    "masks": {"clear": None, "hash": "sha2({col}, 256)", "redact": "CAST(NULL AS STRING)"},
    "tags": {
        "email": ["silver.people.email", {"column": "restricted.kv.value", "when": "kind = 'email'"}],
        "name": [{"column": "restricted.kv.value", "when": "kind = 'name'"}],
        "raw": ["bronze.*.value"],
    },
    "settings": ["spark.sql.ansi.enabled"],
    "roles": {
        "engineer": {"read": ["*.*"], "write": ["*.*"], "create_views": True,
                     "masks": {"email": "clear", "name": "clear", "raw": "clear"}},
        "analyst": {"read": ["gold.*", "silver.people"], "write": ["sandbox_{user}.*"], "masks": {"email": "hash"},
                    "row_filters": {"region": {"gold.sales": "region = {region}"}}},
    },
    "users": {"dee": {"role": "engineer"}, "ana": {"role": "analyst"},
              "eva": {"role": "analyst", "region": "E'U"}},
}


def _compile(tmp_path: Path, doc: dict) -> dict:
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump(doc))
    return compile_policies(path)


def _matches(patterns: list[str], name: str) -> bool:
    return any(re.fullmatch(p, name) for p in patterns)


def test_each_user_gets_its_roles_patterns_masks_and_own_row_filters(tmp_path: Path) -> None:
    users = _compile(tmp_path, POLICIES)["users"]
    ana, eva, dee = users["ana"], users["eva"], users["dee"]
    assert [_matches(ana["read"], t) for t in ("gold.sales", "silver.people", "silver.orders", "sandbox_ana.x",
                                               "sandbox_eva.x", "goldx.sales")] == [True, True, False, True, False,
                                                                                    False]
    assert _matches(ana["write"], "sandbox_ana.t") and not _matches(ana["write"], "gold.sales")
    assert sorted(ana["schemas"]) == ["^gold$", "^sandbox_ana$", "^silver$"]
    assert ana["table_column_masks"] == {
        "silver.people.email": "sha2({col}, 256)",
        # one CASE per key-value column: each kind with its tag's mask, the rest withheld
        "restricted.kv.value": "CASE WHEN kind = 'email' THEN sha2({col}, 256) WHEN kind = 'name' THEN "
                               "CAST(NULL AS STRING) ELSE CAST(NULL AS STRING) END",
    }
    assert ana["glob_column_masks"] == [{"table": r"^bronze\..*$", "column": "value", "sql": "CAST(NULL AS STRING)"}]
    assert ana["row_filters"] == {} and eva["row_filters"] == {"gold.sales": "region = 'E\\'U'"}
    assert (ana["create_views"], dee["create_views"]) == (False, True)
    assert dee["table_column_masks"] == {} and dee["glob_column_masks"] == []  # clear everywhere
    assert ana["settings"] == ["spark.sql.ansi.enabled"]


@pytest.mark.parametrize(("change", "error"), [
    (lambda d: d["users"].update(bob={"role": "admin"}), "user 'bob': unknown role 'admin'"),
    (lambda d: d["roles"]["analyst"]["masks"].update(phone="hash"), "role 'analyst': mask for unknown tag 'phone'"),
    (lambda d: d["roles"]["analyst"]["masks"].update(email="scramble"), "role 'analyst': unknown mask 'scramble'"),
    (lambda d: d["roles"]["analyst"]["read"].append("gold"), "role 'analyst': 'gold' is not a schema.table pattern"),
    (lambda d: d["roles"]["analyst"].update(grant="all"), "role 'analyst': unknown keys ['grant']"),
    (lambda d: d["tags"]["raw"].append("value"), "tag 'raw': 'value' is not schema.table.column"),
    (lambda d: d.update(version=2), "expected a mapping with `version: 1`"),
])
def test_a_wrong_policy_file_is_refused_naming_the_entry(tmp_path: Path, change, error: str) -> None:
    doc = yaml.safe_load(yaml.safe_dump(POLICIES))
    change(doc)
    with pytest.raises(LakehouseError, match=re.escape(error)):
        _compile(tmp_path, doc)


def test_the_repositorys_policies_compile_and_keep_raw_and_restricted_data_to_their_roles() -> None:
    users = compile_policies(POLICIES_FILE)["users"]
    for user, policy in users.items():
        reads_bronze = _matches(policy["read"], "bronze.erp_cdc_raw")
        reads_restricted = _matches(policy["read"], "restricted.pii_values")
        assert reads_bronze == (policy["role"] == "data_engineer"), user
        assert reads_restricted == (policy["role"] in {"data_engineer", "support"}), user
        if policy["role"] != "data_engineer":  # personal values never in clear outside the privileged role
            assert "restricted.pii_values.value" in policy["table_column_masks"], user


def test_password_hashes_are_salted_pbkdf2_the_endpoint_can_check() -> None:
    first, second = password_hash("s3cret"), password_hash("s3cret")
    assert first != second  # a salt of its own each
    scheme, iterations, salt, digest = first.split("$")
    assert scheme == "pbkdf2-sha256" and int(iterations) >= 200_000
    expected = hashlib.pbkdf2_hmac("sha256", b"s3cret", base64.b64decode(salt), int(iterations))
    assert base64.b64decode(digest) == expected
