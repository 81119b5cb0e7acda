"""Labelled payment history for training and evaluating fraud models: customers who pay honestly and four fraud
patterns, every payment attempt labelled with the pattern that produced it (`fraud_pattern`, "none" when honest).

Actors (each generated alone from one seed, by the executors with `mapInPandas`; the driver builds only the list
of actors):

* **customers** with an account, one or two devices and cards, a home country and a typical basket; they browse,
  order a few times, sometimes from a new device, after moving house, as a gift to another country, while
  travelling (IP country differs), and retry after a declined card;
* **guests** ordering once without an account (new device, new card, no history, like most fraud);
* **card testing**: one device tries many stolen cards for tiny amounts, most of them declined, some testers fast
  (seconds apart), some slow (minutes apart, under simple velocity rules);
* **bot bursts**: one device opens account after account and buys one high-demand item each within seconds of
  landing, shipping to a few drop addresses;
* **account takeover**: a customer's account is logged into from a new device, its address is changed (often to
  another country), and a basket several times the customer's usual is paid with the stored card;
* **country mismatch**: new accounts paying with cards billed in one country for goods shipped to another, from an
  IP in a third or the shipping country.

Tables (silver-shaped: what the payment processors, the storefront clickstream and the account service emit):
attempts (one row per payment authorization attempt, with its response and label), clicks (session events) and
account events (created, new-device login, address change).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd

from lakehouse.errors import LakehouseError

COUNTRY_CURRENCY = {"DE": "EUR", "FR": "EUR", "NL": "EUR", "GB": "GBP", "US": "USD", "JP": "JPY"}
COUNTRIES = tuple(COUNTRY_CURRENCY)
EUR_PER_UNIT = {"EUR": 1.0, "GBP": 1.17, "USD": 0.92, "JPY": 0.0062}  # what the history converts at
PATTERNS = ("card_testing", "bot_burst", "account_takeover", "country_mismatch")
HONEST = "none"

ATTEMPTS_SCHEMA = (
    "payment_id string, order_id string, session_id string, customer_id string, event_time timestamp, "
    "amount double, currency string, amount_eur double, card_fingerprint string, device_id string, "
    "ip_country string, billing_country string, shipping_country string, shipping_address_id string, "
    "response string, is_fraud boolean, fraud_pattern string"
)
CLICKS_SCHEMA = ("event_id string, session_id string, customer_id string, device_id string, event_type string, "
                 "event_time timestamp")
ACCOUNTS_SCHEMA = ("event_id string, customer_id string, event_type string, event_time timestamp, device_id string, "
                   "address_id string, country string")
ACCOUNT_EVENTS = ("account_created", "new_device_login", "address_changed")


@dataclass(frozen=True)
class FraudHistoryConfig:
    """How much history, ending on `end` (inclusive), and how many actors of each kind."""

    customers: int = 3000
    days: int = 90
    end: dt.date = dt.date(2026, 11, 1)
    seed: int = 11
    guests: int | None = None  # default: a quarter of the customers
    card_testers: int = 8
    bots: int = 8
    takeovers: int = 40
    mismatches: int = 60
    partitions: int = 8
    kinds: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        if self.customers < 1 or self.days < 7:
            raise LakehouseError("a fraud history needs at least 1 customer and 7 days")
        if min(self.card_testers, self.bots, self.takeovers, self.mismatches) < 0 or (self.guests or 0) < 0:
            raise LakehouseError("actor counts cannot be negative")
        object.__setattr__(self, "kinds", {
            "customer": self.customers, "guest": self.customers // 4 if self.guests is None else self.guests,
            "card_testing": self.card_testers, "bot_burst": self.bots, "account_takeover": self.takeovers,
            "country_mismatch": self.mismatches,
        })

    @property
    def start(self) -> dt.date:
        return self.end - dt.timedelta(days=self.days - 1)

    @property
    def first_second(self) -> int:
        return int(dt.datetime.combine(self.start, dt.time(), dt.UTC).timestamp())

    @property
    def last_second(self) -> int:
        return int(dt.datetime.combine(self.end, dt.time(23, 59, 59), dt.UTC).timestamp())


def _rng(config: FraudHistoryConfig, kind: str, no: int) -> random.Random:
    return random.Random(f"{config.seed}:{kind}:{no}")  # str seeds are hashed with SHA-512: stable across runs


@dataclass(frozen=True)
class Customer:
    """An honest customer's profile, the same wherever it is drawn (a takeover reads its victim's)."""

    customer_id: str
    country: str
    created: int  # epoch seconds
    devices: tuple[str, ...]
    cards: tuple[str, ...]
    address: str
    typical_eur: float
    orders_per_day: float


def customer(config: FraudHistoryConfig, no: int) -> Customer:
    rng = _rng(config, "profile", no)
    created = config.first_second - int(rng.uniform(-0.15, 2.0) * 365 * 86400)  # ~7 % open during the history
    return Customer(
        customer_id=f"CUST-F{no:06d}", country=rng.choice(COUNTRIES), created=created,
        devices=tuple(f"D-C{no}-{k}" for k in range(rng.choice((1, 1, 2)))),
        cards=tuple(f"CARD-C{no}-{k}" for k in range(rng.choice((1, 1, 1, 2)))),
        address=f"ADDR-C{no}-0", typical_eur=round(math.exp(rng.gauss(4.0, 0.6)), 2),
        orders_per_day=rng.uniform(0.02, 0.12),
    )


class _Actor:
    """Collects one actor's rows; ids are unique per actor kind and number."""

    def __init__(self, config: FraudHistoryConfig, kind: str, no: int) -> None:
        self.config, self.kind, self.no = config, kind, no
        self.rng = _rng(config, kind, no)
        self.pattern = kind if kind in PATTERNS else HONEST
        self.attempts: list[dict] = []
        self.clicks: list[dict] = []
        self.accounts: list[dict] = []
        self._n = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self.kind[:2].upper()}{self.no}-{self._n}"

    def account(self, customer_id: str, event_type: str, at: int, device: str, address: str, country: str) -> None:
        self.accounts.append({"event_id": self._id("ACC"), "customer_id": customer_id, "event_type": event_type,
                              "event_time": at, "device_id": device, "address_id": address, "country": country})

    def session(self, customer_id: str | None, device: str, start: int, end: int, views: int,
                carts: int = 0) -> str:
        """A storefront session of `views` page/product views and `carts` add-to-carts between start and end."""
        session_id = self._id("S")
        kinds = (["page_view"] + ["product_view"] * (views - 1) if views else []) + ["add_to_cart"] * carts
        times = [start, *sorted(self.rng.randint(start, max(start, end)) for _ in kinds[1:])] if kinds else []
        for kind, at in zip(kinds, times, strict=True):
            self.clicks.append({"event_id": self._id("E"), "session_id": session_id, "customer_id": customer_id,
                                "event_type": kind, "event_time": at, "device_id": device})
        return session_id

    def attempt(self, *, order_id: str, session_id: str, customer_id: str | None, at: int, amount_eur: float,
                card: str, device: str, ip: str, billing: str, shipping: str, address: str,
                declined: bool) -> None:
        currency = COUNTRY_CURRENCY[billing]
        amount = round(amount_eur / EUR_PER_UNIT[currency], 0 if currency == "JPY" else 2)
        self.attempts.append({
            "payment_id": self._id("PAY"), "order_id": order_id, "session_id": session_id, "customer_id": customer_id,
            "event_time": at, "amount": amount, "currency": currency,
            "amount_eur": round(amount * EUR_PER_UNIT[currency], 2), "card_fingerprint": card, "device_id": device,
            "ip_country": ip, "billing_country": billing, "shipping_country": shipping,
            "shipping_address_id": address, "response": "declined" if declined else "approved",
            "is_fraud": self.pattern != HONEST, "fraud_pattern": self.pattern,
        })

    def other_country(self, than: str) -> str:
        return self.rng.choice([c for c in COUNTRIES if c != than])

    def when(self, earliest: int | None = None) -> int:
        """A second of the history (after `earliest`), in the afternoon or evening more often than at night."""
        day = self.rng.randint(0, self.config.days - 1)
        hour = min(max(self.rng.gauss(17, 4), 0), 23.99)
        at = self.config.first_second + day * 86400 + int(hour * 3600)
        return max(at, earliest or at)


def _customer(actor: _Actor) -> None:
    c, rng, cfg = customer(actor.config, actor.no), actor.rng, actor.config
    actor.account(c.customer_id, "account_created", c.created, c.devices[0], c.address, c.country)
    address, addresses = c.address, 1
    orders = sorted(actor.when(c.created + 3600) for _ in range(_poisson(rng, c.orders_per_day * cfg.days)))
    for k, at in enumerate(orders):
        if at > cfg.last_second:
            continue
        device = c.devices[0] if rng.random() < 0.85 else c.devices[-1]
        if rng.random() < 0.03:  # a new phone
            device = f"D-C{actor.no}-n{k}"
            actor.account(c.customer_id, "new_device_login", at - rng.randint(60, 3600), device, address, c.country)
        ship_country, ship_address = c.country, address
        if rng.random() < 0.03:  # moved house
            address, addresses = f"ADDR-C{actor.no}-{addresses}", addresses + 1
            actor.account(c.customer_id, "address_changed", at - rng.randint(3600, 72 * 3600), device, address,
                          c.country)
            ship_address = address
        elif rng.random() < 0.04:  # a gift abroad
            ship_country, ship_address = actor.other_country(c.country), f"ADDR-C{actor.no}-g{k}"
        ip = c.country if rng.random() > 0.06 else actor.other_country(c.country)  # travelling
        amount = round(c.typical_eur * math.exp(rng.gauss(0, 0.5)), 2)
        session = actor.session(c.customer_id, device, at - rng.randint(90, 1500), at - 5, 2 + _poisson(rng, 6),
                                rng.randint(1, 3))
        order = f"ORD-C{actor.no}-{k}"
        card = c.cards[0]
        if rng.random() < 0.04:  # insufficient funds, then another card (or the same) a few minutes later
            actor.attempt(order_id=order, session_id=session, customer_id=c.customer_id, at=at, amount_eur=amount,
                          card=card, device=device, ip=ip, billing=c.country, shipping=ship_country,
                          address=ship_address, declined=True)
            at, card = at + rng.randint(30, 300), c.cards[-1]
        actor.attempt(order_id=order, session_id=session, customer_id=c.customer_id, at=at, amount_eur=amount,
                      card=card, device=device, ip=ip, billing=c.country, shipping=ship_country,
                      address=ship_address, declined=False)
    for _ in range(_poisson(rng, 0.05 * cfg.days)):  # browsing without buying
        at = actor.when(c.created + 3600)
        actor.session(c.customer_id, c.devices[0], at, at + rng.randint(30, 900), 1 + _poisson(rng, 4))


def _guest(actor: _Actor) -> None:
    rng = actor.rng
    country, at = rng.choice(COUNTRIES), actor.when()
    device = f"D-G{actor.no}"
    ip = country if rng.random() > 0.06 else actor.other_country(country)
    session = actor.session(None, device, at - rng.randint(90, 1500), at - 5, 2 + _poisson(rng, 5), 1)
    actor.attempt(order_id=f"ORD-G{actor.no}", session_id=session, customer_id=None, at=at,
                  amount_eur=round(math.exp(rng.gauss(4.0, 0.7)), 2), card=f"CARD-G{actor.no}", device=device, ip=ip,
                  billing=country, shipping=country, address=f"ADDR-G{actor.no}", declined=rng.random() < 0.04)


def _card_testing(actor: _Actor) -> None:
    rng = actor.rng
    device, country, at = f"D-T{actor.no}", rng.choice(COUNTRIES), actor.when()
    gap = (3, 30) if rng.random() < 0.6 else (90, 600)  # slow testers stay under velocity rules
    for i in range(rng.randint(15, 60)):
        at += rng.randint(*gap)
        session = actor.session(None, device, at - rng.randint(2, 20), at - 1, rng.randint(0, 1))
        actor.attempt(order_id=f"ORD-T{actor.no}-{i}", session_id=session, customer_id=None, at=at,
                      amount_eur=round(rng.uniform(0.5, 3.0), 2), card=f"CARD-T{actor.no}-{i}", device=device,
                      ip=country, billing=rng.choice(COUNTRIES), shipping=country, address=f"ADDR-T{actor.no}",
                      declined=rng.random() < 0.75)


def _bot_burst(actor: _Actor) -> None:
    rng = actor.rng
    device, country, at = f"D-B{actor.no}", rng.choice(COUNTRIES), actor.when()
    for i in range(rng.randint(8, 25)):
        at += rng.randint(30, 300)
        customer_id = f"CUST-B{actor.no}-{i:03d}"
        address = f"ADDR-B{actor.no}-{i % 3}"
        actor.account(customer_id, "account_created", at - rng.randint(20, 120), device, address, country)
        session = actor.session(customer_id, device, at - rng.randint(5, 40), at - 1, rng.randint(1, 2), 1)
        actor.attempt(order_id=f"ORD-B{actor.no}-{i}", session_id=session, customer_id=customer_id, at=at,
                      amount_eur=round(rng.uniform(120, 350), 2), card=f"CARD-B{actor.no}-{i}", device=device,
                      ip=country, billing=country, shipping=country, address=address, declined=rng.random() < 0.15)


def _account_takeover(actor: _Actor) -> None:
    rng, cfg = actor.rng, actor.config
    victim = customer(cfg, rng.randrange(cfg.customers))
    device = f"D-A{actor.no}"
    login = max(actor.when(), victim.created + 86400)
    country = victim.country if rng.random() < 0.5 else actor.other_country(victim.country)
    address = f"ADDR-A{actor.no}"
    actor.account(victim.customer_id, "new_device_login", login, device, victim.address, victim.country)
    actor.account(victim.customer_id, "address_changed", login + rng.randint(60, 1800), device, address, country)
    at = login + rng.randint(600, 6 * 3600)
    session = actor.session(victim.customer_id, device, at - rng.randint(30, 300), at - 3, rng.randint(2, 5), 1)
    card = victim.cards[0] if rng.random() < 0.7 else f"CARD-A{actor.no}"
    actor.attempt(order_id=f"ORD-A{actor.no}", session_id=session, customer_id=victim.customer_id, at=at,
                  amount_eur=round(victim.typical_eur * rng.uniform(3, 10), 2), card=card, device=device,
                  ip=rng.choice(COUNTRIES), billing=victim.country, shipping=country, address=address,
                  declined=rng.random() < 0.1)


def _country_mismatch(actor: _Actor) -> None:
    rng = actor.rng
    customer_id, device = f"CUST-M{actor.no:04d}", f"D-M{actor.no}"
    billing = rng.choice(COUNTRIES)
    shipping = actor.other_country(billing)
    ip = shipping if rng.random() < 0.7 else actor.other_country(billing)
    address, at = f"ADDR-M{actor.no}", actor.when()
    actor.account(customer_id, "account_created", at - rng.randint(3600, 20 * 86400), device, address, shipping)
    for i in range(rng.randint(1, 3)):
        at += rng.randint(600, 3 * 86400)
        session = actor.session(customer_id, device, at - rng.randint(90, 1200), at - 5, 3 + _poisson(rng, 4), 1)
        actor.attempt(order_id=f"ORD-M{actor.no}-{i}", session_id=session, customer_id=customer_id, at=at,
                      amount_eur=round(rng.uniform(80, 600), 2), card=f"CARD-M{actor.no}-{i}", device=device,
                      ip=ip, billing=billing, shipping=shipping, address=address, declined=rng.random() < 0.1)


ACTORS = {"customer": _customer, "guest": _guest, "card_testing": _card_testing, "bot_burst": _bot_burst,
          "account_takeover": _account_takeover, "country_mismatch": _country_mismatch}


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method (means here are small)."""
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def actor_rows(config: FraudHistoryConfig, kind: str, no: int) -> _Actor:
    """Every row one actor produces (deterministic per seed, kind and number)."""
    actor = _Actor(config, kind, no)
    ACTORS[kind](actor)
    return actor


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    frame["event_time"] = pd.to_datetime(frame["event_time"], unit="s")
    return frame


def _builder(part: str, schema: str):  # noqa: ANN202
    columns = [c.strip().split(" ")[0] for c in schema.split(",")]

    def build(spark, config: FraudHistoryConfig):  # noqa: ANN001, ANN202 - pyspark types stay optional here
        actors = [(kind, no) for kind, count in config.kinds.items() for no in range(count)]

        def rows(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                out: list[dict] = []
                for kind, no in zip(batch["kind"], batch["no"], strict=True):
                    out.extend(getattr(actor_rows(config, kind, int(no)), part))
                yield _frame(out, columns)

        return (spark.createDataFrame(actors, "kind string, no int").repartition(config.partitions)
                .mapInPandas(rows, schema))

    return build


TABLES = {  # what a fraud model reads, and where the generated history is written
    "attempts": "silver.fraud_payment_attempts",
    "clicks": "silver.fraud_clickstream",
    "accounts": "silver.fraud_account_events",
}
BUILDERS = {"attempts": _builder("attempts", ATTEMPTS_SCHEMA), "clicks": _builder("clicks", CLICKS_SCHEMA),
            "accounts": _builder("accounts", ACCOUNTS_SCHEMA)}
