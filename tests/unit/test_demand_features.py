"""Pure pandas tests of the demand model's features and pipeline (no Spark, no MLflow)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from lakehouse.errors import LakehouseError
from lakehouse.ml.demand import EPOCH, FEATURE_COLUMNS, build_features, build_pipeline


def _sales() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_date": [
                dt.date(2024, 1, 2),
                dt.date(2024, 1, 1),
                dt.date(2024, 1, 1),
                dt.date(2024, 1, 1),
            ],
            "channel": ["web", "web", "web", "store"],
            "currency": ["USD", "USD", "EUR", "USD"],
            "orders": [1, 2, 3, 4],
            "units": [7, 10, 5, 3],
            "revenue": [Decimal("1.00"), Decimal("2.00"), Decimal("3.00"), Decimal("4.00")],
        }
    )


def test_aggregates_across_currencies_and_sorts() -> None:
    out = build_features(_sales())
    assert list(out.columns) == ["order_date", "channel", "day_of_week", "day_index", "units"]
    assert out.to_dict("records") == [
        {
            "order_date": dt.date(2024, 1, 1),
            "channel": "store",
            "day_of_week": 0,
            "day_index": 1461,
            "units": 3,
        },
        {
            "order_date": dt.date(2024, 1, 1),
            "channel": "web",
            "day_of_week": 0,
            "day_index": 1461,
            "units": 15,
        },
        {
            "order_date": dt.date(2024, 1, 2),
            "channel": "web",
            "day_of_week": 1,
            "day_index": 1462,
            "units": 7,
        },
    ]
    assert str(out["day_of_week"].dtype) == "int64"
    assert str(out["day_index"].dtype) == "int64"
    assert str(out["units"].dtype) == "int64"


def test_day_features_match_calendar() -> None:
    dates = [EPOCH, dt.date(2024, 2, 29), dt.date(2024, 3, 3)]  # Wed, Thu, Sun
    pdf = pd.DataFrame({"order_date": dates, "channel": ["web"] * 3, "units": [1, 2, 3]})
    out = build_features(pdf)
    assert out["day_of_week"].tolist() == [2, 3, 6]
    assert out["day_index"].tolist() == [
        0,
        (dt.date(2024, 2, 29) - EPOCH).days,
        (dt.date(2024, 3, 3) - EPOCH).days,
    ]


def test_accepts_timestamps_and_does_not_modify_input() -> None:
    pdf = pd.DataFrame(
        {
            "order_date": pd.to_datetime(["2024-01-01", "2024-01-01"]),
            "channel": ["ebay", "ebay"],
            "units": [2, 4],
        }
    )
    before = pdf.copy()
    out = build_features(pdf)
    assert out.to_dict("records") == [
        {
            "order_date": dt.date(2024, 1, 1),
            "channel": "ebay",
            "day_of_week": 0,
            "day_index": 1461,
            "units": 6,
        }
    ]
    pd.testing.assert_frame_equal(pdf, before)


def test_empty_and_missing_columns() -> None:
    empty = build_features(pd.DataFrame({"order_date": [], "channel": [], "units": []}))
    assert empty.empty and list(empty.columns) == [
        "order_date",
        "channel",
        "day_of_week",
        "day_index",
        "units",
    ]
    with pytest.raises(LakehouseError, match="units"):
        build_features(pd.DataFrame({"order_date": [], "channel": []}))


def test_pipeline_is_deterministic_and_learns_channel_level() -> None:
    rows = [
        {"order_date": dt.date(2024, 1, 1) + dt.timedelta(days=i), "channel": ch, "units": base + i}
        for i in range(4)
        for ch, base in (("web", 100), ("store", 10))
    ]
    feats = build_features(pd.DataFrame(rows))
    X, y = feats[FEATURE_COLUMNS], feats["units"].astype(float)
    first = build_pipeline().fit(X, y)
    second = build_pipeline().fit(X, y)
    future = pd.DataFrame(
        {"channel": ["web", "store", "amazon"], "day_of_week": [4, 4, 4], "day_index": [1465] * 3}
    )
    p1, p2 = first.predict(future), second.predict(future)
    np.testing.assert_array_equal(p1, p2)
    assert p1[0] > p1[1] + 50  # web sells far more than store
    assert np.isfinite(p1[2])  # unseen channel is ignored, not an error
