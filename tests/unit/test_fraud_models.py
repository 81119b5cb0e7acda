"""The rules baseline's verdicts, the learned model, and the figures fraud models are judged by, on numbers
worked out by hand (pandas and scikit-learn only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakehouse.errors import LakehouseError
from lakehouse.ml import fraud_models as m
from transformations.gold.fraud_features import FEATURES

QUIET = {f: 0.0 for f in FEATURES} | {"customer_prior_payments": 5.0, "amount_vs_customer_avg": 1.0,
                                       "amount_eur": 50.0, "card_attempts_10m": 1.0, "device_attempts_10m": 1.0}


def frame(*changes: dict) -> pd.DataFrame:
    return pd.DataFrame([QUIET | c for c in changes])


def test_rules_weigh_velocity_amount_country_and_account_changes() -> None:
    rows = frame(
        {},                                                                      # nothing
        {"card_attempts_10m": 3.0},                                              # velocity (card)
        {"device_attempts_10m": 5.0},                                            # velocity (device)
        {"amount_vs_customer_avg": 4.0},                                         # amount, a customer
        {"customer_prior_payments": 0.0, "amount_vs_customer_avg": np.nan, "amount_eur": 400.0},  # first purchase
        {"ip_billing_mismatch": 1.0},                                            # country
        {"new_device": 1.0, "hours_since_address_change": 2.0},                  # account
        {"new_device": 1.0, "hours_since_address_change": 30.0},                 # address changed too long ago
        {"card_attempts_10m": 9.0, "amount_vs_customer_avg": 9.0, "billing_shipping_mismatch": 1.0,
         "new_device": 1.0, "hours_since_address_change": 0.5},                 # everything
    )
    assert m.RulesBaseline().fit(rows).predict(rows).tolist() == pytest.approx(
        [0.0, 0.3, 0.3, 0.3, 0.3, 0.2, 0.2, 0.0, 1.0])
    assert m.RulesBaseline(card_attempts=10).predict(rows)[1] == 0.0


SCORES = np.array([0.1] * 98 + [0.9, 0.5] + [0.95, 0.8, 0.6, 0.2])
LABELS = np.array([False] * 100 + [True] * 4)
PATTERN = np.array(["none"] * 100 + ["a", "a", "b", "b"])


def test_recall_at_one_percent_false_positives() -> None:
    # flagging >= 0.6 stops 3 of 4 frauds and challenges 1 honest attempt in 100 (0.9); >= 0.5 would be 2 in 100
    assert m.recall_at_fpr(LABELS, SCORES, 0.01) == (0.75, 0.01, 0.6)
    assert m.recall_at_fpr(LABELS, SCORES, 0.0) == (0.25, 0.0, 0.95)


def test_evaluation_table_per_pattern() -> None:
    test = pd.DataFrame({"is_fraud": LABELS, "fraud_pattern": PATTERN})
    table = m.evaluation_table(test, {"model": SCORES}).set_index("segment")
    # ranked: F .95, H .9, F .8, F .6, H .5, F .2 -> precision at each fraud 1, 2/3, 3/4, 4/6
    assert table.loc["all", "pr_auc"] == pytest.approx((1 + 2 / 3 + 3 / 4 + 4 / 6) / 4)
    assert table.loc["a", "pr_auc"] == pytest.approx((1 + 2 / 3) / 2)
    assert table["recall"].to_dict() == {"all": 0.75, "a": 1.0, "b": 0.5}
    assert table["precision"].to_dict() == pytest.approx({"all": 0.75, "a": 2 / 3, "b": 0.5})
    assert table["fraud"].to_dict() == {"all": 4, "a": 2, "b": 2}
    assert table["rows"].to_dict() == {"all": 104, "a": 102, "b": 102}
    assert set(table["threshold"]) == {0.6} and set(table["fpr"]) == {0.01}


def test_time_split_keeps_the_later_share_for_testing_and_needs_both_classes_on_each_side() -> None:
    times = pd.date_range("2026-01-01", periods=10, freq="D")
    data = pd.DataFrame({"event_time": times, "is_fraud": [True, False] * 5})
    train, test = m.time_split(data, 0.3)
    assert (len(train), len(test), str(test["event_time"].min().date())) == (7, 3, "2026-01-08")
    with pytest.raises(LakehouseError, match=r"the test period needs both fraudulent and honest attempts \(3 "
                                             r"attempts, 0 fraudulent\)"):
        m.time_split(data.assign(is_fraud=[True, False] * 3 + [True] + [False] * 3), 0.3)
    with pytest.raises(LakehouseError, match="test_fraction must be between 0 and 1"):
        m.time_split(data, 1.0)


def test_the_learned_model_finds_an_interaction_the_rules_miss() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    data = pd.DataFrame({f: rng.random(n) for f in FEATURES})
    data["device_cards_1h"] = rng.integers(1, 6, n).astype(float)
    data["session_seconds"] = rng.exponential(300, n)
    fraud = (data["device_cards_1h"] >= 3) & (data["session_seconds"] < 30)  # many cards, no browsing
    model = m.GradientBoostedFraud(max_iter=50).fit(data[:3000], fraud[:3000])
    scores = model.predict(data[3000:])
    test = pd.DataFrame({"is_fraud": fraud[3000:].to_numpy(), "fraud_pattern": "x"})
    table = m.evaluation_table(test, {"gbm": scores, "rules": m.RulesBaseline().predict(data[3000:])})
    pr_auc = table[table["segment"] == "all"].set_index("model")["pr_auc"]
    assert pr_auc["gbm"] > 0.95 > 0.5 > pr_auc["rules"]
    assert ((scores >= 0) & (scores <= 1)).all()


def test_a_model_needs_both_classes_and_a_known_kind() -> None:
    with pytest.raises(LakehouseError, match="needs both fraudulent and honest attempts"):
        m.GradientBoostedFraud().fit(frame({}, {}), [False, False])
    with pytest.raises(LakehouseError, match="unknown fraud model 'forest'; models are: rules, gradient_boosting"):
        m.make_model("forest")
    with pytest.raises(LakehouseError, match="bad parameters for rules"):
        m.make_model("rules", {"depth": 3})
