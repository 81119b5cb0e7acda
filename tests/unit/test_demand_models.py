"""Demand metrics, the two models' outputs, fold selection and the rolling-origin backtest's data boundaries
(pandas and scikit-learn only)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from lakehouse.errors import LakehouseError
from lakehouse.ml import demand_models as m
from transformations.gold.demand_features import BASELINE, FEATURES

D0 = dt.date(2024, 1, 1)


def test_wape_bias_and_mase_on_numbers_worked_by_hand() -> None:
    y, f = np.array([10.0, 0.0, 5.0, 5.0]), np.array([8.0, 1.0, 5.0, 9.0])
    assert m.wape(y, f) == pytest.approx((2 + 1 + 0 + 4) / 20)
    assert m.bias(y, f) == pytest.approx((-2 + 1 + 0 + 4) / 20)
    assert m.mase(y, f, scale=2.0) == pytest.approx(7 / 4 / 2)
    assert np.isnan(m.wape(np.zeros(3), np.ones(3))) and np.isnan(m.mase(y, f, 0.0))


def _examples(n_series: int = 3, days: int = 84, horizon: int = 14, seed: int = 0) -> pd.DataFrame:
    """Examples for origins every 7 days: units = 10 + 5 * weekend + noise; baseline = the same weekday's units."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_series):
        for o in range(35, days - 1, 7):
            for hz in range(1, horizon + 1):
                t = D0 + dt.timedelta(days=o + hz)
                weekend = t.weekday() >= 5
                rows.append({
                    "sku": f"SKU-{s}", "channel": ["web", "store"][s % 2], "category": "toys", "region": "EU",
                    "warehouse_id": "WH-EU-1", "origin_date": D0 + dt.timedelta(days=o), "target_date": t,
                    "horizon": hz, "day_of_week": t.weekday(), "units": float(10 + 5 * weekend + rng.integers(0, 3)),
                    BASELINE: float(10 + 5 * weekend + rng.integers(0, 3)), "in_stock": True,
                })
    frame = pd.DataFrame(rows)
    for c in FEATURES:
        if c not in frame:
            frame[c] = 0.0
    return frame


def test_seasonal_naive_repeats_the_baseline_in_every_column() -> None:
    frame = _examples().head(4).assign(**{BASELINE: [3.0, np.nan, -1.0, 7.0]})
    pred = m.SeasonalNaive().fit(m.model_input(frame)).predict(m.model_input(frame))
    assert pred.tolist() == [[3.0] * 4, [0.0] * 4, [0.0] * 4, [7.0] * 4]


def test_gradient_boosting_gives_ordered_non_negative_quantiles_and_tolerates_new_categories() -> None:
    train = _examples()
    model = m.GradientBoostedDemand(max_iter=30, quantile_max_iter=30).fit(m.model_input(train), train["units"])
    test = train.head(50).assign(channel="tiktok")  # never seen in training
    pred = model.predict(m.model_input(test))
    assert pred.shape == (50, 4)
    assert (pred >= 0).all() and (np.diff(pred[:, 1:], axis=1) >= 0).all()
    weekend = model.predict(m.model_input(train[train["day_of_week"] >= 5].head(20)))[:, 0]
    weekday = model.predict(m.model_input(train[train["day_of_week"] < 5].head(20)))[:, 0]
    assert weekend.mean() > weekday.mean() + 3  # learnt the weekend's +5


def test_fold_origins_are_spaced_and_fully_observed() -> None:
    frame = _examples(days=120)
    frame = frame[frame["target_date"] <= D0 + dt.timedelta(days=120)]
    # origins 35, 42, ..., 112; targets observed up to day 120: the last origin with 14 of them is day 105
    last_target = frame["target_date"].max()
    origins = m.fold_origins(frame, folds=3, step_days=14, horizon=14)
    assert origins == [D0 + dt.timedelta(days=d) for d in (77, 91, 105)]
    assert all(o + dt.timedelta(days=14) <= last_target for o in origins)
    with pytest.raises(LakehouseError, match="history is too short"):
        m.fold_origins(frame[(frame["origin_date"] == D0 + dt.timedelta(days=105)) & (frame["horizon"] < 14)], folds=2, step_days=14,
                       horizon=14)


class _Spy(m.SeasonalNaive):
    """Remembers how many rows each fit saw."""

    seen: list[int] = []

    def fit(self, X: pd.DataFrame, y: object = None) -> _Spy:
        _Spy.seen.append(len(X))
        return super().fit(X, y)


def test_backtest_trains_only_on_targets_up_to_each_origin_and_pools_the_folds() -> None:
    frame = _examples(days=120)
    frame.loc[frame.index[:5], "in_stock"] = False  # censored: neither trained on nor scored
    _Spy.seen = []
    result = m.rolling_origin_backtest(frame, {"spy": _Spy, "naive": m.SeasonalNaive}, folds=2, step_days=14)
    usable = frame[frame["in_stock"]]
    expected = [int((usable["target_date"] <= o).sum()) for o in result.origins]
    assert _Spy.seen == expected
    tested = usable[usable["origin_date"].isin(result.origins)]
    assert len(result.scored) == 2 * len(tested)
    overall = result.metrics[result.metrics["segment"] == "all"].set_index("model")
    y, f = tested["units"].to_numpy(), tested[BASELINE].to_numpy()
    assert overall.loc["naive", "wape"] == pytest.approx(np.abs(y - f).sum() / y.sum())
    assert overall.loc["spy", "wape"] == overall.loc["naive", "wape"]
    assert set(result.metrics["segment"]) == {"all", "store", "web"}
    assert overall.loc["naive", "rows"] == len(tested)


def test_unknown_model_and_bad_parameters_are_clear_errors() -> None:
    with pytest.raises(LakehouseError, match="unknown demand model 'prophet'; models are: seasonal_naive, "
                                             "gradient_boosting"):
        m.make_model("prophet")
    with pytest.raises(LakehouseError, match="bad parameters for gradient_boosting: .*'depth'"):
        m.make_model("gradient_boosting", {"depth": 3})
