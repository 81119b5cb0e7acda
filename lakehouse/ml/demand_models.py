"""Demand models over forecast examples (`transformations.gold.demand_features`), their metrics and backtests.

Both models take the same input columns (`MODEL_INPUTS`) and predict four columns (`PREDICTIONS`): the point
forecast and the 10th, 50th and 90th percentiles, never negative, never crossing. They are scikit-learn
estimators, so MLflow logs them with skops.

* `SeasonalNaive` - the baseline: the target weekday's units in the last week known at the origin.
* `GradientBoostedDemand` - one global model over every series: a Poisson gradient-boosted tree ensemble for the
  point forecast and one quantile ensemble per percentile (safety stock reads p90).

Metrics (sums over the evaluated rows; out-of-stock targets are excluded, their zero sales are censored demand):
WAPE = sum|y - f| / sum y; bias = sum(f - y) / sum y; MASE = mean|y - f| / mean|y - y(7 days earlier)| over the
training rows of the segment (the in-sample seasonal naive error); coverage = share of y inside [p10, p90].
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor

from lakehouse.errors import LakehouseError
from lakehouse.ml.registry import make_estimator
from transformations.gold.demand_features import BASELINE, CATEGORICAL_FEATURES, FEATURES, TARGET

MODEL_INPUTS = [*FEATURES, BASELINE]
QUANTILES = (0.1, 0.5, 0.9)
PREDICTIONS = ["forecast", "p10", "p50", "p90"]
RANDOM_STATE = 42


def model_input(frame: pd.DataFrame) -> pd.DataFrame:
    """The MODEL_INPUTS columns: categoricals as strings, every other column float64 (a model's signature then
    accepts missing values anywhere, and Spark's doubles)."""
    out = frame[MODEL_INPUTS].copy()
    for c in MODEL_INPUTS:
        out[c] = out[c].astype("string").astype(object) if c in CATEGORICAL_FEATURES else pd.to_numeric(
            out[c], errors="coerce").astype("float64")
    return out


def _clean(points: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """(n,) point + (n, 3) quantiles -> (n, 4), clipped at 0, quantiles sorted per row."""
    quantiles = np.sort(np.clip(quantiles, 0, None), axis=1)
    return np.column_stack([np.clip(points, 0, None), quantiles])


class SeasonalNaive(BaseEstimator, RegressorMixin):
    """Forecast = the target weekday's units one (horizons 1-7) or two (8-14) weeks back; every percentile the same."""

    def fit(self, X: pd.DataFrame, y: object = None) -> SeasonalNaive:
        self.fitted_ = True
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        base = pd.to_numeric(X[BASELINE], errors="coerce").fillna(0).to_numpy(dtype="float64")
        return _clean(base, np.column_stack([base] * len(QUANTILES)))


class GradientBoostedDemand(BaseEstimator, RegressorMixin):
    """Global gradient-boosted trees: Poisson loss for the forecast, pinball loss per percentile."""

    def __init__(self, max_iter: int = 300, learning_rate: float = 0.05, max_leaf_nodes: int = 31,
                 min_samples_leaf: int = 20, quantile_max_iter: int = 150,
                 random_state: int = RANDOM_STATE) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.quantile_max_iter = quantile_max_iter
        self.random_state = random_state

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        """Categoricals as codes of the categories seen in training (unseen: missing), numbers as float."""
        cols = []
        for c in FEATURES:
            if c in CATEGORICAL_FEATURES:
                codes = {v: float(i) for i, v in enumerate(self.categories_[c])}
                cols.append(X[c].map(codes).to_numpy(dtype="float64", na_value=np.nan))
            else:
                cols.append(pd.to_numeric(X[c], errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
        return np.column_stack(cols)

    def _tree(self, **loss: Any) -> HistGradientBoostingRegressor:
        categorical = [c in CATEGORICAL_FEATURES for c in FEATURES]
        return HistGradientBoostingRegressor(
            learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, categorical_features=categorical,
            early_stopping=False, random_state=self.random_state, **loss)  # a fixed number of trees: the same
        # fit for the same rows

    def fit(self, X: pd.DataFrame, y: pd.Series) -> GradientBoostedDemand:
        self.categories_ = {c: sorted(X[c].dropna().astype(str).unique()) for c in CATEGORICAL_FEATURES}
        matrix, target = self._matrix(X), np.asarray(y, dtype="float64")
        self.point_ = self._tree(loss="poisson", max_iter=self.max_iter).fit(matrix, target)
        self.quantiles_ = [
            self._tree(loss="quantile", quantile=q, max_iter=self.quantile_max_iter).fit(matrix, target)
            for q in QUANTILES
        ]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        matrix = self._matrix(X)
        return _clean(self.point_.predict(matrix), np.column_stack([m.predict(matrix) for m in self.quantiles_]))


MODEL_KINDS: dict[str, Callable[..., BaseEstimator]] = {
    "seasonal_naive": SeasonalNaive,
    "gradient_boosting": GradientBoostedDemand,
}


def make_model(kind: str, params: dict[str, Any] | None = None) -> BaseEstimator:
    return make_estimator(MODEL_KINDS, kind, params, "demand")


# --- metrics ---------------------------------------------------------------------------------------------------


def wape(y: np.ndarray, f: np.ndarray) -> float:
    total = float(np.sum(y))
    return float(np.sum(np.abs(np.asarray(y) - np.asarray(f)))) / total if total > 0 else float("nan")


def bias(y: np.ndarray, f: np.ndarray) -> float:
    total = float(np.sum(y))
    return float(np.sum(np.asarray(f) - np.asarray(y))) / total if total > 0 else float("nan")


def mase(y: np.ndarray, f: np.ndarray, scale: float) -> float:
    if not scale > 0 or len(y) == 0:
        return float("nan")
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(f)))) / scale


def naive_scales(train: pd.DataFrame, segment: str) -> dict[str, float]:
    """Per segment value (and "all"): the in-sample mean |y - y(7 days earlier)| - the horizon-7 rows' baseline."""
    rows = train[(train["horizon"] == 7) & train[BASELINE].notna()]
    err = (rows[TARGET] - rows[BASELINE]).abs()
    scales = err.groupby(rows[segment]).mean().to_dict()
    scales["all"] = float(err.mean()) if len(err) else float("nan")
    return {str(k): float(v) for k, v in scales.items()}


def metrics_table(scored: pd.DataFrame, scales: dict[str, float], segment: str) -> pd.DataFrame:
    """Per model x segment (and "all"): wape, mase, bias, coverage_80, rows. `scored` holds model, TARGET,
    PREDICTIONS and `segment`; `scales` the MASE scale per segment value."""
    out = []
    for model, by_model in scored.groupby("model", sort=True):
        parts = [("all", by_model), *((str(k), v) for k, v in by_model.groupby(segment, sort=True))]
        for name, part in parts:
            y, f = part[TARGET].to_numpy(dtype="float64"), part["forecast"].to_numpy(dtype="float64")
            inside = (part[TARGET] >= part["p10"]) & (part[TARGET] <= part["p90"])
            out.append({"model": model, "segment": name, "wape": wape(y, f), "mase": mase(y, f, scales.get(name, 0)),
                        "bias": bias(y, f), "coverage_80": float(inside.mean()), "rows": len(part)})
    return pd.DataFrame(out)


# --- rolling-origin backtest -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backtest:
    """Where the folds are and what each model scored."""

    origins: list[dt.date]
    scored: pd.DataFrame  # model, fold origin, keys, TARGET, PREDICTIONS
    metrics: pd.DataFrame  # metrics_table(...)

    def wape(self, model: str) -> float:
        row = self.metrics[(self.metrics["model"] == model) & (self.metrics["segment"] == "all")]
        if row.empty:
            raise LakehouseError(f"no backtest of {model!r}")
        return float(row["wape"].iloc[0])


def fold_origins(examples: pd.DataFrame, folds: int, step_days: int, horizon: int) -> list[dt.date]:
    """The last `folds` origins, `step_days` apart, whose every horizon has been observed."""
    observed = examples[examples[TARGET].notna()]
    last_target = observed["target_date"].max()
    complete = sorted(o for o in observed["origin_date"].unique() if o + dt.timedelta(days=horizon) <= last_target)
    if not complete:
        raise LakehouseError("no forecast origin with a full horizon observed: the history is too short")
    chosen = [complete[-1]]
    for o in reversed(complete):
        if len(chosen) == folds:
            break
        if (chosen[-1] - o).days >= step_days:
            chosen.append(o)
    return sorted(chosen)


def rolling_origin_backtest(examples: pd.DataFrame, models: dict[str, Callable[[], BaseEstimator]], folds: int = 4,
                            step_days: int = 14, horizon: int = 14, segment: str = "channel") -> Backtest:
    """For each fold origin: fit every model on the examples whose target day is on or before the origin, forecast
    the origin's 1..horizon days, score the in-stock targets. Metrics pool the folds."""
    usable = examples[examples[TARGET].notna() & examples["in_stock"].eq(True)]
    origins = fold_origins(usable, folds, step_days, horizon)
    scored, scale_rows = [], []
    for origin in origins:
        train = usable[usable["target_date"] <= origin]
        test = usable[(usable["origin_date"] == origin) & (usable["horizon"] <= horizon)]
        if train.empty or test.empty:
            continue
        scale_rows.append(train)
        for name, factory in models.items():
            model = factory().fit(model_input(train), train[TARGET])
            pred = pd.DataFrame(model.predict(model_input(test)), columns=PREDICTIONS, index=test.index)
            scored.append(pd.concat([test[["origin_date", "target_date", "horizon", "sku", segment, TARGET]]
                                     .assign(model=name), pred], axis=1))
    if not scored:
        raise LakehouseError("the backtest has no fold with training and test rows")
    scored_all = pd.concat(scored, ignore_index=True)
    # one MASE scale for every fold: the earliest fold's training rows (no fold's test days in it)
    scales = naive_scales(scale_rows[0], segment)
    return Backtest(origins, scored_all, metrics_table(scored_all, scales, segment))
