"""The labelled fraud history: each pattern has the shape its label claims (what a model must learn), honest
customers look honest, ids are unique, and every actor's rows are the same on every draw."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from lakehouse.errors import LakehouseError
from lakehouse.ml.fraud_history import (
    COUNTRY_CURRENCY,
    EUR_PER_UNIT,
    PATTERNS,
    FraudHistoryConfig,
    actor_rows,
    customer,
)

CONFIG = FraudHistoryConfig(customers=200, days=30, end=dt.date(2026, 11, 1), seed=5, card_testers=3, bots=3,
                            takeovers=10, mismatches=10)


def rows_of(kind: str) -> list:
    return [actor_rows(CONFIG, kind, no) for no in range(CONFIG.kinds[kind])]


def test_actor_counts_default_guests_to_a_quarter_of_customers_and_bad_configs_fail() -> None:
    assert CONFIG.kinds == {"customer": 200, "guest": 50, "card_testing": 3, "bot_burst": 3,
                            "account_takeover": 10, "country_mismatch": 10}
    with pytest.raises(LakehouseError, match="at least 1 customer and 7 days"):
        FraudHistoryConfig(days=3)
    with pytest.raises(LakehouseError, match="cannot be negative"):
        FraudHistoryConfig(bots=-1)


def test_every_actor_is_drawn_the_same_every_time_and_ids_are_unique() -> None:
    assert actor_rows(CONFIG, "account_takeover", 4).attempts == actor_rows(CONFIG, "account_takeover", 4).attempts
    assert actor_rows(CONFIG, "customer", 7).clicks == actor_rows(CONFIG, "customer", 7).clicks
    ids = Counter()
    for kind in CONFIG.kinds:
        for actor in rows_of(kind):
            ids.update(r["payment_id"] for r in actor.attempts)
            ids.update(r["event_id"] for r in actor.clicks + actor.accounts)
    assert ids.most_common(1)[0][1] == 1


def test_labels_name_the_pattern_and_honest_actors_are_never_fraud() -> None:
    for kind in CONFIG.kinds:
        labels = {(r["is_fraud"], r["fraud_pattern"]) for a in rows_of(kind) for r in a.attempts}
        assert labels == ({(True, kind)} if kind in PATTERNS else {(False, "none")})


def test_amounts_are_in_the_billing_countrys_currency_and_converted_to_eur() -> None:
    for r in (r for a in rows_of("customer")[:50] for r in a.attempts):
        assert r["currency"] == COUNTRY_CURRENCY[r["billing_country"]]
        assert r["amount_eur"] == round(r["amount"] * EUR_PER_UNIT[r["currency"]], 2)


def test_card_testing_is_many_tiny_mostly_declined_guest_attempts_on_new_cards_from_one_device() -> None:
    for actor in rows_of("card_testing"):
        a = actor.attempts
        assert 15 <= len(a) <= 60 and len({r["device_id"] for r in a}) == 1
        assert len({r["card_fingerprint"] for r in a}) == len(a)
        assert all(r["customer_id"] is None and r["amount_eur"] <= 3.0 for r in a)
        assert sum(r["response"] == "declined" for r in a) > len(a) / 3


def test_a_bot_burst_opens_an_account_per_order_from_one_device_within_minutes() -> None:
    for actor in rows_of("bot_burst"):
        a, opened = actor.attempts, {r["customer_id"]: r["event_time"] for r in actor.accounts}
        assert len({r["device_id"] for r in a}) == 1 and len({r["customer_id"] for r in a}) == len(a) >= 8
        assert all(0 < r["event_time"] - opened[r["customer_id"]] <= 120 for r in a)
        assert len({r["shipping_address_id"] for r in a}) <= 3
        sessions = {c["session_id"] for c in actor.clicks if c["event_type"] != "add_to_cart"}
        assert len([c for c in actor.clicks if c["event_type"] != "add_to_cart"]) <= 2 * len(sessions)


def test_a_takeover_logs_in_changes_the_address_then_spends_several_times_the_victims_usual() -> None:
    for no, actor in enumerate(rows_of("account_takeover")):
        (attempt,) = actor.attempts
        events = {r["event_type"]: r for r in actor.accounts}
        assert set(events) == {"new_device_login", "address_changed"}
        assert events["new_device_login"]["event_time"] < events["address_changed"]["event_time"] < \
            attempt["event_time"]
        victim_no = int(attempt["customer_id"].removeprefix("CUST-F"))
        victim = customer(CONFIG, victim_no)
        assert attempt["device_id"] not in victim.devices and attempt["shipping_address_id"] == f"ADDR-A{no}"
        assert attempt["billing_country"] == victim.country
        assert attempt["amount_eur"] >= 3 * victim.typical_eur - 0.02


def test_country_mismatch_bills_in_one_country_and_ships_to_another() -> None:
    for actor in rows_of("country_mismatch"):
        assert all(r["billing_country"] != r["shipping_country"] for r in actor.attempts)


def test_honest_customers_pay_from_their_own_devices_and_cards_mostly_at_home() -> None:
    attempts = [(no, r) for no, a in enumerate(rows_of("customer")) for r in a.attempts]
    assert len(attempts) > 200
    for no, r in attempts:
        profile = customer(CONFIG, no)
        assert r["customer_id"] == profile.customer_id and r["card_fingerprint"] in profile.cards
    abroad = sum(r["shipping_country"] != r["billing_country"] for _, r in attempts) / len(attempts)
    assert abroad < 0.1
    first, last = CONFIG.first_second, CONFIG.last_second
    assert all(first <= r["event_time"] <= last + 300 for _, r in attempts)
