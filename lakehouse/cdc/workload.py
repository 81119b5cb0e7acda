"""Deterministic ERP/OMS workload: seed data, then seed-driven transactions against the source database.

Same seed + same starting state = same statements. Transactions mix price changes, restocks and stock
adjustments, new and discontinued (deleted) products, customer edits and deletions, FX rate moves, supplier
edits, bursts (hundreds of changes in one transaction) and multi-table transactions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

SCHEMA_SQL = Path(__file__).with_name("erp_schema.sql")
CURRENCIES = ["EUR", "USD", "GBP", "SEK", "PLN", "CHF", "JPY"]
COUNTRIES = ["DE", "FR", "NL", "SE", "PL", "GB", "US", "CH"]
CATEGORIES = ["shoes", "shirts", "bags", "toys", "kitchen", "garden", "books"]
# (warehouse_id, code, name, city, country): `code` is what storefront and OMS events carry (`WH-<region>-<n>`).
WAREHOUSES = [
    (1, "WH-EU-1", "Berlin DC", "Berlin", "DE"), (2, "WH-EU-2", "Lyon DC", "Lyon", "FR"),
    (3, "WH-EU-3", "Leeds DC", "Leeds", "GB"), (4, "WH-NA-1", "Newark DC", "Newark", "US"),
    (5, "WH-NA-2", "Dallas DC", "Dallas", "US"), (6, "WH-NA-3", "Reno DC", "Reno", "US"),
    (7, "WH-APAC-1", "Chiba DC", "Chiba", "JP"), (8, "WH-APAC-2", "Osaka DC", "Osaka", "JP"),
    (9, "WH-APAC-3", "Singapore DC", "Singapore", "SG"),
]


@dataclass
class WorkloadReport:
    """What a workload run did (counts of statements by kind)."""

    transactions: int = 0
    changes: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, rows: int) -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + rows
        self.changes += rows


def apply_schema(conn) -> None:
    """Create the ERP tables (idempotent)."""
    conn.execute(SCHEMA_SQL.read_text())
    conn.commit()


def _price(rng: random.Random) -> Decimal:
    return Decimal(rng.randint(199, 49999)) / 100


def sku_code(number: int) -> str:
    """The catalogue's SKU format, shared with the storefront events: SKU-00001."""
    return f"SKU-{number:05d}"


def _initial_rate(currency: str, rng: random.Random) -> Decimal:
    """EUR per unit of `currency` at seeding time."""
    if currency == "EUR":
        return Decimal("1")
    low, high = (500, 900) if currency == "JPY" else (5000, 150000)
    return Decimal(rng.randint(low, high)) / 100000


def seed(conn, seed: int = 7, products: int = 200, customers: int = 300) -> WorkloadReport:
    """Insert the initial ERP state (skipped when products already exist)."""
    report = WorkloadReport()
    apply_schema(conn)
    if conn.execute("SELECT count(*) FROM products").fetchone()[0] > 0:
        return report
    rng = random.Random(seed)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO warehouses (warehouse_id, code, name, city, country) "
                        "VALUES (%s, %s, %s, %s, %s)", WAREHOUSES)
        cur.executemany("INSERT INTO suppliers VALUES (%s, %s, %s, %s)",
                        [(i, f"Supplier {i}", rng.choice(COUNTRIES), f"s{i}@example.com") for i in range(1, 21)])
        cur.executemany("INSERT INTO fx_rates (currency, rate_to_eur) VALUES (%s, %s)",
                        [(c, _initial_rate(c, rng)) for c in CURRENCIES])
        cur.executemany(
            "INSERT INTO products (sku, title, category, price, currency, active, supplier_id) "
            "VALUES (%s, %s, %s, %s, %s, true, %s)",
            [(sku_code(i), f"Product {i}", rng.choice(CATEGORIES), _price(rng), rng.choice(CURRENCIES[:3]),
              rng.randint(1, 20)) for i in range(1, products + 1)],
        )
        cur.executemany(
            "INSERT INTO inventory VALUES (%s, %s, %s)",
            [(sku_code(i), w[0], rng.randint(0, 500)) for i in range(1, products + 1) for w in WAREHOUSES],
        )
        cur.executemany(
            "INSERT INTO customers (customer_id, name, email, address, country, marketing_consent) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [(i, f"Customer {i}", f"c{i}@example.com", f"{i} Main Street", rng.choice(COUNTRIES),
              rng.random() < 0.5) for i in range(1, customers + 1)],
        )
    conn.commit()
    report.transactions = 1
    report.add("seed", len(WAREHOUSES) + 20 + len(CURRENCIES) + products * (1 + len(WAREHOUSES)) + customers)
    return report


class Workload:
    """Seed-driven transactions; `run(n)` commits n transactions and returns what it did."""

    KINDS = ("price_change", "restock", "restock", "new_product", "discontinue", "customer_edit", "customer_edit",
             "customer_delete", "new_customer", "fx_move", "supplier_edit")  # drawn uniformly (restock twice)

    def __init__(self, conn, seed: int = 42, burst_every: int = 50, burst_size: int = 200,
                 kinds: tuple[str, ...] = KINDS) -> None:
        self.conn = conn
        self.kinds = [getattr(self, kind) for kind in kinds]
        self.rng = random.Random(seed)
        self.burst_every = burst_every
        self.burst_size = burst_size
        self.report = WorkloadReport()
        self._next_sku = self._max_id("SELECT coalesce(max(substr(sku, 5)::int), 0) FROM products") + 1
        self._next_customer = self._max_id("SELECT coalesce(max(customer_id), 0) FROM customers") + 1

    def _max_id(self, sql: str) -> int:
        value = self.conn.execute(sql).fetchone()[0]
        self.conn.commit()
        return int(value)

    def _ids(self, sql: str) -> list:
        return [r[0] for r in self.conn.execute(sql).fetchall()]

    def _pick(self, sql: str, k: int = 1) -> list:
        ids = self._ids(sql)
        return self.rng.sample(ids, min(k, len(ids))) if ids else []

    # --- statement kinds -------------------------------------------------------------------------
    def price_change(self, k: int = 1) -> None:
        for sku in self._pick("SELECT sku FROM products WHERE active ORDER BY sku", k):
            factor = Decimal(self.rng.randint(80, 125)) / 100
            n = self.conn.execute("UPDATE products SET price = round(price * %s, 2), updated_at = now() "
                                  "WHERE sku = %s", (factor, sku)).rowcount
            self.report.add("price_change", n)

    def restock(self, k: int = 1) -> None:
        for sku in self._pick("SELECT DISTINCT sku FROM inventory ORDER BY sku", k):
            wh = self.rng.choice(WAREHOUSES)[0]
            delta = self.rng.randint(-20, 200)
            n = self.conn.execute("UPDATE inventory SET on_hand = greatest(on_hand + %s, 0) "
                                  "WHERE sku = %s AND warehouse_id = %s", (delta, sku, wh)).rowcount
            self.report.add("restock", n)

    def new_product(self) -> None:
        sku = sku_code(self._next_sku)
        self._next_sku += 1
        self.conn.execute(
            "INSERT INTO products (sku, title, category, price, currency, active, supplier_id) "
            "VALUES (%s, %s, %s, %s, %s, true, %s)",
            (sku, f"New product {sku}", self.rng.choice(CATEGORIES), _price(self.rng),
             self.rng.choice(CURRENCIES[:3]), self.rng.randint(1, 20)),
        )
        for wh in WAREHOUSES[: self.rng.randint(1, len(WAREHOUSES))]:
            self.conn.execute("INSERT INTO inventory VALUES (%s, %s, %s)", (sku, wh[0], self.rng.randint(0, 100)))
            self.report.add("new_product", 1)
        self.report.add("new_product", 1)

    def discontinue(self) -> None:
        """Half the time mark inactive, otherwise delete the product (its inventory rows cascade)."""
        for sku in self._pick("SELECT sku FROM products WHERE active ORDER BY sku"):
            if self.rng.random() < 0.5:
                n = self.conn.execute("UPDATE products SET active = false, updated_at = now() WHERE sku = %s",
                                      (sku,)).rowcount
            else:
                n = self.conn.execute("DELETE FROM inventory WHERE sku = %s", (sku,)).rowcount
                n += self.conn.execute("DELETE FROM products WHERE sku = %s", (sku,)).rowcount
            self.report.add("discontinue", n)

    def customer_edit(self) -> None:
        for cid in self._pick("SELECT customer_id FROM customers ORDER BY customer_id"):
            choice = self.rng.randrange(3)
            if choice == 0:
                sql, arg = "UPDATE customers SET email = %s, updated_at = now() WHERE customer_id = %s", \
                    f"c{cid}.{self.rng.randint(1, 9999)}@example.org"
            elif choice == 1:
                sql, arg = "UPDATE customers SET address = %s, updated_at = now() WHERE customer_id = %s", \
                    f"{self.rng.randint(1, 999)} Side Road"
            else:
                sql, arg = ("UPDATE customers SET marketing_consent = %s, updated_at = now() "
                            "WHERE customer_id = %s"), self.rng.random() < 0.5
            self.report.add("customer_edit", self.conn.execute(sql, (arg, cid)).rowcount)

    def customer_delete(self) -> None:
        for cid in self._pick("SELECT customer_id FROM customers ORDER BY customer_id"):
            self.report.add("customer_delete",
                            self.conn.execute("DELETE FROM customers WHERE customer_id = %s", (cid,)).rowcount)

    def new_customer(self) -> None:
        cid = self._next_customer
        self._next_customer += 1
        self.conn.execute(
            "INSERT INTO customers (customer_id, name, email, address, country, marketing_consent) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (cid, f"Customer {cid}", f"c{cid}@example.com", f"{cid} New Street", self.rng.choice(COUNTRIES),
             self.rng.random() < 0.5),
        )
        self.report.add("new_customer", 1)

    def fx_move(self) -> None:
        cur = self.rng.choice(CURRENCIES[1:])
        factor = Decimal(self.rng.randint(990, 1010)) / 1000
        self.report.add("fx_move", self.conn.execute(
            "UPDATE fx_rates SET rate_to_eur = round(rate_to_eur * %s, 8), updated_at = now() "
            "WHERE currency = %s", (factor, cur)).rowcount)

    def supplier_edit(self) -> None:
        sid = self.rng.randint(1, 20)
        self.report.add("supplier_edit", self.conn.execute(
            "UPDATE suppliers SET email = %s WHERE supplier_id = %s",
            (f"s{sid}.{self.rng.randint(1, 999)}@example.net", sid)).rowcount)

    def burst(self) -> None:
        """Many changes in one transaction: a category-wide repricing plus a restock wave."""
        self.price_change(self.burst_size // 2)
        self.restock(self.burst_size // 2)

    # --- driver -------------------------------------------------------------------------------------
    def transaction(self) -> None:
        """One committed transaction of 1..n statements."""
        if self.burst_every and self.report.transactions % self.burst_every == self.burst_every - 1:
            self.burst()
        else:
            for _ in range(self.rng.randint(1, 4)):  # multi-row, multi-table transactions
                self.rng.choice(self.kinds)()
        self.conn.commit()
        self.report.transactions += 1

    def run(self, transactions: int) -> WorkloadReport:
        for _ in range(transactions):
            self.transaction()
        return self.report


def current_lsn(conn) -> int:
    """The server's current WAL insert position as an integer (comparable with Debezium's source.lsn)."""
    text = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
    conn.commit()
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)
