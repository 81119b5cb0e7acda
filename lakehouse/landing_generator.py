"""Deterministic landing-zone files with injected faults: 3PL shipment manifests (CSV) and payment-processor
settlement reports (CSV, JSON lines, gzip), uploaded to the landing bucket.

`generate_landing_files(seed, manifests, settlements, rows_per_file, start)` always returns the same files for
the same arguments; `start` numbers the files so a later call adds new keys ("new files arrive"). The report
says how many good records and which bad lines / bad files were injected, i.e. what bronze and
`bronze.landing_dead_letter` must hold. Order ids follow the order generator (`ORD-%08d`).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MANIFEST_COLUMNS = ["carrier", "manifest_id", "shipment_id", "order_id", "tracking_number", "shipped_at",
                    "service_level", "weight_kg", "consignee_city"]
SETTLEMENT_COLUMNS = ["processor", "settlement_id", "payment_id", "order_id", "amount", "currency", "fee",
                      "settled_at"]
CARRIERS = ["dhl", "ups", "dpd", "gls"]
PROCESSORS = ["stripe", "adyen", "paypal"]
CURRENCIES = ["EUR", "USD", "GBP"]
CITIES = ["Berlin", "Hamburg", "Lyon", "Milano", "Madrid"]
BASE_DAY = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


@dataclass
class LandingFile:
    kind: str
    key: str
    body: bytes
    records: int = 0  # good records
    bad_lines: Counter = field(default_factory=Counter)  # reason -> lines
    bad_file: str | None = None  # reason the whole file is rejected


@dataclass
class KindReport:
    files: int = 0
    records: int = 0
    bad_lines: Counter = field(default_factory=Counter)
    bad_files: Counter = field(default_factory=Counter)

    @property
    def dead_letters(self) -> int:
        return sum(self.bad_lines.values()) + sum(self.bad_files.values())

    @property
    def reasons(self) -> Counter:
        return self.bad_lines + self.bad_files

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "records": self.records, "dead_letters": self.dead_letters,
                "bad_lines": dict(self.bad_lines), "bad_files": dict(self.bad_files)}


@dataclass
class LandingReport:
    kinds: dict[str, KindReport] = field(default_factory=dict)

    def add(self, f: LandingFile) -> None:
        k = self.kinds.setdefault(f.kind, KindReport())
        k.files += 1
        k.records += f.records
        k.bad_lines.update(f.bad_lines)
        if f.bad_file:
            k.bad_files[f.bad_file] += 1

    def as_dict(self) -> dict[str, Any]:
        return {name: k.as_dict() for name, k in sorted(self.kinds.items())}

    def summary(self) -> str:
        return "; ".join(
            f"{name}: {k.files} files, {k.records} records, {k.dead_letters} dead letters {dict(k.reasons)}"
            for name, k in sorted(self.kinds.items())
        )


def _csv_line(values: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue().encode()


def _csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def _manifest(rng: random.Random, i: int, rows: int) -> LandingFile:
    carrier = CARRIERS[i % len(CARRIERS)]
    day = BASE_DAY + dt.timedelta(days=i // len(CARRIERS))
    key = f"shipment_manifests/{day:%Y-%m-%d}/{carrier}/manifest-{i:05d}.csv"
    f = LandingFile("shipment_manifests", key, b"")
    if i % 7 == 5:
        f.bad_file = "empty_file"
        return f
    header = list(MANIFEST_COLUMNS)
    if i % 7 == 3:  # a 3PL changed its export: tracking_number column missing
        header.remove("tracking_number")
        f.bad_file = "bad_header"
    lines: list[bytes] = []
    for r in range(rows):
        shipped = day + dt.timedelta(minutes=rng.randrange(24 * 60))
        row = {
            "carrier": carrier, "manifest_id": f"MAN-{i:05d}", "shipment_id": f"SHP-{i:05d}-{r:04d}",
            "order_id": f"ORD-{rng.randrange(1, 5000):08d}", "tracking_number": f"{carrier.upper()}{rng.randrange(10**9):09d}",
            "shipped_at": shipped.isoformat().replace("+00:00", "Z"), "service_level": rng.choice(["std", "express"]),
            "weight_kg": f"{rng.uniform(0.1, 30):.2f}", "consignee_city": rng.choice(CITIES),
        }
        fault = None if f.bad_file else _line_fault(i, r, rows, ["wrong_column_count", "bad_encoding", "missing_field"])
        if fault == "missing_field":
            row["tracking_number"] = ""
        values = [row[c] for c in header]
        line = _csv_line(values[:-2] if fault == "wrong_column_count" else values)
        if fault == "bad_encoding":  # a Latin-1 city name in a UTF-8 file
            line = line.replace(row["consignee_city"].encode(), b"D\xfcsseldorf")
        lines.append(line)
        if fault:
            f.bad_lines[fault] += 1
        elif not f.bad_file:
            f.records += 1
    f.body = _csv_bytes(header, []) + b"".join(lines)
    return f


def _line_fault(i: int, r: int, rows: int, faults: list[str]) -> str | None:
    """At most one injected bad line per file, at a deterministic row, cycling through `faults`."""
    if i % 3 == 2 or rows < 3:
        return None  # every third file is clean
    return faults[(i - i // 3) % len(faults)] if r == (i * 7) % rows else None


def _settlement(rng: random.Random, i: int, rows: int) -> LandingFile:
    processor = PROCESSORS[i % len(PROCESSORS)]
    day = BASE_DAY + dt.timedelta(days=i // len(PROCESSORS))
    fmt = "csv" if i % 2 == 0 else "jsonl"
    gz = i % 6 == 2
    key = f"settlements/{processor}/{day:%Y-%m-%d}/settlement-{i:05d}.{fmt}" + (".gz" if gz else "")
    f = LandingFile("settlements", key, b"")
    if i % 6 == 5:
        f.key = f"settlements/{processor}/{day:%Y-%m-%d}/settlement-{i:05d}.jsonl.gz"
        f.body = b"this is not gzip"
        f.bad_file = "bad_compression"
        return f
    records, lines = [], []
    faults = ["wrong_column_count", "missing_field"] if fmt == "csv" else ["invalid_json", "not_an_object", "missing_field"]
    for r in range(rows):
        amount = rng.randrange(500, 50_000) / 100
        rec = {
            "processor": processor, "settlement_id": f"STL-{processor}-{i:05d}", "payment_id": f"PAY-{i:05d}-{r:04d}",
            "order_id": f"ORD-{rng.randrange(1, 5000):08d}", "amount": f"{amount:.2f}",
            "currency": rng.choice(CURRENCIES), "fee": f"{amount * 0.014 + 0.25:.2f}",
            "settled_at": (day + dt.timedelta(hours=6, seconds=r)).isoformat().replace("+00:00", "Z"),
        }
        fault = _line_fault(i, r, rows, faults)
        if fault == "missing_field":
            rec["payment_id"] = ""
        if fmt == "csv":
            values = [rec[c] for c in SETTLEMENT_COLUMNS]
            records.append(values[:-3] if fault == "wrong_column_count" else values)
        else:
            rec["amount"], rec["fee"] = float(rec["amount"]), float(rec["fee"])
            if fault == "missing_field":
                del rec["payment_id"]
            text = json.dumps(rec)
            if fault == "invalid_json":
                text = text[:-1]
            elif fault == "not_an_object":
                text = json.dumps([rec["payment_id"], rec["amount"]])
            lines.append(text)
        if fault:
            f.bad_lines[fault] += 1
        else:
            f.records += 1
    body = _csv_bytes(SETTLEMENT_COLUMNS, records) if fmt == "csv" else ("\n".join(lines) + "\n").encode()
    f.body = gzip.compress(body, mtime=0) if gz else body
    return f


def generate_landing_files(
    seed: int = 42, manifests: int = 7, settlements: int = 6, rows_per_file: int = 20, start: int = 0
) -> tuple[list[LandingFile], LandingReport]:
    """Files numbered `start`..: `manifests` manifest files and `settlements` settlement files, with faults."""
    report = LandingReport()
    files: list[LandingFile] = []
    for i in range(start, start + manifests):
        files.append(_manifest(random.Random(f"{seed}-m-{i}"), i, rows_per_file))
    for i in range(start, start + settlements):
        files.append(_settlement(random.Random(f"{seed}-s-{i}"), i, rows_per_file))
    for f in files:
        report.add(f)
    return files, report


def upload(client: Any, bucket: str, files: list[LandingFile]) -> int:
    """Put every file into `bucket`; returns the number uploaded."""
    for f in files:
        client.put_object(Bucket=bucket, Key=f.key, Body=f.body)
    return len(files)
