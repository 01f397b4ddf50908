"""Realised performance of stored scores once their outcomes arrive.

A score published on an as-of date is judged later, when the customer's next order says
whether it held a target brand. Until then the customer is pending, and a date with few
labelled customers says little: below ``min_labelled`` its metrics are NaN, and a reason
says why. Metrics are ``ml.metrics``' ROC-AUC and lift in the top k%, over the labelled
customers of the date, and calibration-in-the-large: their positive rate beside their
mean score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ml.metrics import lift_at_top, roc_auc

KEYS = ["customer_id", "as_of"]


def realised_performance(
    scores: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    top_k_percents: Sequence[float],
    min_labelled: int,
) -> pd.DataFrame:
    """One row per as-of date of ``scores``: n, n_labelled, n_pending, positives,
    positive_rate and mean_score (of the labelled), roc_auc, ``lift_at_<k>`` per k, and a
    reason where a metric is NaN.

    ``scores`` holds customer_id, as_of, score (one row per customer and date);
    ``outcomes`` customer_id, as_of, label: 1 or 0 once known, NULL while pending. A
    scored customer without an outcome row is pending; outcomes of customers not scored
    on that date are ignored.

    >>> import pandas as pd
    >>> from ml.realised import realised_performance
    >>> scores = pd.DataFrame({"customer_id": [1, 2, 3, 4, 5], "as_of": "2026-07-01",
    ...                        "score": [0.9, 0.8, 0.7, 0.6, 0.5]})
    >>> outcomes = pd.DataFrame({"customer_id": [1, 2, 3, 4], "as_of": "2026-07-01",
    ...                          "label": [1, 0, 1, None]})  # 4: pending; 5: no outcome yet
    >>> table = realised_performance(scores, outcomes, top_k_percents=[50], min_labelled=3)
    >>> table[["as_of", "n", "n_labelled", "n_pending", "positives", "roc_auc", "lift_at_50"]]
            as_of  n  n_labelled  n_pending  positives  roc_auc  lift_at_50
    0  2026-07-01  5           3          2          2      0.5         1.0
    >>> table[["positive_rate", "mean_score"]].round(3).to_dict("records")
    [{'positive_rate': 0.667, 'mean_score': 0.8}]
    """
    if min_labelled < 1:
        raise ValueError("min_labelled must be at least 1")
    _require_columns("scores", scores, [*KEYS, "score"])
    _require_columns("outcomes", outcomes, [*KEYS, "label"])
    joined = scores[[*KEYS, "score"]].merge(
        outcomes[[*KEYS, "label"]], on=KEYS, how="left", validate="one_to_one"
    )
    joined["label"] = pd.to_numeric(joined["label"], errors="raise").astype("float64")
    lift_columns = [f"lift_at_{k:g}" for k in top_k_percents]
    rows = [
        _date_row(as_of, group, top_k_percents, lift_columns, min_labelled)
        for as_of, group in joined.groupby("as_of", sort=True)
    ]
    columns = ["as_of", "n", "n_labelled", "n_pending", "positives", "positive_rate", "mean_score"]
    return pd.DataFrame(rows, columns=[*columns, "roc_auc", *lift_columns, "reason"])


def _require_columns(name: str, frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")


def _date_row(
    as_of: Any,
    group: pd.DataFrame,
    top_k_percents: Sequence[float],
    lift_columns: Sequence[str],
    min_labelled: int,
) -> dict[str, Any]:
    labelled = group[group["label"].notna()]
    y = labelled["label"].to_numpy(dtype=np.float64)
    score = labelled["score"].to_numpy(dtype=np.float64)
    positives = int(y.sum())
    row: dict[str, Any] = {
        "as_of": as_of,
        "n": len(group),
        "n_labelled": y.size,
        "n_pending": len(group) - y.size,
        "positives": positives,
        "positive_rate": positives / y.size if y.size else math.nan,
        "mean_score": float(score.mean()) if y.size else math.nan,
        "roc_auc": math.nan,
        **dict.fromkeys(lift_columns, math.nan),
        "reason": "",
    }
    if y.size < min_labelled:
        row["reason"] = f"{y.size} labelled, fewer than min_labelled={min_labelled}"
        return row
    row["roc_auc"] = roc_auc(y, score)
    for k, column in zip(top_k_percents, lift_columns, strict=True):
        row[column] = lift_at_top(y, score, k)
    if positives == 0:
        row["reason"] = "no positives among the labelled"
    elif positives == y.size:
        row["reason"] = "no negatives among the labelled: roc_auc undefined"
    return row
