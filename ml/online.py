"""The online-learning challenger: a River logistic regression that learns one example at
a time, in time order, and is measured as it would have run in production.

Batch models are refitted weekly and frozen in between; an online model keeps learning
from every realised outcome, so it should follow a shop that drifts (a campaign, a new
season) without waiting for the next retrain. Whether it is *better* is what the gate
decides, on the same backtest folds as the batch models: on each fold it learns the
fold's training examples in time order and scores the test window frozen, as the others
do (``fit`` / ``predict_proba``: the Scorer interface of ``ml.baselines``).

How it would have done while learning is progressive validation
(``river.evaluate.progressive_val_score``'s machinery): every example is first scored,
then learnt, and its label is revealed only ``label_delay_days`` after its moment (the
example's ``as_of``), as outcomes arrive in production: a customer scored today is
judged by an order placed within the label horizon. The running ROC-AUC and log loss at
checkpoints are ``progressive_``. A constant delay reveals labels in time order, so the
model ``fit`` leaves is the one learning in time order without a delay leaves.

The model: the numeric features standardised by River's running ``StandardScaler``
(NULL: the key is left out, which after scaling is the running mean) beside one-hot
categoricals (``column=value``; NULL a level of its own), unscaled, into River's
``LogisticRegression`` trained by SGD. River models are not safe for concurrent
``learn_one``: whoever serves one must let a single thread learn (serving/online.py).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from river import base, compose, evaluate, linear_model, metrics, optim, preprocessing

from ml.baselines import _check_fitted

FloatArray = npt.NDArray[np.float64]
_MISSING = "__missing__"
# River's ROCAUC is an approximation on this many thresholds (River's default: within
# about 0.003 of the exact AUC, at a tenth of the cost of 100).
ROC_AUC_THRESHOLDS = 10


class OnlineModel(base.Classifier):
    """An online logistic regression on ``numeric_features`` and one-hot
    ``categorical_features`` of mart rows (dicts keyed by column).

    >>> import numpy as np, pandas as pd
    >>> from ml.online import OnlineModel
    >>> rng = np.random.default_rng(0)
    >>> share = rng.random(400)
    >>> X = pd.DataFrame({"as_of": pd.date_range("2026-01-01", periods=400, freq="6h"),
    ...                   "gender": rng.choice(["F", "M"], 400), "share": share})
    >>> y = (rng.random(400) < share).astype(int)
    >>> model = OnlineModel(["share"], ["gender"], label_delay_days=7).fit(X, y)
    >>> model.name, model.learned_, bool(model.predict_proba(X.tail(1))[0] > 0)
    ('online', 400, True)
    >>> bool(model.progressive_["roc_auc"].iloc[-1] > 0.6), list(model.progressive_.columns)
    (True, ['examples', 'as_of', 'roc_auc', 'log_loss'])
    >>> model.learn_one({"share": 0.9, "gender": None}, 1); model.learned_
    401
    """

    is_probability = True

    def __init__(
        self,
        numeric_features: Sequence[str],
        categorical_features: Sequence[str] = (),
        learning_rate: float = 0.05,
        l2: float = 0.0,
        label_delay_days: float = 0.0,
        checkpoints: int = 10,
        moment: str = "as_of",
        name: str = "online",
    ) -> None:
        self.numeric_features = list(numeric_features)
        self.categorical_features = list(categorical_features)
        self.learning_rate = learning_rate
        self.l2 = l2
        self.label_delay_days = label_delay_days
        self.checkpoints = checkpoints
        self.moment = moment
        self.name = name

    # -- one example at a time -------------------------------------------------------------

    def features(self, row: Mapping[Hashable, Any]) -> dict[Hashable, float]:
        """The model's inputs from a mart row: numeric values (left out when NULL) and
        one ``column=value`` indicator per categorical column."""
        x: dict[Hashable, float] = {}
        for column in self.numeric_features:
            value = row.get(column)
            if value is not None and not _is_nan(value):
                x[column] = float(value)
        for column in self.categorical_features:
            value = row.get(column)
            level = _MISSING if value is None or _is_nan(value) else str(value)
            x[f"{column}={level}"] = 1.0
        return x

    def _start(self) -> None:
        # Only the numeric values are standardised: River's scaler keeps statistics of the
        # values it sees, and an indicator is only seen as 1 (variance 0), which it would
        # turn into 0 and so erase every categorical feature.
        scaled = compose.FuncTransformer(_numeric) | preprocessing.StandardScaler()
        self.pipeline_ = (
            scaled + compose.FuncTransformer(_indicators)
        ) | linear_model.LogisticRegression(
            optimizer=optim.SGD(self.learning_rate),
            intercept_lr=self.learning_rate,
            l2=self.l2,
        )
        self.learned_ = 0
        self.feature_names_in_ = np.asarray(
            list(dict.fromkeys([*self.categorical_features, *self.numeric_features])), dtype=object
        )

    def learn_one(self, x: dict[Hashable, Any], y: base.typing.ClfTarget) -> None:
        """Learn one mart row ``x`` with its label (0/1 or a bool)."""
        if not hasattr(self, "pipeline_"):
            self._start()
        self.pipeline_.learn_one(self.features(x), bool(y))
        self.learned_ += 1

    def predict_proba_one(self, x: dict[Hashable, Any], **kwargs: Any) -> dict[Any, float]:
        """``{False: p0, True: p1}`` for one mart row (0.5 each before any learning)."""
        if not hasattr(self, "pipeline_"):
            return {False: 0.5, True: 0.5}
        proba: dict[Any, float] = self.pipeline_.predict_proba_one(self.features(x))
        return proba

    # -- the Scorer interface --------------------------------------------------------------

    def fit(
        self,
        X: pd.DataFrame,
        y: npt.ArrayLike,
        eval_set: tuple[pd.DataFrame, npt.ArrayLike] | None = None,
        *,
        progressive: bool = True,
    ) -> Self:
        """Learn ``X`` from scratch in time order (by ``moment``), measured by progressive
        validation with the label delay on the way (``progressive_``; with
        ``progressive=False`` only learnt, in a third of the time, and ``progressive_`` is
        None). ``eval_set`` is accepted for the shared interface and unused."""
        labels = np.asarray(y, dtype=np.float64).ravel()
        if labels.size != len(X) or labels.size == 0:
            raise ValueError(f"{labels.size} labels for {len(X)} rows")
        self._start()
        self.progressive_: pd.DataFrame | None = None
        if progressive:
            self.progressive_ = progressive_validation(self, X, labels)
            return self
        order = np.argsort(pd.to_datetime(X[self.moment]).to_numpy(), kind="stable")
        columns = [c for c in self.feature_names_in_ if c in X.columns]
        for row, label in zip(
            X[columns].iloc[order].to_dict("records"), labels[order], strict=True
        ):
            self.learn_one(row, bool(label))
        return self

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        """Probability of a positive next order, one per row of ``X`` (the model as it
        is: it does not learn from them)."""
        _check_fitted(self, "pipeline_")
        columns = [c for c in dict.fromkeys(self.feature_names_in_) if c in X.columns]
        rows = X[columns].to_dict("records")
        return np.fromiter(
            (self.predict_proba_one(row).get(True, 0.0) for row in rows),
            dtype=np.float64,
            count=len(rows),
        )


def _numeric(x: dict[Hashable, float]) -> dict[Hashable, float]:
    return {k: v for k, v in x.items() if not (isinstance(k, str) and "=" in k)}


def _indicators(x: dict[Hashable, float]) -> dict[Hashable, float]:
    return {k: v for k, v in x.items() if isinstance(k, str) and "=" in k}


def _is_nan(value: Any) -> bool:
    return bool(value != value)  # NaN alone is not equal to itself


def progressive_validation(
    model: OnlineModel, X: pd.DataFrame, labels: npt.ArrayLike
) -> pd.DataFrame:
    """Let ``model`` score then learn every row of ``X`` in time order, each label revealed
    ``model.label_delay_days`` after the row's ``model.moment`` (given to the model as
    seconds since the epoch); the running ROC-AUC and
    log loss after about every ``len(X) / model.checkpoints`` examples, and at the end.

    >>> import pandas as pd
    >>> from ml.online import OnlineModel, progressive_validation
    >>> X = pd.DataFrame({"as_of": pd.date_range("2026-01-01", periods=40), "v": [0, 1] * 20})
    >>> table = progressive_validation(OnlineModel(["v"], checkpoints=4), X, [0, 1] * 20)
    >>> table["examples"].tolist(), bool(table["roc_auc"].iloc[-1] > 0.9)
    ([10, 20, 30, 40], True)
    """
    y = np.asarray(labels, dtype=np.float64).ravel()
    moments = pd.to_datetime(X[model.moment])
    order = np.argsort(moments.to_numpy(), kind="stable")
    columns = [
        c
        for c in dict.fromkeys([*model.numeric_features, *model.categorical_features])
        if c in X.columns
    ]
    rows = X[columns].iloc[order].to_dict("records")
    times = moments.iloc[order].tolist()
    # The moment travels as whole seconds since the epoch: River deep-copies every
    # example it asks about, and copying a Timestamp costs more than scoring the example.
    seconds = (moments.iloc[order].to_numpy(dtype="datetime64[s]").astype(np.int64)).tolist()

    def stream() -> Iterator[tuple[dict[Hashable, Any], bool]]:
        for row, moment, label in zip(rows, seconds, y[order], strict=True):
            yield {**row, model.moment: moment}, bool(label)

    step = max(1, math.ceil(len(rows) / max(1, model.checkpoints)))
    # River leaves these two constructors unannotated.
    roc_auc = metrics.ROCAUC(n_thresholds=ROC_AUC_THRESHOLDS)  # type: ignore[no-untyped-call]
    metric = roc_auc + metrics.LogLoss()  # type: ignore[no-untyped-call]
    delay = round(dt.timedelta(days=model.label_delay_days).total_seconds())
    out = []
    for state in evaluate.iter_progressive_val_score(
        stream(), model, metric, moment=model.moment, delay=delay, step=step
    ):
        examples = int(state["Step"])
        out.append(
            {
                "examples": examples,
                "as_of": times[examples - 1],
                "roc_auc": float(state["ROCAUC"].get()),
                "log_loss": float(state["LogLoss"].get()),
            }
        )
    return pd.DataFrame(out, columns=["examples", "as_of", "roc_auc", "log_loss"])
