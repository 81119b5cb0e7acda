"""Landing files: parsing into records / rejections, the generator's report, the file log (no Spark, no S3)."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from lakehouse.errors import LakehouseError
from lakehouse.landing_generator import generate_landing_files
from lakehouse.sources.landing import KINDS, FileLog, ObjectRef, PlannedBatch, file_format, parse_object

SETTLEMENTS = KINDS["settlements"]
MANIFESTS = KINDS["shipment_manifests"]
HEADER = b"processor,settlement_id,payment_id,order_id,amount,currency,fee,settled_at\n"


def _reasons(parsed) -> dict[int | None, str]:
    return {r.line_number: r.reason for r in parsed.rejections}


def test_csv_good_bad_and_multiline_records():
    body = (
        HEADER
        + b"stripe,s1,p1,o1,10.00,EUR,0.3,2024-01-01T00:00:00Z\r\n"
        + b'stripe,s1,p2,o2,"10"x,EUR,0.3,2024\n'
        + b"stripe,s1,p3\n"
        + b"stripe,\xff\xfe,p4,o4,1,EUR,0.3,2024\n"
        + b"\n"
        + b'stripe,s1,p5,o5,"1\n0",EUR,0.3,2024\n'
        + b"stripe,s1,p6,o6,1,EUR,0.3,\n"
    )
    parsed = parse_object("settlements/x.csv", body, SETTLEMENTS)
    assert [r.line_number for r in parsed.records] == [2, 7]
    assert json.loads(parsed.records[0].record_json)["amount"] == "10.00"
    assert parsed.records[1].raw_line == 'stripe,s1,p5,o5,"1\n0",EUR,0.3,2024'
    assert _reasons(parsed) == {3: "unparseable_csv", 4: "wrong_column_count", 5: "bad_encoding", 9: "missing_field"}
    assert "\ufffd" in next(r.raw_line for r in parsed.rejections if r.reason == "bad_encoding")


def test_jsonl_lines():
    good = {"processor": "p", "settlement_id": "s", "payment_id": "x", "order_id": "o", "amount": 1.5,
            "currency": "EUR", "fee": 0, "settled_at": "2024-01-01"}
    body = "\n".join([json.dumps(good), "{bad", "[1, 2]", json.dumps({**good, "payment_id": None}), ""]).encode()
    parsed = parse_object("settlements/x.jsonl", body, SETTLEMENTS)
    assert [r.line_number for r in parsed.records] == [1]
    assert json.loads(parsed.records[0].record_json)["amount"] == 1.5
    assert _reasons(parsed) == {2: "invalid_json", 3: "not_an_object", 4: "missing_field"}


@pytest.mark.parametrize(
    ("key", "body", "reason"),
    [
        ("settlements/x.pdf", b"%PDF", "unsupported_format"),
        ("shipment_manifests/x.jsonl", b"{}", "unsupported_format"),
        ("settlements/x.csv.gz", b"not gzip", "bad_compression"),
        ("settlements/x.csv", b"", "empty_file"),
        ("settlements/x.csv", b"a,b\x00c\n", "binary_content"),
        ("settlements/x.csv", b"processor,amount\nstripe,1\n", "bad_header"),
        ("settlements/x.csv", b"processor,processor,settlement_id,payment_id,order_id,amount,currency,fee,settled_at\n",
         "bad_header"),
    ],
)
def test_file_level_rejections(key: str, body: bytes, reason: str):
    parsed = parse_object(key, body, KINDS[key.split("/")[0]])
    assert parsed.records == []
    assert [(r.line_number, r.reason) for r in parsed.rejections] == [(None, reason)]


def test_gzip_and_bom():
    body = b"\xef\xbb\xbf" + HEADER + b"stripe,s1,p1,o1,10.00,EUR,0.3,2024\n"
    assert len(parse_object("settlements/x.csv.gz", gzip.compress(body), SETTLEMENTS).records) == 1
    assert file_format("a/B.NDJSON.gz") == "jsonl"


def test_generator_is_deterministic_and_its_report_matches_the_parser():
    files, report = generate_landing_files(seed=7, start=0)
    again, _ = generate_landing_files(seed=7, start=0)
    assert [(f.key, f.body) for f in files] == [(f.key, f.body) for f in again]
    later, _ = generate_landing_files(seed=7, start=len(files))
    assert not {f.key for f in files} & {f.key for f in later}
    for kind_name, kind in KINDS.items():
        records, reasons = 0, Counter()
        for f in (f for f in files if f.kind == kind_name):
            parsed = parse_object(f.key, f.body, kind)
            records += len(parsed.records)
            reasons.update(r.reason for r in parsed.rejections)
        assert records == report.kinds[kind_name].records > 0
        assert reasons == report.kinds[kind_name].reasons
        assert report.kinds[kind_name].dead_letters >= 4  # bad lines and at least one bad file per kind


def test_file_log_is_create_exclusive(tmp_path):
    log = FileLog(tmp_path)
    batch = PlannedBatch(0, "bkt", "p/", (ObjectRef("p/a.csv", '"e1"', 3, "2024-01-01T00:00:00+00:00"),), "now")
    log.record(batch)
    assert log.batches() == [batch]
    with pytest.raises(LakehouseError, match="planned by another run"):
        log.record(batch)
    assert not list(log.dir.glob(".*.tmp"))
