"""The propensity model: CatBoost on the mart's categorical, numeric and text features.

The recipe is the notebook's: the brand, department and category sequences are text
features tokenised on ';' (brand names hold spaces), turned into bag-of-words and Naive
Bayes features; categorical features use CatBoost's ordered target statistics; classes
are weighted ``SqrtBalanced``; AUC on the validation window picks the iteration.
Every CatBoost setting comes from ``parameters.yaml`` (section ``model``), whose typed
settings call the constructor with their values.

``predict_proba`` returns a 1-d array, the probability of class 1, not scikit-learn's two
columns: the rules in ``ml.baselines`` share this interface and the scores table stores
one number per customer. Because class weights tilt CatBoost's output towards the
minority class, that probability is corrected back (odds divided by the class-weight
ratio) unless ``correct_class_weights`` is false; ranking metrics are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

import catboost  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]


class PropensityModel:
    """CatBoost classifier of "the next order holds a target brand".

    Only the listed feature columns are used, so a marts frame can be passed whole (ids,
    as_of and label are ignored). Fitted attributes: ``model_`` (the CatBoostClassifier),
    ``feature_names_in_``, ``feature_importances_``, ``best_iteration_`` (None without an
    eval set), ``tree_count_``, ``class_weight_ratio_``, ``text_features_`` and
    ``dropped_text_features_``.

    >>> import numpy as np
    >>> import pandas as pd
    >>> from ml.model import PropensityModel
    >>> X = pd.DataFrame({
    ...     "gender": ["F", "M", None, "F", "M", "F", "M", None],
    ...     "age": [25.0, 40.0, 31.0, None, 52.0, 23.0, 47.0, 35.0],
    ...     "brands": ["Nike;Levi's", "Hanes", "Nike", "Nike", "Hanes", "Levi's;Nike", None, "Hanes"],
    ... })
    >>> y = np.array([1, 0, 1, 1, 0, 1, 0, 0])
    >>> model = PropensityModel(
    ...     categorical_features=["gender"],
    ...     numeric_features=["age"],
    ...     text_features=["brands"],
    ...     catboost_params={
    ...         "iterations": 10, "random_seed": 0, "thread_count": 1,
    ...         "verbose": False, "allow_writing_files": False,
    ...         "tokenizers": [{"tokenizer_id": "Semicolon", "delimiter": ";"}],
    ...         "dictionaries": [{"dictionary_id": "Brand", "occurrence_lower_bound": "1"}],
    ...         "feature_calcers": ["BoW"],
    ...     },
    ... ).fit(X, y)
    >>> scores = model.predict_proba(X)
    >>> scores.shape, bool(scores[y == 1].min() > scores[y == 0].max())
    ((8,), True)
    >>> model.feature_importance_table()["feature"].tolist()
    ['brands', 'age', 'gender']
    """

    is_probability = True

    def __init__(
        self,
        categorical_features: Sequence[str],
        numeric_features: Sequence[str],
        text_features: Sequence[str],
        catboost_params: Mapping[str, Any],
        missing_category: str = "__missing__",
        correct_class_weights: bool = True,
        name: str = "catboost",
    ) -> None:
        self.categorical_features = categorical_features
        self.numeric_features = numeric_features
        self.text_features = text_features
        self.catboost_params = catboost_params
        self.missing_category = missing_category
        self.correct_class_weights = correct_class_weights
        self.name = name

    def _pool(
        self, X: pd.DataFrame, text_features: Sequence[str], y: npt.ArrayLike | None = None
    ) -> catboost.Pool:
        """The model's columns in a fixed order, with NULLs CatBoost accepts.

        CatBoost rejects NaN in categorical and text columns (pandas 3 stores NULL
        strings as NaN): NULL categories become ``missing_category``, NULL texts "".
        """
        columns = [*self.categorical_features, *self.numeric_features, *text_features]
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise ValueError(f"feature columns missing from X: {missing}")
        data: dict[str, Any] = {}
        for column in self.categorical_features:
            data[column] = _python_strings(X[column], self.missing_category)
        for column in self.numeric_features:
            data[column] = pd.to_numeric(X[column], errors="raise").astype("float64")
        for column in text_features:
            data[column] = _python_strings(X[column], "")
        frame = pd.DataFrame(data, index=X.index)
        label = None if y is None else _binary_labels(y, len(X))
        return catboost.Pool(
            frame,
            label=label,
            cat_features=list(self.categorical_features),
            text_features=list(text_features),
        )

    def fit(
        self,
        X: pd.DataFrame,
        y: npt.ArrayLike,
        eval_set: tuple[pd.DataFrame, npt.ArrayLike] | None = None,
        progress: Callable[[int, int, float | None], object] | None = None,
        keep_trees: bool = False,
    ) -> Self:
        """Train; with ``eval_set`` (the validation window) stop early and keep the best
        iteration, without it train all ``iterations`` (early stopping needs data to
        stop on). ``progress`` is called after every iteration with its number (from 1),
        the most iterations the fit may take, and the validation loss (None without
        ``eval_set``). With ``keep_trees`` the trees after the best iteration are kept
        (until early stopping), so that the number of trees can be chosen later on
        several folds' ``validation_curve_`` and set with ``shrink``."""
        empty_text = [c for c in self.text_features if c in X.columns and _all_empty(X[c])]
        # CatBoost cannot build a dictionary from a column without a single token (it
        # fails the whole fit); such a column carries no information, so it is left out.
        self.text_features_ = [c for c in self.text_features if c not in empty_text]
        self.dropped_text_features_ = empty_text
        params = dict(self.catboost_params)
        if eval_set is None:
            params.pop("early_stopping_rounds", None)
        else:
            params["use_best_model"] = not keep_trees

        def fit_with(text_features: list[str]) -> catboost.CatBoostClassifier:
            train_pool = self._pool(X, text_features, y)
            eval_pool = None
            if eval_set is not None:
                eval_pool = self._pool(eval_set[0], text_features, eval_set[1])
            model = catboost.CatBoostClassifier(**params)
            callbacks = None if progress is None else [_Progress(progress, model.get_params())]
            model.fit(train_pool, eval_set=eval_pool, callbacks=callbacks)
            return model

        try:
            model = fit_with(self.text_features_)
        except catboost.CatBoostError as error:
            # A small training window (an early backtest fold) may hold no token, or no
            # pair of tokens, as often as a dictionary's occurrence_lower_bound asks:
            # CatBoost then refuses the whole fit. The texts teach nothing there, so the
            # model is fitted without them, and says so in dropped_text_features_.
            if "Dictionary size is 0" not in str(error) or not self.text_features_:
                raise
            self.dropped_text_features_ = [*empty_text, *self.text_features_]
            self.text_features_ = []
            model = fit_with([])
        self.model_ = model
        self.feature_names_in_ = np.asarray(
            [*self.categorical_features, *self.numeric_features, *self.text_features_],
            dtype=object,
        )
        self.feature_importances_: FloatArray = np.asarray(
            model.get_feature_importance(), dtype=np.float64
        )
        best = model.get_best_iteration()
        self.best_iteration_: int | None = None if best is None else int(best)
        self.tree_count_ = int(model.tree_count_)
        curve = (model.get_evals_result().get("validation") or {}).get(
            str(params.get("eval_metric", "Logloss"))
        )
        # The eval metric on the validation window after each tree (empty without one).
        self.validation_curve_: FloatArray = np.asarray(curve or [], dtype=np.float64)
        weights = model.get_all_params().get("class_weights") or [1.0, 1.0]
        self.class_weight_ratio_ = float(weights[1]) / float(weights[0])
        return self

    def shrink(self, trees: int) -> Self:
        """Score with the first ``trees`` trees only (at least one; no more than there
        are). The later trees stay in the model unused: CatBoost's own ``shrink`` breaks
        the text-feature processing of a model with text features (a buffer-size error
        at prediction), so predictions stop at ``ntree_end`` instead."""
        if not hasattr(self, "model_"):
            raise RuntimeError("PropensityModel is not fitted: call fit first")
        self.ntree_end_ = max(1, min(int(trees), int(self.model_.tree_count_)))
        self.tree_count_ = self.ntree_end_
        self.best_iteration_ = self.ntree_end_ - 1
        return self

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        """Probability that each row's next order holds a target brand (1-d)."""
        if not hasattr(self, "model_"):
            raise RuntimeError("PropensityModel is not fitted: call fit first")
        pool = self._pool(X, self.text_features_)
        # 0: every tree; after ``shrink`` the chosen number.
        ntree_end = getattr(self, "ntree_end_", 0)
        raw = np.asarray(
            self.model_.predict_proba(pool, ntree_end=ntree_end)[:, 1], dtype=np.float64
        )
        if not self.correct_class_weights or self.class_weight_ratio_ == 1.0:
            return raw
        # Weighting positives by r multiplies the learned odds by r; divide it out.
        return raw / (raw + (1.0 - raw) * self.class_weight_ratio_)

    def feature_importance_table(self) -> pd.DataFrame:
        """Features and CatBoost's importances (PredictionValuesChange, summing to 100,
        unlike scikit-learn's 1), most important first, for logging."""
        if not hasattr(self, "model_"):
            raise RuntimeError("PropensityModel is not fitted: call fit first")
        table = pd.DataFrame(
            {"feature": self.feature_names_in_.astype(str), "importance": self.feature_importances_}
        )
        return table.sort_values("importance", ascending=False, ignore_index=True)


def _python_strings(column: pd.Series, missing: str) -> pd.Series:
    """A categorical or text column as Python strings, NULLs as ``missing``, in an
    object-dtype Series: what CatBoost reads without converting. (pandas 3 stores strings
    in Arrow; handing CatBoost that, or converting through ``astype(str)``, copied every
    value twice more: a quarter of the time of scoring 400,000 customers.)"""
    values = column.to_numpy(dtype=object, na_value=missing)
    if pd.api.types.infer_dtype(values, skipna=False) != "string":
        values = np.asarray([str(value) for value in values], dtype=object)
    return pd.Series(values, index=column.index, dtype=object, name=column.name)


def _binary_labels(y: npt.ArrayLike, rows: int) -> npt.NDArray[np.int64]:
    labels = np.asarray(y).ravel()
    if labels.size != rows:
        raise ValueError(f"X has {rows} rows but y has {labels.size} labels")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if np.unique(labels).size < 2:
        raise ValueError("labels hold a single class; a classifier needs both")
    return labels.astype(np.int64)


def _all_empty(texts: pd.Series) -> bool:
    return bool((texts.isna() | (texts.astype(object).astype(str).str.strip(" ;") == "")).all())


class _Progress:
    """CatBoost's training callback, handing each iteration to a plain function."""

    def __init__(
        self, report: Callable[[int, int, float | None], object], params: dict[str, Any]
    ) -> None:
        self.report = report
        self.total = int(params.get("iterations") or 1000)  # CatBoost's default

    def after_iteration(self, info: Any) -> bool:
        validation = info.metrics.get("validation") or {}
        losses = next(iter(validation.values()), None)
        self.report(int(info.iteration), self.total, None if not losses else float(losses[-1]))
        return True  # never stops the fit
