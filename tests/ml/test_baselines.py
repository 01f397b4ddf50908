from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml.baselines import OverallRate, PriorShareRule, RateByGroup, Scorer, rule_baselines


def test_overall_rate() -> None:
    X = pd.DataFrame({"gender": ["F", "M", "F", "M"]})
    rule = OverallRate().fit(X, [1, 0, 0, 0])
    assert rule.rate_ == 0.25
    np.testing.assert_array_equal(rule.predict_proba(X.head(3)), [0.25, 0.25, 0.25])
    assert rule.name == "overall_rate"
    assert rule.is_probability


def test_rate_by_group_falls_back_for_unseen_and_null() -> None:
    train = pd.DataFrame({"gender": pd.array(["F", "F", "M", "M", None], dtype="str")})
    rule = RateByGroup("gender").fit(train, [1, 1, 1, 0, 0])
    assert rule.group_rates_ == {"F": 1.0, "M": 0.5}
    assert rule.overall_rate_ == 0.6
    score = rule.predict_proba(pd.DataFrame({"gender": ["M", "F", None, "X"]}))
    np.testing.assert_allclose(score, [0.5, 1.0, 0.6, 0.6])
    assert rule.name == "rate_by_gender"


def test_prior_share_rule_learns_nothing_and_fills_missing() -> None:
    X = pd.DataFrame({"prior_target_brand_share": [0.5, np.nan, 1.0]})
    rule = PriorShareRule().fit(X, [0, 1, 1])
    np.testing.assert_array_equal(rule.predict_proba(X), [0.5, 0.0, 1.0])
    assert not rule.is_probability
    assert rule.name == "prior_share_rule"


@pytest.mark.parametrize("rule", [OverallRate(), RateByGroup("gender"), PriorShareRule()])
def test_unfitted_rules_refuse_to_score(rule: Scorer) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        rule.predict_proba(pd.DataFrame({"gender": ["F"], "prior_target_brand_share": [0.1]}))


def test_rule_baselines_from_parameters(parameters: dict[str, Any]) -> None:
    rules = rule_baselines(parameters["evaluation"]["baseline_group_columns"])
    assert [rule.name for rule in rules] == ["overall_rate", "rate_by_gender", "prior_share_rule"]
