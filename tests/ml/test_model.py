from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ml.metrics import roc_auc
from ml.model import PropensityModel
from tests.ml.synthetic import make_examples


def test_learns_a_brand_planted_in_the_sequence(small_model_kwargs: dict[str, Any]) -> None:
    examples = make_examples(3000, seed=1)
    train, validation, test = examples[:2000], examples[2000:2500], examples[2500:]
    model = PropensityModel(**small_model_kwargs).fit(
        train, train["label"], eval_set=(validation, validation["label"])
    )
    score = model.predict_proba(test)
    assert score.shape == (len(test),)
    assert ((score > 0) & (score < 1)).all()
    assert roc_auc(test["label"], score) > 0.8
    importances = model.feature_importance_table()
    assert importances.loc[0, "feature"] == "brand_sequence"
    assert model.feature_importances_.shape == (len(model.feature_names_in_),)
    assert "customer_id" not in set(model.feature_names_in_)  # ids never become features
    assert model.best_iteration_ is not None
    assert model.tree_count_ <= 50
    # Brand names keep their spaces and case: CatBoost splits on ';' only.
    (tokenizer,) = model.model_.get_all_params()["text_processing"]["tokenizers"]
    assert (tokenizer["delimiter"], tokenizer["lowercasing"]) == (";", "0")


def test_deterministic_with_a_seed(small_model_kwargs: dict[str, Any]) -> None:
    examples = make_examples(1000, seed=2)
    first = PropensityModel(**small_model_kwargs).fit(examples, examples["label"])
    second = PropensityModel(**small_model_kwargs).fit(examples, examples["label"])
    np.testing.assert_array_equal(first.predict_proba(examples), second.predict_proba(examples))
    assert first.best_iteration_ is None
    assert first.tree_count_ == 50  # no eval set: no early stopping


def test_handles_nulls_in_pandas_string_columns(small_model_kwargs: dict[str, Any]) -> None:
    examples = make_examples(1000, seed=3)
    for column in ["gender", "city", "traffic_source", "category_sequence"]:
        examples[column] = examples[column].astype("str")  # pandas 3 strings: NULL is NaN
    examples.loc[::7, ["gender", "category_sequence"]] = np.nan
    examples.loc[::5, "age"] = np.nan
    model = PropensityModel(**small_model_kwargs).fit(examples, examples["label"])
    assert np.isfinite(model.predict_proba(examples)).all()


def test_an_all_empty_text_column_is_left_out(small_model_kwargs: dict[str, Any]) -> None:
    examples = make_examples(800, seed=4)
    examples["category_sequence"] = None
    model = PropensityModel(**small_model_kwargs).fit(examples, examples["label"])
    assert model.dropped_text_features_ == ["category_sequence"]
    assert "category_sequence" not in set(model.feature_names_in_)
    assert model.predict_proba(examples).shape == (800,)


def test_class_weight_correction_restores_the_base_rate(
    small_model_kwargs: dict[str, Any],
) -> None:
    examples = make_examples(2000, seed=5, signal_brand="Nike")
    examples["label"] = (np.random.default_rng(5).random(2000) < 0.1).astype(int)  # no signal
    corrected = PropensityModel(**small_model_kwargs).fit(examples, examples["label"])
    raw = PropensityModel(**{**small_model_kwargs, "correct_class_weights": False}).fit(
        examples, examples["label"]
    )
    ratio = corrected.class_weight_ratio_
    assert ratio == pytest.approx(
        np.sqrt((examples["label"] == 0).sum() / examples["label"].sum()), rel=1e-5
    )
    base_rate = examples["label"].mean()
    assert abs(corrected.predict_proba(examples).mean() - base_rate) < 0.03
    assert raw.predict_proba(examples).mean() > base_rate + 0.03
    # The correction is monotone: the ranking is untouched.
    assert roc_auc(examples["label"], corrected.predict_proba(examples)) == pytest.approx(
        roc_auc(examples["label"], raw.predict_proba(examples))
    )


def test_input_errors(small_model_kwargs: dict[str, Any]) -> None:
    examples = make_examples(200, seed=6)
    model = PropensityModel(**small_model_kwargs)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict_proba(examples)
    with pytest.raises(ValueError, match="single class"):
        model.fit(examples, np.zeros(200, dtype=int))
    with pytest.raises(ValueError, match=r"missing from X: \['age'\]"):
        model.fit(examples.drop(columns="age"), examples["label"])


def test_parameters_yaml_configures_catboost(model_kwargs: dict[str, Any]) -> None:
    model = PropensityModel(**model_kwargs)
    params = model.catboost_params
    assert params["auto_class_weights"] == "SqrtBalanced"
    assert params["eval_metric"] == "AUC"
    assert params["tokenizers"][0]["delimiter"] == ";"
    contract = set(make_examples(1, seed=0).columns) - {"customer_id", "order_id", "as_of", "label"}
    assert (
        set(model.categorical_features) | set(model.numeric_features) | set(model.text_features)
        == contract
    )


def test_progress_reports_every_iteration_and_does_not_change_the_model(
    small_model_kwargs: dict[str, Any],
) -> None:
    examples = make_examples(1000, seed=5)
    train, validation = examples.iloc[:700], examples.iloc[700:]
    seen: list[tuple[int, int, float | None]] = []
    watched = PropensityModel(**small_model_kwargs).fit(
        train,
        train["label"],
        eval_set=(validation, validation["label"]),
        progress=lambda i, n, loss: seen.append((i, n, loss)),
    )
    quiet = PropensityModel(**small_model_kwargs).fit(
        train, train["label"], eval_set=(validation, validation["label"])
    )
    np.testing.assert_array_equal(watched.predict_proba(examples), quiet.predict_proba(examples))
    # One call per iteration actually run (early stopping may end before the 50).
    assert [i for i, _, _ in seen] == list(range(1, len(seen) + 1))
    assert len(seen) >= watched.tree_count_ and {n for _, n, _ in seen} == {50}
    assert all(loss is not None and loss > 0 for _, _, loss in seen)
    without_eval: list[float | None] = []
    PropensityModel(**small_model_kwargs).fit(
        train, train["label"], progress=lambda i, n, loss: without_eval.append(loss)
    )
    assert len(without_eval) == 50 and set(without_eval) == {None}


def test_trees_kept_past_the_best_can_be_cut_later_with_text_features(
    small_model_kwargs: dict[str, Any],
) -> None:
    """``keep_trees`` keeps the trees after the best iteration so that a number chosen on
    several folds can be set afterwards; ``shrink`` then scores exactly like a model
    trained with that many trees (CatBoost's own shrink fails on text features)."""
    examples = make_examples(2500, seed=4)
    train, validation = examples[:2000], examples[2000:]
    params = {**small_model_kwargs["catboost_params"], "learning_rate": 0.05}
    kept = PropensityModel(**{**small_model_kwargs, "catboost_params": params}).fit(
        train, train["label"], eval_set=(validation, validation["label"]), keep_trees=True
    )
    assert kept.validation_curve_.size == kept.tree_count_ > kept.best_iteration_ + 1
    cut = kept.tree_count_ // 2
    fixed = PropensityModel(
        **{**small_model_kwargs, "catboost_params": {**params, "iterations": cut}}
    ).fit(train, train["label"])
    np.testing.assert_allclose(
        kept.shrink(cut).predict_proba(examples), fixed.predict_proba(examples)
    )
    assert kept.tree_count_ == cut


def test_texts_too_sparse_for_a_dictionary_are_left_out_not_fatal(
    small_model_kwargs: dict[str, Any],
) -> None:
    """An early backtest fold of a small shop may hold no token as often as the
    dictionaries' occurrence_lower_bound asks; CatBoost refuses such a fit, so the model
    fits without the texts and names them."""
    examples = make_examples(400, seed=6)
    params = {**small_model_kwargs["catboost_params"]}
    params["dictionaries"] = [
        {**d, "occurrence_lower_bound": "100000"} for d in params["dictionaries"]
    ]
    model = PropensityModel(**{**small_model_kwargs, "catboost_params": params}).fit(
        examples, examples["label"]
    )
    assert model.text_features_ == []
    assert model.dropped_text_features_ == list(small_model_kwargs["text_features"])
    assert model.predict_proba(examples).shape == (len(examples),)
