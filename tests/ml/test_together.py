"""The pieces as the pipeline will chain them: split, fit, score, compare with the rules."""

from __future__ import annotations

from typing import Any

from ml import (
    PropensityModel,
    evaluate,
    paired_bootstrap_difference,
    rule_baselines,
    time_gapped_split,
)
from tests.ml.synthetic import make_examples


def test_model_beats_every_rule_on_a_planted_signal(
    parameters: dict[str, Any], small_model_kwargs: dict[str, Any]
) -> None:
    evaluation = parameters["evaluation"]
    examples = make_examples(4000, seed=11)  # as_of spread over 120 days
    split = time_gapped_split(examples, test_days=20, validation_days=20, gap_days=3)
    model = PropensityModel(**small_model_kwargs).fit(
        split.train,
        split.train["label"],
        eval_set=(split.validation, split.validation["label"]),
    )
    y = split.test["label"].to_numpy()
    model_score = model.predict_proba(split.test)
    report = evaluate(
        y,
        model_score,
        {"gender": split.test["gender"].to_numpy()},
        top_k_percents=evaluation["top_k_percents"],
        min_slice_positives=evaluation["min_slice_positives"],
    )
    assert report.overall["roc_auc"] > 0.8
    assert report.overall["lift_at_10"] > 1.5
    for rule in rule_baselines(evaluation["baseline_group_columns"]):
        rule_score = rule.fit(split.train, split.train["label"]).predict_proba(split.test)
        for metric in ("roc_auc", "lift_at_10"):
            comparison = paired_bootstrap_difference(
                y,
                model_score,
                rule_score,
                metric,
                n_boot=200,
                seed=0,
                confidence_level=evaluation["confidence_level"],
            )
            assert comparison.a_is_better, (rule.name, metric, comparison)
