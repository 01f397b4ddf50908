"""The simplest model that could win: a logistic regression on a handful of explicit
features, each crossed with one categorical column (gender).

An audit on held-out shops found that an 11-parameter logistic regression (gender x the
prior target-brand share, target-brand items, any target brand, items, distinct target
brands) matches CatBoost on this problem. It is trained and gated like the CatBoost
candidate; when the two are not significantly different the gate prefers it, because a
model people can read off a table of coefficients, that cannot overfit a city's long
tail and that trains in a second is the better one to run.

The design matrix: one indicator per level of the crossing column (the intercepts), and
each feature (standardised on the training rows; NULL = the training mean) times each
level's indicator (the slopes per level). NULL and unseen levels form a level of their
own, so gender x 5 features gives 3 + 3 x 5 coefficients, of which the NULL level's stay
near zero when training has no NULL gender. ``indicator_features`` add ``feature > 0`` as
a feature of its own ("bought any target brand before").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

from ml.baselines import _check_fitted

FloatArray = npt.NDArray[np.float64]
_MISSING = "__missing__"


class LogisticModel:
    """Logistic regression on explicit features crossed with ``cross_with``.

    >>> import numpy as np, pandas as pd
    >>> from ml.logistic import LogisticModel
    >>> X = pd.DataFrame({"gender": ["F", "M"] * 50, "share": np.linspace(0, 1, 100)})
    >>> y = (X["share"] > 0.5).astype(int)
    >>> model = LogisticModel(numeric_features=["share"], indicator_features=["share"]).fit(X, y)
    >>> model.name, model.parameter_count, bool(model.predict_proba(X)[-1] > 0.9)
    ('logistic', 9, True)
    >>> model.coefficient_table()["term"].tolist()[2:5]
    ['gender=__missing__', 'share x gender=F', 'share x gender=M']
    """

    is_probability = True

    def __init__(
        self,
        numeric_features: Sequence[str],
        indicator_features: Sequence[str] = (),
        cross_with: str = "gender",
        C: float = 1.0,
        name: str = "logistic",
    ) -> None:
        self.numeric_features = list(numeric_features)
        self.indicator_features = list(indicator_features)
        self.cross_with = cross_with
        self.C = C
        self.name = name

    @property
    def parameter_count(self) -> int:
        """Coefficients of the fitted model (intercepts and slopes per level)."""
        return int(self.model_.coef_.size)

    def _features(self, X: pd.DataFrame) -> FloatArray:
        columns = [*self.numeric_features, *self.indicator_features, self.cross_with]
        missing = [c for c in dict.fromkeys(columns) if c not in X.columns]
        if missing:
            raise ValueError(f"feature columns missing from X: {missing}")
        numeric = [
            pd.to_numeric(X[c], errors="raise").astype("float64") for c in self.numeric_features
        ]
        flags = [
            (pd.to_numeric(X[c], errors="raise").fillna(0) > 0).astype("float64")
            for c in self.indicator_features
        ]
        return np.column_stack([*(s.to_numpy() for s in numeric), *(s.to_numpy() for s in flags)])

    def _design(self, X: pd.DataFrame) -> FloatArray:
        raw = self._features(X)
        standard = (raw - self.mean_) / self.scale_
        standard[np.isnan(standard)] = 0.0  # NULL: the training mean
        column = X[self.cross_with].astype("object").where(X[self.cross_with].notna(), _MISSING)
        level = column.where(column.isin(self.levels_), _MISSING).to_numpy()
        indicators = np.column_stack(
            [(level == value).astype(np.float64) for value in self.levels_]
        )
        crossed = (standard[:, :, None] * indicators[:, None, :]).reshape(len(X), -1)
        return np.column_stack([indicators, crossed])

    def fit(
        self,
        X: pd.DataFrame,
        y: npt.ArrayLike,
        eval_set: tuple[pd.DataFrame, npt.ArrayLike] | None = None,
    ) -> Self:
        """Fit on ``X`` (``eval_set`` is accepted for the shared interface and unused: a
        penalised logistic regression needs no early stopping)."""
        labels = np.asarray(y, dtype=np.float64).ravel()
        if labels.size != len(X) or labels.size == 0:
            raise ValueError(f"{labels.size} labels for {len(X)} rows")
        if np.unique(labels).size < 2:
            raise ValueError("the logistic model needs both labels to fit")
        raw = self._features(X)
        self.mean_ = np.nanmean(raw, axis=0)
        scale = np.nanstd(raw, axis=0)
        self.scale_ = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        self.mean_ = np.where(np.isfinite(self.mean_), self.mean_, 0.0)
        seen = X[self.cross_with].dropna().astype("object").unique().tolist()
        self.levels_ = [*sorted(str(v) for v in seen), _MISSING]
        self.feature_names_in_ = np.asarray(
            list(
                dict.fromkeys([self.cross_with, *self.numeric_features, *self.indicator_features])
            ),
            dtype=object,
        )
        self.model_ = LogisticRegression(C=self.C, fit_intercept=False, max_iter=2000)
        self.model_.fit(self._design(X), labels)
        return self

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        _check_fitted(self, "model_")
        return np.asarray(self.model_.predict_proba(self._design(X))[:, 1], dtype=np.float64)

    def terms(self) -> list[str]:
        features = [*self.numeric_features, *(f"any {c}" for c in self.indicator_features)]
        levels = [f"{self.cross_with}={v}" for v in self.levels_]
        return [*levels, *(f"{f} x {level}" for f in features for level in levels)]

    def coefficient_table(self) -> pd.DataFrame:
        """Each term's coefficient (features standardised on the training rows)."""
        return pd.DataFrame({"term": self.terms(), "coefficient": self.model_.coef_.ravel()})
