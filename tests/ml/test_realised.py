from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml.realised import realised_performance

DAY_1, DAY_2, DAY_3 = (pd.Timestamp(f"2026-07-0{day}") for day in (1, 2, 3))


@pytest.fixture
def scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5, 6, 1, 2, 3, 7, 8, 9],
            "as_of": [DAY_1] * 6 + [DAY_2] * 3 + [DAY_3] * 3,
            "score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.6, 0.5, 0.4],
        }
    )


@pytest.fixture
def outcomes() -> pd.DataFrame:
    # Day 1: customers 1-4 labelled, 5 pending (NULL), 6 without an outcome row; customer
    # 99 was never scored. Day 2: one label only. Day 3: three labels, all negative.
    rows = [
        (1, DAY_1, 1),
        (2, DAY_1, 0),
        (3, DAY_1, 1),
        (4, DAY_1, 0),
        (5, DAY_1, None),
        (99, DAY_1, 1),
        (1, DAY_2, 0),
        (7, DAY_3, 0),
        (8, DAY_3, 0),
        (9, DAY_3, 0),
    ]
    return pd.DataFrame(rows, columns=["customer_id", "as_of", "label"])


def test_known_outcomes(scores: pd.DataFrame, outcomes: pd.DataFrame) -> None:
    table = realised_performance(scores, outcomes, top_k_percents=[25, 50], min_labelled=3)
    assert table.columns.tolist() == [
        "as_of",
        "n",
        "n_labelled",
        "n_pending",
        "positives",
        "positive_rate",
        "mean_score",
        "roc_auc",
        "lift_at_25",
        "lift_at_50",
        "reason",
    ]
    assert table["as_of"].tolist() == [DAY_1, DAY_2, DAY_3]
    assert table["n"].tolist() == [6, 3, 3]
    assert table["n_labelled"].tolist() == [4, 1, 3]
    assert table["n_pending"].tolist() == [2, 2, 0]
    assert table["positives"].tolist() == [2, 0, 0]

    day_1 = table.iloc[0]
    # Labelled: 0.9 (1), 0.8 (0), 0.7 (1), 0.6 (0). Positive 0.9 beats both negatives,
    # 0.7 beats one: 3 of 4 pairs.
    assert day_1["roc_auc"] == 0.75
    assert day_1["positive_rate"] == 0.5
    assert day_1["mean_score"] == pytest.approx(0.75)  # of the labelled only
    assert day_1["lift_at_25"] == 2.0  # the top row is positive: 1 / 0.5
    assert day_1["lift_at_50"] == 1.0  # one of the top two: 0.5 / 0.5
    assert day_1["reason"] == ""

    day_2 = table.iloc[1]
    assert math.isnan(day_2["roc_auc"]) and math.isnan(day_2["lift_at_25"])
    assert day_2["reason"] == "1 labelled, fewer than min_labelled=3"
    # Counts, rate and mean score are reported below min_labelled too.
    assert day_2["positive_rate"] == 0.0 and day_2["mean_score"] == pytest.approx(0.3)

    day_3 = table.iloc[2]
    assert math.isnan(day_3["roc_auc"]) and math.isnan(day_3["lift_at_50"])
    assert day_3["positive_rate"] == 0.0
    assert day_3["reason"] == "no positives among the labelled"


def test_no_negatives_has_lift_but_no_auc() -> None:
    scores = pd.DataFrame({"customer_id": [1, 2], "as_of": DAY_1, "score": [0.4, 0.6]})
    outcomes = pd.DataFrame({"customer_id": [1, 2], "as_of": DAY_1, "label": [1, 1]})
    row = realised_performance(scores, outcomes, top_k_percents=[50], min_labelled=1).iloc[0]
    assert math.isnan(row["roc_auc"])
    assert row["lift_at_50"] == 1.0
    assert row["reason"].startswith("no negatives")


def test_nothing_labelled_yet(scores: pd.DataFrame) -> None:
    no_outcomes = pd.DataFrame({"customer_id": [], "as_of": [], "label": []}).astype(
        {"customer_id": "int64", "as_of": "datetime64[ns]", "label": "float64"}
    )
    table = realised_performance(scores, no_outcomes, top_k_percents=[10], min_labelled=1)
    assert table["n_labelled"].tolist() == [0, 0, 0]
    assert table["n_pending"].tolist() == [6, 3, 3]
    assert table["positive_rate"].isna().all() and table["mean_score"].isna().all()
    assert (table["reason"] == "0 labelled, fewer than min_labelled=1").all()


def test_errors(scores: pd.DataFrame, outcomes: pd.DataFrame) -> None:
    with pytest.raises(pd.errors.MergeError):
        realised_performance(
            pd.concat([scores, scores.head(1)]), outcomes, top_k_percents=[10], min_labelled=1
        )
    with pytest.raises(ValueError, match="0 and 1"):
        bad = outcomes.assign(label=outcomes["label"].replace({1: 2}))
        realised_performance(scores, bad, top_k_percents=[10], min_labelled=1)
    with pytest.raises(ValueError, match="lacks columns"):
        realised_performance(
            scores, outcomes.drop(columns="label"), top_k_percents=[10], min_labelled=1
        )
    with pytest.raises(ValueError, match="min_labelled"):
        realised_performance(scores, outcomes, top_k_percents=[10], min_labelled=0)


def test_calibration_in_the_large_on_known_probabilities() -> None:
    """Scores that are the true probabilities: the realised positive rate meets the mean
    score; outcomes 1.5 times as likely (a campaign) show as a ratio of 1.5, while the
    scores still rank (the AUC stays well above chance)."""
    rng = np.random.default_rng(0)
    n = 20_000
    truth = rng.uniform(0.05, 0.45, n)
    scores = pd.DataFrame({"customer_id": np.arange(n), "as_of": DAY_1, "score": truth})
    draws = rng.random(n)
    stationary = scores.assign(label=(draws < truth).astype(int))
    shifted = scores.assign(label=(draws < 1.5 * truth).astype(int))
    rows = {
        name: realised_performance(scores, outcomes, top_k_percents=[10], min_labelled=1000).iloc[0]
        for name, outcomes in (("stationary", stationary), ("shifted", shifted))
    }
    same, moved = rows["stationary"], rows["shifted"]
    assert same["mean_score"] == moved["mean_score"] == pytest.approx(truth.mean())
    assert same["positive_rate"] / same["mean_score"] == pytest.approx(1.0, abs=0.03)
    assert moved["positive_rate"] / moved["mean_score"] == pytest.approx(1.5, abs=0.05)
    assert min(same["roc_auc"], moved["roc_auc"]) > 0.6
    assert same["lift_at_10"] > 1.3
