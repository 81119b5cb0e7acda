"""Debezium change envelopes for the CDC unit tests (Spark path and Arrow path share them)."""

from __future__ import annotations

import json


def product(sku: str, price: str, title: str = "Mug") -> dict:
    return {"sku": sku, "title": title, "category": "kitchen", "price": price, "currency": "EUR", "active": True,
            "supplier_id": 1, "updated_at": "2026-11-02T09:00:00.000000Z"}


def envelope(op: str, lsn: int, before: dict | None = None, after: dict | None = None, table: str = "products",
             ts: int = 1_780_000_000_000) -> bytes:
    return json.dumps({"before": before, "after": after, "op": op,
                       "source": {"lsn": lsn, "txId": lsn // 10, "ts_ms": ts + lsn, "schema": "public",
                                  "table": table}}).encode()
