"""Fraud features on a hand-made timeline: customer C1 (account opened 10 days before T0) pays twice from device D1,
then, a day later, changes address and logs in from device D2 and pays 8x their average, shipped abroad; then three
guest attempts from D2 test cards K2, K3 and K2 again. Every figure below is worked out from that by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from transformations.gold.fraud_features import CONTEXT, FEATURES, payment_features

T0 = dt.datetime(2026, 11, 1, 12, 0, 0)
DAY, MIN = dt.timedelta(days=1), dt.timedelta(minutes=1)
T3 = T0 + DAY + 30 * MIN
ATTEMPTS = ("payment_id string, order_id string, session_id string, customer_id string, event_time timestamp, "
            "amount double, currency string, amount_eur double, card_fingerprint string, device_id string, "
            "ip_country string, billing_country string, shipping_country string, shipping_address_id string, "
            "response string")


def _attempt(pid: str, customer: str | None, at: dt.datetime, eur: float, card: str, device: str,
             session: str | None = None, response: str = "approved", ship: str = "DE", ip: str = "DE",
             address: str = "A1") -> tuple:
    return (pid, f"O-{pid}", session, customer, at, eur, "EUR", eur, card, device, ip, "DE", ship, address, response)


@pytest.fixture(scope="module")
def features(spark) -> dict[str, dict]:
    attempts = spark.createDataFrame([
        _attempt("p1", "C1", T0, 100.0, "K1", "D1", "S1"),
        _attempt("p2", "C1", T0 + DAY, 50.0, "K1", "D1", "S2"),
        _attempt("p3", "C1", T3, 600.0, "K1", "D2", "S3", ship="FR", ip="US", address="A2"),
        _attempt("p4", None, T3 + MIN, 2.0, "K2", "D2", response="declined"),
        _attempt("p5", None, T3 + 2 * MIN, 2.0, "K3", "D2", response="declined"),
        _attempt("p6", None, T3 + 3 * MIN, 2.0, "K2", "D2"),
    ], ATTEMPTS)
    clicks = spark.createDataFrame([
        ("e1", "S1", "C1", "D1", "page_view", T0 - 5 * MIN), ("e2", "S1", "C1", "D1", "product_view", T0 - 3 * MIN),
        ("e3", "S1", "C1", "D1", "add_to_cart", T0 - 2 * MIN), ("e4", "S3", "C1", "D2", "page_view", T3 - MIN),
        ("e5", "S3", "C1", "D2", "product_view", T3 - MIN / 2),
        ("e6", "S3", "C1", "D2", "product_view", T3 + MIN),  # after paying: not a feature of the attempt
    ], "event_id string, session_id string, customer_id string, device_id string, event_type string, "
       "event_time timestamp")
    accounts = spark.createDataFrame([
        ("a1", "C1", "account_created", T0 - 10 * DAY, "D1", "A1", "DE"),
        ("a2", "C1", "new_device_login", T0 + DAY + 5 * MIN, "D2", "A1", "DE"),
        ("a3", "C1", "address_changed", T0 + DAY + 10 * MIN, "D2", "A2", "FR"),
        ("a4", "C2", "address_changed", T3 - MIN, "D9", "A9", "FR"),  # another customer's
    ], "event_id string, customer_id string, event_type string, event_time timestamp, device_id string, "
       "address_id string, country string")
    frame = payment_features(attempts, clicks, accounts)
    assert frame.columns == [*CONTEXT, *FEATURES]  # no labels in these attempts
    return {r.payment_id: r.asDict() for r in frame.collect()}


NULL = None
EXPECTED = {  # feature: p1 .. p6
    "amount_eur": [100, 50, 600, 2, 2, 2],
    "amount_vs_customer_avg": [NULL, 0.5, 8.0, NULL, NULL, NULL],
    "customer_prior_payments": [0, 1, 2, 0, 0, 0],
    "customer_tenure_days": [10, 11, 11 + 30 / 1440, NULL, NULL, NULL],
    "card_attempts_10m": [1, 1, 1, 1, 1, 2],
    "card_declines_1h": [0, 0, 0, 0, 0, 1],
    "device_attempts_10m": [1, 1, 1, 2, 3, 4],
    "device_cards_1h": [1, 1, 1, 2, 3, 3],
    "device_accounts_24h": [1, 1, 1, 1, 1, 1],
    "session_views": [2, 0, 2, 0, 0, 0],
    "session_seconds": [300, 0, 60, 0, 0, 0],
    "new_device": [0, 0, 1, 0, 0, 0],
    "new_shipping_address": [0, 0, 1, 0, 0, 0],
    "hours_since_address_change": [NULL, NULL, 20 / 60, NULL, NULL, NULL],
    "hours_since_new_device_login": [NULL, NULL, 25 / 60, NULL, NULL, NULL],
    "billing_shipping_mismatch": [0, 0, 1, 0, 0, 0],
    "ip_billing_mismatch": [0, 0, 1, 0, 0, 0],
    "guest": [0, 0, 0, 1, 1, 1],
}


@pytest.mark.parametrize("feature", FEATURES)
def test_each_feature_worked_by_hand(features, feature) -> None:
    got = [features[f"p{i}"][feature] for i in range(1, 7)]
    expected = [None if v is None else pytest.approx(float(v)) for v in EXPECTED[feature]]
    assert got == expected


def test_every_feature_is_checked_and_the_context_is_kept(features) -> None:
    assert set(EXPECTED) == set(FEATURES)
    assert [(features[p]["response"], features[p]["customer_id"]) for p in ("p1", "p4")] == [
        ("approved", "C1"), ("declined", None)]


def test_labels_are_passed_through_when_present(spark) -> None:
    attempts = spark.createDataFrame([(*_attempt("p1", "C1", T0, 10.0, "K1", "D1"), True, "card_testing")],
                                     f"{ATTEMPTS}, is_fraud boolean, fraud_pattern string")
    clicks = spark.createDataFrame([], "session_id string, event_type string, event_time timestamp")
    accounts = spark.createDataFrame([], "customer_id string, event_type string, event_time timestamp")
    row = payment_features(attempts, clicks, accounts).first()
    assert (row.is_fraud, row.fraud_pattern, row.customer_tenure_days, row.session_views) == (
        True, "card_testing", None, 0.0)
