"""The registry's promotion rule for every model: a challenger becomes champion only when its figure, measured on
the same data as the champion's configuration, is strictly better (by a margin when asked); the champion's own
configuration retrained is a refresh. Who is judged: the baseline, the challenger and the champion, each once."""

from __future__ import annotations

import pytest

from lakehouse.ml.registry import Spec, contenders, judge, name_of, promotion_decision


@pytest.mark.parametrize(("challenger", "champion", "min_improvement", "promoted", "reason"), [
    (0.5, None, 0.0, True, "no champion yet"),
    (0.4, 0.5, 0.0, True, "backtest WAPE 0.4000 < champion's 0.5000"),
    (0.5, 0.5, 0.0, False, "backtest WAPE 0.5000 does not beat the champion's 0.5000"),
    (0.46, 0.5, 0.1, False, "backtest WAPE 0.4600 does not beat the champion's 0.5000 x (1 - 0.1)"),
    (0.44, 0.5, 0.1, True, "backtest WAPE 0.4400 < champion's 0.5000 x (1 - 0.1)"),
    (float("nan"), 0.5, 0.0, False, "the challenger's backtest WAPE is undefined"),
])
def test_a_lower_error_must_be_strictly_lower(challenger, champion, min_improvement, promoted, reason) -> None:
    assert promotion_decision(challenger, champion, min_improvement) == (promoted, reason)


@pytest.mark.parametrize(("challenger", "champion", "min_improvement", "promoted", "reason"), [
    (0.8, 0.6, 0.0, True, "test PR-AUC 0.8000 > champion's 0.6000"),
    (0.6, 0.6, 0.0, False, "test PR-AUC 0.6000 does not beat the champion's 0.6000"),
    (0.65, 0.6, 0.1, False, "test PR-AUC 0.6500 does not beat the champion's 0.6000 x (1 + 0.1)"),
    (0.67, 0.6, 0.1, True, "test PR-AUC 0.6700 > champion's 0.6000 x (1 + 0.1)"),
])
def test_a_higher_score_must_be_strictly_higher(challenger, champion, min_improvement, promoted, reason) -> None:
    assert promotion_decision(challenger, champion, min_improvement, metric="test PR-AUC",
                              higher_is_better=True) == (promoted, reason)


def test_each_configuration_is_judged_once_and_named_by_its_roles() -> None:
    rules, gbm, small = Spec("rules", {}), Spec("gbm", {}), Spec("gbm", {"max_iter": 10})
    assert list(contenders(rules, gbm, None)) == ["rules (baseline)", "gbm (challenger)"]
    assert list(contenders(rules, rules, ("1", rules))) == ["rules (baseline, challenger, champion v1)"]
    named = contenders(rules, small, ("2", gbm))
    assert list(named) == ["rules (baseline)", 'gbm{"max_iter": 10} (challenger)', "gbm (champion v2)"]
    assert name_of(named, gbm) == "gbm (champion v2)"


def test_judge_compares_the_champions_configuration_measured_on_the_same_data() -> None:
    figures = {"a": 0.30, "b": 0.25}

    def measured(spec: Spec) -> float:
        return figures[spec.kind]

    assert judge(Spec("b", {}), ("3", Spec("a", {})), measured) == (True, "backtest WAPE 0.2500 < champion's 0.3000")
    assert judge(Spec("a", {}), ("3", Spec("b", {})), measured) == (
        False, "backtest WAPE 0.3000 does not beat the champion's 0.2500")
    assert judge(Spec("a", {}), ("3", Spec("a", {})), measured) == (
        True, "the champion's configuration retrained on newer data")
    assert judge(Spec("a", {}), None, measured) == (True, "no champion yet")
