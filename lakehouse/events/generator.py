"""Deterministic multi-family event stream with injected faults and an exact report of what was injected.

`generate_stream(StreamConfig(...))` builds, from one seed, the Kafka records of every family (one topic per
family: orders, inventory, payments, shipments, clickstream) over `duration_s` seconds of event time at `rate`
events/s, plus an optional flash sale (extra `order_placed` events at >= 10,000 orders/minute). Entities are
linked across families: order N has the same customer, channel, region, currency and lines in `orders`,
`inventory`, `payments` and `shipments`.

Faults (rates are fractions of each family's events; counts are exact and in the report, per family):

* dead-letter faults (bronze must divert them to `bronze.dead_letter`): `malformed_json` (truncated JSON),
  `not_utf8` (a producer writing Latin-1), `oversized` (payload > `max_bytes`);
* payload faults (valid JSON, kept in bronze, caught later): `wrong_type`, `missing_field`, `negative_price`,
  `unknown_sku` (a SKU outside the catalogue), `late` (event time 1-48 h in the past);
* delivery faults: `duplicate` (byte-identical re-delivery, extra record), `out_of_order` (two events of one
  entity delivered in the wrong order; counted in pairs);
* schema change: from `schema_v2_at` (fraction of the orders stream) on, orders are published as v2.

Each record is `(key, value, headers)`; headers carry `event_family`, `event_type`, `schema_version`,
`content_type`, `producer`.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lakehouse.events.schemas import FAMILIES, required_fields

Header = tuple[str, bytes]
Record = tuple[bytes | None, bytes, list[Header]]

CHANNELS = ("web", "mobile_app", "amazon", "ebay", "shopify", "store")
REGION_CURRENCIES = {"EU": ("EUR", "EUR", "GBP"), "NA": ("USD",), "APAC": ("JPY", "USD")}
REGIONS = tuple(REGION_CURRENCIES)
CATALOGUE_SKUS = 5000  # SKU-00001 .. SKU-05000 exist; unknown_sku uses SKU-90000+
PROVIDERS = ("stripe", "paypal", "adyen")
CARRIERS = {"EU": ("DHL", "RoyalMail", "UPS"), "NA": ("UPS", "FedEx", "USPS"), "APAC": ("JapanPost", "DHL")}
DEFAULT_START = datetime(2024, 3, 1, tzinfo=UTC)

DEAD_LETTER_FAULTS = {"malformed_json": "not_json", "not_utf8": "not_utf8", "oversized": "oversized"}
QUARANTINED_FAULTS = ("wrong_type", "missing_field", "negative_price", "unknown_sku")  # silver quarantines them
PAYLOAD_FAULTS = (*QUARANTINED_FAULTS, "late")
SLOT_FAULTS = (*DEAD_LETTER_FAULTS, *PAYLOAD_FAULTS)  # one per event, disjoint
FAULTS = (*SLOT_FAULTS, "duplicate", "out_of_order")
DEAD_LETTER_REASONS = ("oversized", "not_utf8", "not_json", "empty")

DEFAULT_FAMILY_MIX = {"orders": 0.2, "inventory": 0.15, "payments": 0.15, "shipments": 0.15, "clickstream": 0.35}
DEFAULT_CHANNEL_MIX = {"web": 0.35, "mobile_app": 0.25, "amazon": 0.15, "ebay": 0.05, "shopify": 0.1, "store": 0.1}
DEFAULT_FAULT_RATES = {
    "malformed_json": 0.005, "not_utf8": 0.002, "oversized": 0.001, "wrong_type": 0.005, "missing_field": 0.005,
    "negative_price": 0.003, "unknown_sku": 0.003, "late": 0.01, "duplicate": 0.01, "out_of_order": 0.005,
}
EVENT_TYPES = {
    "orders": ("order_placed", "order_updated", "order_cancelled"),
    "inventory": ("inventory_locked", "inventory_released"),
    "payments": ("authorized", "captured", "refunded", "chargeback"),
    "shipments": ("label_created", "shipped", "delivered", "returned"),
    "clickstream": ("page_view", "product_view", "add_to_cart"),
}
_HAS_PRICE = {"orders": None, "payments": None, "clickstream": ("product_view", "add_to_cart")}
_HAS_SKU = {"orders": None, "inventory": None, "clickstream": ("product_view", "add_to_cart")}


@dataclass(frozen=True)
class FlashSale:
    """Extra `order_placed` events at `orders_per_minute` during [start_s, start_s + duration_s)."""

    start_s: float = 10.0
    duration_s: float = 60.0
    orders_per_minute: int = 12_000


@dataclass(frozen=True)
class StreamConfig:
    seed: int = 42
    rate: float = 1000.0  # events/s of event time (and of wall-clock time when produced with pace=True)
    duration_s: float = 60.0
    families: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAMILY_MIX))
    channels: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CHANNEL_MIX))
    faults: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAULT_RATES))
    flash_sale: FlashSale | None = None
    schema_v2_at: float | None = 0.5  # orders switch to schema v2 after this fraction of the orders stream
    max_bytes: int = 65_536  # oversized payloads exceed this (bronze's --max-bytes default)
    start: datetime = DEFAULT_START
    topic_prefix: str = ""
    first_order: int = 1  # the number of the stream's first order (ORD-<8 digits>): streams sharing tables need
    # ranges of their own, or one order id would name two different orders

    def topic(self, family: str) -> str:
        return f"{self.topic_prefix}{family}"

    def validate(self) -> None:
        unknown = (set(self.families) - set(FAMILIES)) | (set(self.faults) - set(FAULTS))
        unknown |= set(self.channels) - set(CHANNELS)
        if unknown:
            raise ValueError(f"unknown families, faults or channels: {sorted(unknown)}")
        if self.rate <= 0 or self.duration_s <= 0 or not any(v > 0 for v in self.families.values()):
            raise ValueError("rate and duration must be > 0 and at least one family weight > 0")
        if not any(v > 0 for v in self.channels.values()):
            raise ValueError("at least one channel weight must be > 0")
        if any(not 0 <= v <= 1 for v in self.faults.values()) or sum(
            self.faults.get(f, 0) for f in SLOT_FAULTS
        ) > 1:
            raise ValueError("fault rates must be in [0, 1] and the per-event faults must sum to <= 1")
        if not 1 <= self.first_order < 10**8:
            raise ValueError(f"first_order must be an 8-digit order number (1 .. {10**8 - 1}), got {self.first_order}")


@dataclass
class FamilyReport:
    """Exactly what was produced to one family's topic."""

    family: str
    topic: str
    produced: int = 0  # records on the topic (events + duplicates)
    events: int = 0  # distinct generated events (before duplicates)
    clean: int = 0  # events without a per-event fault
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULTS, 0))
    event_types: dict[str, int] = field(default_factory=dict)
    schema_versions: dict[str, int] = field(default_factory=dict)
    flash_sale_orders: int = 0

    @property
    def dead_letter(self) -> dict[str, int]:
        """Records bronze must divert to the dead-letter table, by reason."""
        return {reason: self.faults[fault] for fault, reason in DEAD_LETTER_FAULTS.items()}

    @property
    def bronze(self) -> int:
        """Records bronze must keep in the family's table (duplicates included: bronze is as delivered)."""
        return self.produced - sum(self.dead_letter.values())


@dataclass
class StreamReport:
    seed: int
    duration_s: float
    families: dict[str, FamilyReport]
    peak_orders_per_minute: int = 0
    produce_seconds: float | None = None

    @property
    def produced(self) -> int:
        return sum(f.produced for f in self.families.values())

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, fam in self.families.items():
            out["families"][name].update(dead_letter=fam.dead_letter, bronze=fam.bronze)
        out["produced"] = self.produced
        return out


@dataclass
class GeneratedStream:
    config: StreamConfig
    records: dict[str, list[Record]]  # family -> records in delivery order
    report: StreamReport


# --- helpers ---------------------------------------------------------------------------------------------------


def _split(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Largest-remainder split of `total` by `weights` (deterministic, sums exactly to total)."""
    norm = sum(w for w in weights.values() if w > 0)
    raw = {k: total * w / norm for k, w in weights.items() if w > 0}
    out = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (-(raw[k] - out[k]), k))[: total - sum(out.values())]:
        out[k] += 1
    return out


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _money(cents: int) -> float:
    return cents / 100


def _encode(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


class _Orders:
    """Order facts by order number, identical in every family (deterministic per seed and number)."""

    def __init__(self, seed: int, channels: dict[str, float], first: int = 1) -> None:
        self.seed = seed
        self.first = first  # every family numbers its entities from here
        self.channel_names = list(channels)
        self.channel_weights = [channels[c] for c in self.channel_names]
        self._cache: dict[int, dict] = {}

    def facts(self, no: int) -> dict:
        f = self._cache.get(no)
        if f is None:
            rng = random.Random(self.seed * 1_000_003 + no)
            region = rng.choice(REGIONS)
            currency = rng.choice(REGION_CURRENCIES[region])
            lines = []
            for _ in range(rng.randint(1, 4)):
                cents = rng.randint(100, 50_000)
                if currency == "JPY":
                    cents = cents * 100  # whole yen
                lines.append({"sku": f"SKU-{rng.randint(1, CATALOGUE_SKUS):05d}", "quantity": rng.randint(1, 5),
                              "unit_price": cents})
            f = {
                "order_id": f"ORD-{no:08d}",
                "customer_id": f"CUST-{rng.randint(1, 200_000):06d}",
                "channel": rng.choices(self.channel_names, self.channel_weights)[0],
                "region": region,
                "currency": currency,
                "lines": lines,
                "total_cents": sum(line["quantity"] * line["unit_price"] for line in lines),
            }
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[no] = f
        return f


# --- per-family lifecycles ------------------------------------------------------------------------------------


class _Family:
    """Generates one family's events as interleaved entity lifecycles, in event-time order."""

    family = ""
    advance_p = 0.45  # chance that an event advances an open entity instead of starting a new one

    def __init__(self, rng: random.Random, orders: _Orders) -> None:
        self.rng = rng
        self.orders = orders
        self.open: list[dict] = []
        self.next_no = orders.first

    def new_entity(self) -> dict:
        no = self.next_no
        self.next_no += 1
        return {"no": no, "step": 0}

    def event(self, ts: datetime) -> tuple[str, dict]:
        """(key, event) for the next event at `ts`."""
        rng = self.rng
        if self.open and rng.random() < self.advance_p:
            i = rng.randrange(len(self.open))
            ent = self.open[i]
            ent["step"] += 1
        else:
            ent = self.new_entity()
            self.open.append(ent)
            i = len(self.open) - 1
        key, body, done = self.build(ent, ts)
        if done:
            self.open[i] = self.open[-1]
            self.open.pop()
        return key, body

    def envelope(self, event_type: str, ts: datetime) -> dict:
        return {"event_id": _uuid(self.rng), "event_type": event_type, "schema_version": 1, "event_time": _iso(ts)}

    def build(self, ent: dict, ts: datetime) -> tuple[str, dict, bool]:
        raise NotImplementedError


class _OrderEvents(_Family):
    family = "orders"
    advance_p = 0.3

    def build(self, ent: dict, ts: datetime) -> tuple[str, dict, bool]:
        f = self.orders.facts(ent["no"])
        if ent["step"] == 0:
            kind, done = "order_placed", False
        elif ent["step"] == 1 and self.rng.random() < 0.7:
            kind, done = "order_updated", False
        else:
            kind, done = "order_cancelled", True
        lines = [{"sku": ln["sku"], "quantity": ln["quantity"], "unit_price": _money(ln["unit_price"])}
                 for ln in f["lines"]]
        if kind == "order_updated" and len(lines) > 1:
            lines = lines[:-1]
        total = sum(round(ln["unit_price"] * 100) * ln["quantity"] for ln in lines)
        return f["order_id"], {
            **self.envelope(kind, ts), "order_id": f["order_id"], "customer_id": f["customer_id"],
            "channel": f["channel"], "region": f["region"], "currency": f["currency"], "lines": lines,
            "total_amount": _money(total),
        }, done


class _InventoryEvents(_Family):
    family = "inventory"

    def build(self, ent: dict, ts: datetime) -> tuple[str, dict, bool]:
        f = self.orders.facts(ent["no"])
        line = f["lines"][0]
        locked = ent["step"] == 0
        return f["order_id"], {
            **self.envelope("inventory_locked" if locked else "inventory_released", ts),
            "reservation_id": f"RES-{ent['no']:08d}", "order_id": f["order_id"], "sku": line["sku"],
            "warehouse_id": f"WH-{f['region']}-{ent['no'] % 3 + 1}", "region": f["region"],
            "quantity": line["quantity"],
            "reason": "order_placed" if locked else self.rng.choice(("order_cancelled", "expired", "fulfilled")),
        }, not locked


def inventory_lock(no: int, sku: str, warehouse_id: str, quantity: int, at: datetime,
                   event_id: str | None = None) -> bytes:
    """One valid `inventory_locked` event, encoded: the OMS reserving `quantity` of `sku` in `warehouse_id`
    (a code `WH-<region>-<n>`) for order ORD-<no> at `at` (a random event id unless given)."""
    return _encode({
        "event_id": event_id or str(uuid.uuid4()), "event_type": "inventory_locked", "schema_version": 1,
        "event_time": _iso(at), "reservation_id": f"RES-{no:08d}", "order_id": f"ORD-{no:08d}", "sku": sku,
        "warehouse_id": warehouse_id, "region": warehouse_id.split("-")[1], "quantity": quantity,
        "reason": "order_placed",
    })


_STRIPE = {"authorized": "payment_intent.amount_capturable_updated", "captured": "payment_intent.succeeded",
           "refunded": "charge.refunded", "chargeback": "charge.dispute.created"}
_PAYPAL = {"authorized": "PAYMENT.AUTHORIZATION.CREATED", "captured": "PAYMENT.CAPTURE.COMPLETED",
           "refunded": "PAYMENT.CAPTURE.REFUNDED", "chargeback": "CUSTOMER.DISPUTE.CREATED"}
_ADYEN = {"authorized": "AUTHORISATION", "captured": "CAPTURE", "refunded": "REFUND", "chargeback": "CHARGEBACK"}


class _PaymentEvents(_Family):
    family = "payments"

    def build(self, ent: dict, ts: datetime) -> tuple[str, dict, bool]:
        rng = self.rng
        f = self.orders.facts(ent["no"])
        step = ent["step"]
        if step == 0:
            kind = "authorized"
        elif step == 1:
            kind = "captured"
        else:
            kind = "chargeback" if rng.random() < 0.2 else "refunded"
        done = step >= 2 or (step == 1 and rng.random() < 0.85)
        provider = PROVIDERS[ent["no"] % 3]
        cents = f["total_cents"]
        minor = cents // 100 if f["currency"] == "JPY" else cents
        ref = f"{ent['no']:08d}{rng.getrandbits(32):08x}"
        if provider == "stripe":
            payload: dict = {"id": f"evt_{ref}", "object": "event", "type": _STRIPE[kind],
                             "created": int(ts.timestamp()),
                             "data": {"object": {"id": f"pi_{ent['no']:08d}", "object": "payment_intent",
                                                 "amount": minor, "currency": f["currency"].lower(),
                                                 "status": "succeeded" if kind == "captured" else "requires_capture"}}}
        elif provider == "paypal":
            payload = {"id": f"WH-{ref}", "event_type": _PAYPAL[kind], "create_time": _iso(ts),
                       "resource": {"id": f"PAY-{ent['no']:08d}", "status": kind.upper(),
                                    "amount": {"currency_code": f["currency"], "value": f"{cents / 100:.2f}"}}}
        else:
            payload = {"pspReference": f"{8800000000000000 + ent['no']}", "merchantReference": f["order_id"],
                       "eventCode": _ADYEN[kind], "success": "true", "eventDate": _iso(ts),
                       "amount": {"value": minor, "currency": f["currency"]}}
        return f["order_id"], {
            **self.envelope(kind, ts), "payment_id": f"PAY-{ent['no']:08d}", "order_id": f["order_id"],
            "provider": provider, "amount": _money(cents), "currency": f["currency"], "region": f["region"],
            "provider_payload": payload,
        }, done


class _ShipmentEvents(_Family):
    family = "shipments"
    advance_p = 0.6

    def build(self, ent: dict, ts: datetime) -> tuple[str, dict, bool]:
        f = self.orders.facts(ent["no"])
        step = ent["step"]
        kind = ("label_created", "shipped", "delivered", "returned")[min(step, 3)]
        done = step >= 3 or (step == 2 and self.rng.random() < 0.93)
        carriers = CARRIERS[f["region"]]
        return f["order_id"], {
            **self.envelope(kind, ts), "shipment_id": f"SHP-{ent['no']:08d}", "order_id": f["order_id"],
            "carrier": carriers[ent["no"] % len(carriers)], "service_level": ("standard", "express")[ent["no"] % 2],
            "tracking_number": f"TRK{ent['no']:010d}", "region": f["region"],
            "destination_country": {"EU": "DE", "NA": "US", "APAC": "JP"}[f["region"]],
            "weight_grams": 200 + ent["no"] % 5000, "return_reason": "damaged" if kind == "returned" else None,
        }, done


class _ClickEvents(_Family):
    family = "clickstream"
    advance_p = 0.6

    def build(self, ent: dict, ts: datetime) -> tuple[str, dict, bool]:
        rng = self.rng
        if "session" not in ent:
            ent["session"] = f"S-{ent['no']:09d}"
            ent["channel"] = "mobile_app" if rng.random() < 0.4 else "web"
            ent["region"] = rng.choice(REGIONS)
            ent["customer"] = f"CUST-{rng.randint(1, 200_000):06d}" if rng.random() < 0.6 else None
        step = ent["step"]
        kind = "page_view" if step == 0 else rng.choice(("product_view", "product_view", "add_to_cart", "page_view"))
        event = {**self.envelope(kind, ts), "session_id": ent["session"], "customer_id": ent["customer"],
                 "channel": ent["channel"], "region": ent["region"], "page_url": "/", "referrer": None,
                 "user_agent": "Mozilla/5.0" if ent["channel"] == "web" else "RetailApp/7.3 (iOS 17)"}
        if kind != "page_view":
            sku = f"SKU-{rng.randint(1, CATALOGUE_SKUS):05d}"
            currency = rng.choice(REGION_CURRENCIES[ent["region"]])
            event.update(page_url=f"/p/{sku}", sku=sku, quantity=1 if kind == "add_to_cart" else None,
                         price=_money(rng.randint(100, 50_000)), currency=currency)
        else:
            event["page_url"] = rng.choice(("/", "/sale", "/c/shoes", "/c/electronics", "/search?q=socks"))
        return ent["session"], event, step >= 6 or rng.random() < 0.2


_GENERATORS = {c.family: c for c in (_OrderEvents, _InventoryEvents, _PaymentEvents, _ShipmentEvents, _ClickEvents)}


# --- faults ----------------------------------------------------------------------------------------------------


def _eligible(fault: str, family: str, event: dict) -> bool:
    if fault == "negative_price":
        types = _HAS_PRICE.get(family, ())
    elif fault == "unknown_sku":
        types = _HAS_SKU.get(family, ())
    else:
        return True
    return types is None or (bool(types) and event["event_type"] in types)


def _apply_payload_fault(fault: str, family: str, event: dict, rng: random.Random) -> None:
    if fault == "wrong_type":
        if family == "orders":
            event["total_amount"] = f"{event['total_amount']:.2f}"  # number sent as a string
        elif family == "inventory":
            event["quantity"] = str(event["quantity"])
        elif family == "payments":
            event["amount"] = f"{event['amount']:.2f}".replace(".", ",")
        else:
            event["event_time"] = int(datetime.fromisoformat(event["event_time"]).timestamp() * 1000)
    elif fault == "missing_field":
        candidates = [f for f in required_fields(family, event["schema_version"])
                      if f not in ("event_type", "schema_version")]
        event.pop(rng.choice(candidates))
    elif fault == "negative_price":
        if family == "orders":
            event["lines"][0]["unit_price"] = -abs(event["lines"][0]["unit_price"]) or -1.0
        elif family == "payments":
            event["amount"] = -abs(event["amount"]) or -1.0
        else:
            event["price"] = -abs(event["price"]) or -1.0
    elif fault == "unknown_sku":
        sku = f"SKU-{rng.randint(90_000, 99_999)}"
        if family == "orders":
            event["lines"][0]["sku"] = sku
        else:
            event["sku"] = sku
    elif fault == "late":
        ts = datetime.fromisoformat(event["event_time"]) - timedelta(seconds=rng.randint(3600, 48 * 3600))
        event["event_time"] = _iso(ts)


def _to_v2(event: dict, rng: random.Random) -> None:
    """Orders v1 -> v2 (additive: amounts breakdown, marketplace reference, store id, line discounts)."""
    event["schema_version"] = 2
    for line in event["lines"]:
        line["discount"] = 0.0
    event["shipping_amount"] = 0.0 if event["channel"] == "store" else 4.99
    event["tax_amount"] = round(event["total_amount"] * 0.19, 2)
    event["marketplace_order_ref"] = (f"{event['channel'][:2].upper()}-{rng.getrandbits(40):010x}"
                                      if event["channel"] in ("amazon", "ebay", "shopify") else None)
    event["store_id"] = f"STORE-{rng.randint(1, 40):03d}" if event["channel"] == "store" else None


def _headers(family: str, event_type: str, version: int) -> list[Header]:
    return [("event_family", family.encode()), ("event_type", event_type.encode()),
            ("schema_version", str(version).encode()), ("content_type", b"application/json"),
            ("producer", b"lakehouse-generator")]


# --- the stream ------------------------------------------------------------------------------------------------


def generate_stream(config: StreamConfig) -> GeneratedStream:
    """Build every family's records and the exact report, deterministically from `config.seed`."""
    config.validate()
    total = round(config.rate * config.duration_s)
    counts = _split(total, {f: w for f, w in config.families.items()})
    orders = _Orders(config.seed, config.channels, config.first_order)
    records: dict[str, list[Record]] = {}
    families: dict[str, FamilyReport] = {}
    peak = 0
    for fam_index, family in enumerate(f for f in FAMILIES if counts.get(f)):
        rng = random.Random(config.seed * 7919 + fam_index)
        rep = FamilyReport(family=family, topic=config.topic(family))
        offsets = [(rng.random() * config.duration_s, False) for _ in range(counts[family])]
        if family == "orders" and config.flash_sale is not None:
            fs = config.flash_sale
            n_flash = round(fs.orders_per_minute * fs.duration_s / 60)
            offsets += [(fs.start_s + rng.random() * fs.duration_s, True) for _ in range(n_flash)]
        offsets.sort()
        gen = _GENERATORS[family](rng, orders)
        events: list[tuple[str, dict]] = []
        for off, is_flash in offsets:
            ts = config.start + timedelta(seconds=off)
            if is_flash:  # a flash-sale order: a new order placed
                key, body, _ = gen.build(gen.new_entity(), ts)
                rep.flash_sale_orders += 1
            else:
                key, body = gen.event(ts)
            events.append((key, body))
        rep.events = len(events)
        if family == "orders":
            minutes = Counter(int(off // 60) for (off, _), (_, e) in zip(offsets, events, strict=True)
                              if e["event_type"] == "order_placed")
            peak = max(minutes.values(), default=0)
            if config.schema_v2_at is not None:
                for _, body in events[int(len(events) * config.schema_v2_at):]:
                    _to_v2(body, rng)

        # per-event faults: disjoint slots, chosen in a fixed order
        free = set(range(len(events)))
        slot_fault: dict[int, str] = {}
        for fault in SLOT_FAULTS:
            want = round(len(events) * config.faults.get(fault, 0.0))
            eligible = sorted(i for i in free if _eligible(fault, family, events[i][1]))
            for i in rng.sample(eligible, min(want, len(eligible))):
                slot_fault[i] = fault
                free.discard(i)
                rep.faults[fault] += 1
        out: list[Record] = []
        clean: list[int] = []
        for i, (key, body) in enumerate(events):
            rep.event_types[body["event_type"]] = rep.event_types.get(body["event_type"], 0) + 1
            version = body["schema_version"]
            rep.schema_versions[str(version)] = rep.schema_versions.get(str(version), 0) + 1
            headers = _headers(family, body["event_type"], version)
            fault = slot_fault.get(i)
            if fault is None:
                out.append((key.encode(), _encode(body), headers))
                clean.append(i)
                continue
            if fault == "malformed_json":
                raw = _encode(body)
                value = raw[: rng.randint(1, len(raw) - 1)]  # a proper prefix of an object is never JSON
            elif fault == "not_utf8":
                body["note"] = "Lieferung für Müller, Straße 5"
                value = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("latin-1")
            elif fault == "oversized":
                body["debug_blob"] = "x" * (config.max_bytes + rng.randint(1, 4096))
                value = _encode(body)
            else:
                _apply_payload_fault(fault, family, body, rng)
                value = _encode(body)
            out.append((key.encode(), value, headers))
        rep.clean = len(clean)

        # out of order: swap two clean events of one entity (the later one is delivered first)
        want = round(len(events) * config.faults.get("out_of_order", 0.0))
        last_by_key: dict[bytes, int] = {}
        pairs: list[tuple[int, int]] = []
        used: set[int] = set()
        for i in clean:
            k = out[i][0]
            j = last_by_key.get(k)  # type: ignore[arg-type]
            if j is not None and j not in used and i not in used:
                pairs.append((j, i))
                used.update((j, i))
            last_by_key[k] = i  # type: ignore[index]
        for j, i in rng.sample(pairs, min(want, len(pairs))):
            out[j], out[i] = out[i], out[j]
            rep.faults["out_of_order"] += 1

        # duplicates: byte-identical re-deliveries of clean events, somewhere after the original
        want = round(len(events) * config.faults.get("duplicate", 0.0))
        originals = sorted(rng.sample(clean, min(want, len(clean))), reverse=True)
        for pos in originals:
            out.insert(rng.randint(pos + 1, len(out)), out[pos])
        rep.faults["duplicate"] = len(originals)
        rep.produced = len(out)
        records[family] = out
        families[family] = rep
    report = StreamReport(seed=config.seed, duration_s=config.duration_s, families=families,
                          peak_orders_per_minute=peak)
    return GeneratedStream(config=config, records=records, report=report)


def unused_first_order(bootstrap: str, topic_prefix: str = "") -> int:
    """A `first_order` no stream produced to these topics before can have used: one past the records they ever
    received (a stream numbers each family's entities from its first_order, at most one per record), so a stream
    started from it shares no order id with earlier ones (whose first_order was chosen the same way or was 1)."""
    from lakehouse.sources.kafka_admin import end_offsets, list_topics

    existing = list_topics(bootstrap)  # a family topic not created yet received nothing
    topics = [t for t in (f"{topic_prefix}{family}" for family in FAMILIES) if t in existing]
    return sum(sum(end_offsets(bootstrap, t).values()) for t in topics) + 1


def produce_stream(bootstrap: str, stream: GeneratedStream, partitions: int = 4, pace: bool = False,
                   config: dict | None = None) -> int:
    """Create the family topics (`partitions` each) and produce every record; with `pace`, spread each family's
    records over `duration_s` of wall-clock time. Records `produce_seconds` in the report; returns the count."""
    from confluent_kafka import Producer

    from lakehouse.errors import LakehouseError
    from lakehouse.sources.kafka_admin import PRODUCER_DEFAULTS, _unreachable, create_topics

    create_topics(bootstrap, [stream.config.topic(f) for f in stream.records], partitions)
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", **PRODUCER_DEFAULTS,
                         **(config or {})})
    errors: list[str] = []
    delivered = 0

    def on_delivery(err: Any, _msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            errors.append(err.str())
        else:
            delivered += 1

    # one merged send order: each family's records spread evenly over the stream's duration
    schedule = sorted(
        ((j / len(recs)) * stream.config.duration_s, f, j)
        for f, recs in stream.records.items()
        for j in range(len(recs))
    )
    started = time.perf_counter()
    for n, (at, family, j) in enumerate(schedule):
        if pace and n % 200 == 0:
            delay = at - (time.perf_counter() - started)
            if delay > 0:
                time.sleep(delay)
        key, value, headers = stream.records[family][j]
        topic = stream.config.topic(family)
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        if n % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    stream.report.produce_seconds = round(time.perf_counter() - started, 3)
    if remaining:
        raise _unreachable(bootstrap) if delivered == 0 else LakehouseError(f"{remaining} records not delivered")
    if errors:
        raise LakehouseError(f"{len(errors)} records failed: {errors[0]}")
    return delivered
