"""Fraud models over `transformations.gold.fraud_features.FEATURES` and how they are judged.

Both are scikit-learn estimators whose `predict` is a fraud score in [0, 1] (MLflow's pyfunc calls `predict`):

* `RulesBaseline`: the rules a payments team writes first (card or device velocity, an amount far above the
  customer's usual or a large first purchase, country mismatches, a new device right after an address change),
  weighted into a score; nothing is learned;
* `GradientBoostedFraud`: a gradient-boosted classifier (scikit-learn HistGradientBoosting; unknown values such as
  a guest's history stay missing), its score the predicted probability.

Judged on attempts later than the ones it learned from (`time_split`): PR-AUC (average precision: fraud is ~2 %
of attempts, where ROC-AUC flatters) and the recall at a fixed false-positive rate (the share of fraud stopped when
at most 1 % of honest attempts are challenged), overall and per fraud pattern.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_curve

from lakehouse.errors import LakehouseError
from lakehouse.ml.registry import make_estimator
from transformations.gold.fraud_features import FEATURES, LABEL

MAX_FPR = 0.01  # the false-positive rate recall is read at
HONEST = "none"


def model_input(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's inputs, in FEATURES order, as floats (missing stays NaN)."""
    return frame[FEATURES].astype("float64")


class RulesBaseline(BaseEstimator):
    """Weighted rules; `predict` = (sum of the weights of the rules raised) / 100."""

    def __init__(self, card_attempts: int = 3, device_attempts: int = 5, amount_ratio: float = 3.0,
                 first_purchase_eur: float = 300.0, address_change_hours: float = 24.0) -> None:
        self.card_attempts = card_attempts
        self.device_attempts = device_attempts
        self.amount_ratio = amount_ratio
        self.first_purchase_eur = first_purchase_eur
        self.address_change_hours = address_change_hours

    def fit(self, X: pd.DataFrame, y: object = None) -> RulesBaseline:
        self.fitted_ = True
        return self

    def rules(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each rule's verdict per row."""
        x = model_input(X)
        no_history = x["customer_prior_payments"].fillna(0).eq(0)
        return {
            "velocity": ((x["card_attempts_10m"] >= self.card_attempts)
                         | (x["device_attempts_10m"] >= self.device_attempts)).to_numpy(),
            "amount": ((x["amount_vs_customer_avg"] >= self.amount_ratio)
                       | (no_history & (x["amount_eur"] >= self.first_purchase_eur))).to_numpy(),
            "country": ((x["billing_shipping_mismatch"] > 0) | (x["ip_billing_mismatch"] > 0)).to_numpy(),
            "account": ((x["new_device"] > 0)
                        & (x["hours_since_address_change"] <= self.address_change_hours)).to_numpy(),
        }

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        weights = {"velocity": 30, "amount": 30, "country": 20, "account": 20}
        raised = self.rules(X)
        return sum(np.where(raised[name], weight, 0) for name, weight in weights.items()) / 100.0


class GradientBoostedFraud(BaseEstimator):
    """Gradient-boosted trees on the features; `predict` = P(fraud)."""

    def __init__(self, max_iter: int = 300, learning_rate: float = 0.05, max_leaf_nodes: int = 31,
                 min_samples_leaf: int = 20, l2_regularization: float = 0.0, random_state: int = 42) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: pd.Series) -> GradientBoostedFraud:
        labels = np.asarray(y, dtype=bool)
        if labels.all() or not labels.any():
            raise LakehouseError("training a fraud model needs both fraudulent and honest attempts")
        self.classifier_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            early_stopping=False, random_state=self.random_state,
        ).fit(model_input(X), labels)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classifier_.predict_proba(model_input(X))[:, 1]


MODEL_KINDS: dict[str, type[BaseEstimator]] = {"rules": RulesBaseline, "gradient_boosting": GradientBoostedFraud}
BASELINE_KIND = "rules"


def make_model(kind: str, params: dict[str, Any] | None = None) -> BaseEstimator:
    return make_estimator(MODEL_KINDS, kind, params, "fraud")


# --- judging ---------------------------------------------------------------------------------------------------


def time_split(frame: pd.DataFrame, test_fraction: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): attempts before and from the point `test_fraction` of the time span before the last."""
    if not 0 < test_fraction < 1:
        raise LakehouseError(f"test_fraction must be between 0 and 1, not {test_fraction}")
    times = frame["event_time"]
    cutoff = times.min() + (times.max() - times.min()) * (1 - test_fraction)
    train, test = frame[times < cutoff], frame[times >= cutoff]
    for name, part in (("training", train), ("test", test)):
        if part[LABEL].nunique() < 2:
            raise LakehouseError(f"the {name} period needs both fraudulent and honest attempts "
                                 f"({len(part)} attempts, {int(part[LABEL].sum())} fraudulent)")
    return train, test


def recall_at_fpr(y: np.ndarray, score: np.ndarray, max_fpr: float = MAX_FPR) -> tuple[float, float, float]:
    """(recall, false-positive rate, threshold) of the highest recall whose false-positive rate is <= max_fpr;
    an attempt is flagged when its score >= threshold."""
    fpr, tpr, thresholds = roc_curve(y, score)
    best = int(np.flatnonzero(fpr <= max_fpr)[np.argmax(tpr[fpr <= max_fpr])])
    return float(tpr[best]), float(fpr[best]), float(thresholds[best])


def evaluation_table(test: pd.DataFrame, scores: dict[str, np.ndarray], max_fpr: float = MAX_FPR) -> pd.DataFrame:
    """model x segment ("all", then each fraud pattern present, against every honest attempt): PR-AUC, and at
    the threshold giving the model's best recall at `max_fpr` overall: recall, false-positive rate, precision."""
    y = test[LABEL].to_numpy(dtype=bool)
    patterns = test["fraud_pattern"].to_numpy()
    honest = ~y
    rows = []
    for model, score in scores.items():
        _, fpr, threshold = recall_at_fpr(y, score, max_fpr)
        flagged = score >= threshold
        segments = {"all": np.ones(len(y), dtype=bool)}
        segments.update({p: honest | (patterns == p) for p in sorted(set(patterns[y]))})
        for segment, rows_in in segments.items():
            ys, flags = y[rows_in], flagged[rows_in]
            rows.append({
                "model": model, "segment": segment, "pr_auc": float(average_precision_score(ys, score[rows_in])),
                "recall": float(flags[ys].mean()), "fpr": fpr,
                "precision": float(ys[flags].mean()) if flags.any() else 0.0,
                "threshold": threshold, "fraud": int(ys.sum()), "rows": int(rows_in.sum()),
            })
    return pd.DataFrame(rows)


def format_evaluation(table: pd.DataFrame) -> str:
    """The evaluation table as fixed-width text."""
    width = max([len("model"), *(len(m) for m in table["model"])])
    lines = [f"{'model':<{width}} {'segment':<17} {'PR-AUC':>7} {'recall':>7} {'FPR':>7} {'precision':>9} "
             f"{'fraud':>6} {'rows':>7}"]
    for r in table.itertuples(index=False):
        lines.append(f"{r.model:<{width}} {r.segment:<17} {r.pr_auc:>7.3f} {r.recall:>7.3f} {r.fpr:>7.4f} "
                     f"{r.precision:>9.3f} {r.fraud:>6d} {r.rows:>7d}")
    return "\n".join(lines)
