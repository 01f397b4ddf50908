from __future__ import annotations

import math
import time

import numpy as np
import pytest
from sklearn.metrics import (  # type: ignore[import-untyped]
    average_precision_score,
    roc_auc_score,
)

from ml.bootstrap import paired_bootstrap_difference
from ml.metrics import (
    average_precision,
    brier_score,
    calibration_table,
    evaluate,
    expected_roc_auc,
    lift_at_top,
    log_loss,
    metric_names,
    metric_value,
    missing_reason,
    precision_at_top,
    roc_auc,
    slice_comparison,
)


def test_roc_auc_hand_cases() -> None:
    y = [0, 0, 1, 1]
    assert roc_auc(y, [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc(y, [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5
    # Positives 0.8 and 0.35 against negatives 0.4 and 0.1: three of four pairs won.
    assert roc_auc([1, 0, 1, 0], [0.8, 0.4, 0.35, 0.1]) == 0.75
    # A tied positive/negative pair counts one half: (1 + 0.5) / 2.
    assert roc_auc([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1]) == pytest.approx(0.875)


def test_average_precision_hand_case() -> None:
    # Positives at ranks 1 and 3: (1/1 + 2/3) / 2.
    assert average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(5 / 6)


def test_agrees_with_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(7)
    y = (rng.random(3000) < 0.15).astype(int)
    score = np.round(rng.random(3000) + 0.4 * y, 1)  # heavy ties
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert average_precision(y, score) == pytest.approx(
        average_precision_score(y, score), abs=1e-12
    )


def test_precision_and_lift_at_top_k() -> None:
    y = np.zeros(100)
    y[:10] = 1
    score = np.linspace(1.0, 0.0, 100)
    assert precision_at_top(y, score, 10) == 1.0
    assert lift_at_top(y, score, 10) == pytest.approx(10.0)
    assert precision_at_top(y, score, 20) == 0.5
    assert lift_at_top(y, score, 20) == pytest.approx(5.0)
    # 20 rows, positives ranked 1st, 3rd and 15th: the top 10% is 2 rows with 1 positive.
    y20 = np.zeros(20)
    y20[[0, 2, 14]] = 1
    score20 = np.linspace(1.0, 0.0, 20)
    assert precision_at_top(y20, score20, 10) == 0.5
    assert lift_at_top(y20, score20, 10) == pytest.approx(0.5 / 0.15)


def test_top_k_ties_are_fractional_and_order_free() -> None:
    # All scores tied: the top 10% holds the average of the group, i.e. the base rate.
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    assert precision_at_top(y, np.full(10, 0.3), 10) == pytest.approx(0.3)
    assert lift_at_top(y, np.full(10, 0.3), 10) == pytest.approx(1.0)
    # A tie straddling the cut: one clear winner (positive) + half of a tied pair (1 pos, 1 neg)
    # for the top 20% of 10 rows = 2 rows -> (1 + 0.5) / 2.
    y2 = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    s2 = np.array([0.9, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert precision_at_top(y2, s2, 20) == pytest.approx(0.75)
    permutation = np.random.default_rng(0).permutation(10)
    assert precision_at_top(y2[permutation], s2[permutation], 20) == pytest.approx(0.75)


def test_log_loss_and_brier() -> None:
    assert log_loss([1, 0], [0.8, 0.2]) == pytest.approx(-math.log(0.8))
    assert brier_score([1, 0], [0.8, 0.2]) == pytest.approx(0.04)
    assert math.isfinite(log_loss([1, 0], [0.0, 1.0]))


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="only 0 and 1"):
        roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="missing or infinite"):
        roc_auc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="unknown metric"):
        paired_bootstrap_difference([0, 1], [0.1, 0.2], [0.2, 0.1], "accuracy", 10, 0, 0.95)


def test_calibration_table_equal_count_bins() -> None:
    score = np.arange(100) / 100
    y = (np.arange(100) % 4 == 0).astype(int)
    table = calibration_table(y, score, bins=10)
    assert table["bin"].tolist() == list(range(1, 11))
    assert table["count"].tolist() == [10] * 10
    assert table.loc[0, "mean_score"] == pytest.approx(0.045)
    assert table.loc[0, "observed_rate"] == pytest.approx(0.3)  # rows 0, 4, 8
    # Tied scores always share a bin, even when that leaves bins empty.
    tied = calibration_table([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], bins=4)
    assert tied["count"].tolist() == [4]


def test_evaluate_overall_and_slices() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    y = (rng.random(n) < 0.3).astype(int)
    score = np.clip(0.3 + 0.2 * (y - 0.3) + rng.normal(0, 0.1, n), 0.01, 0.99)
    gender = np.where(np.arange(n) % 2 == 0, "F", "M").astype(object)
    gender[:5] = None  # a thin NULL slice: too few positives for any metric
    result = evaluate(y, score, {"gender": gender}, top_k_percents=[10, 20], min_slice_positives=30)
    assert result.overall["roc_auc"] == pytest.approx(roc_auc(y, score))
    assert result.overall["lift_at_10"] == pytest.approx(lift_at_top(y, score, 10))
    assert result.overall["n"] == n
    assert set(metric_names([10, 20])) <= set(result.overall)
    table = result.by_slice.set_index("value")
    assert list(table.index) == ["F", "M", "NULL"]
    assert table.loc["NULL", "n"] == 5
    assert table["roc_auc"].isna()["NULL"]
    female = gender == "F"
    assert table.loc["F", "roc_auc"] == pytest.approx(roc_auc(y[female], score[female]))
    flat = result.flat()
    assert flat["gender.F.roc_auc"] == table.loc["F", "roc_auc"]
    assert math.isnan(flat["gender.NULL.lift_at_20"])
    cities = evaluate(
        y, score, {"city": np.full(n, "Val-d'Or")}, top_k_percents=[10], min_slice_positives=30
    )
    assert "city.Val-d_Or.roc_auc" in cities.flat()


def test_evaluate_rankings_have_no_log_loss() -> None:
    y = [0, 1, 0, 1]
    result = evaluate(
        y, [1.0, 7.0, 2.0, 9.0], top_k_percents=[50], min_slice_positives=1, probabilities=False
    )
    assert result.overall["roc_auc"] == 1.0
    assert math.isnan(result.overall["log_loss"])
    assert math.isnan(result.overall["brier"])
    assert result.by_slice.empty


def test_missing_metrics_say_why() -> None:
    # Overall: only one class; a ranking's log loss.
    assert missing_reason("roc_auc", 10, 0) == "n/a: only one class (no positives)"
    assert missing_reason("roc_auc", 10, 10) == "n/a: only one class (no negatives)"
    assert missing_reason("pr_auc", 10, 0) == "n/a: no positives"
    assert missing_reason("lift_at_10", 10, 0) == "n/a: no positives"
    assert missing_reason("brier", 10, 0) == ""  # defined with one class
    assert missing_reason("roc_auc", 10, 3) == ""
    assert missing_reason("log_loss", 10, 3, probabilities=False) == (
        "n/a: scores are not probabilities"
    )
    # A slice value: too few positives or negatives blanks every metric, counts stay.
    assert missing_reason("roc_auc", 400, 12, min_slice_positives=30) == (
        "n/a: fewer than 30 positives (12)"
    )
    assert missing_reason("base_rate", 40, 35, min_slice_positives=30) == (
        "n/a: fewer than 30 negatives (5)"
    )
    assert missing_reason("lift_at_10", 40, 0, min_slice_positives=30) == (
        "n/a: only one class (no positives)"
    )
    assert missing_reason("n", 40, 0, min_slice_positives=30) == ""


def test_readable_tables_replace_every_nan_with_a_reason() -> None:
    rng = np.random.default_rng(4)
    n = 600
    y = (rng.random(n) < 0.3).astype(int)
    score = rng.random(n) + 0.3 * y
    gender = np.where(np.arange(n) % 2 == 0, "F", "M").astype(object)
    gender[:8] = None  # thin: a handful of rows
    y[np.arange(n) % 2 == 1] = 0  # every M is negative: one class
    y[:8] = [1, 0, 1, 0, 0, 0, 0, 0]  # two positives in the thin NULL slice
    result = evaluate(
        y,
        score,
        {"gender": gender},
        top_k_percents=[10],
        min_slice_positives=20,
        probabilities=False,
    )
    overall = result.readable_overall()
    assert overall["log_loss"] == "n/a: scores are not probabilities"
    assert overall["roc_auc"] == f"{result.overall['roc_auc']:.4f}"
    assert overall["n"] == "600"
    table = result.readable_by_slice(note=False).set_index("slice")
    assert list(table.index) == ["gender = F", "gender = M", "gender = NULL"]
    assert table.loc["gender = M", "roc_auc"] == "n/a: only one class (no positives)"
    assert table.loc["gender = NULL", "lift_at_10"] == "n/a: fewer than 20 positives (2)"
    assert table.loc["gender = F", "log_loss"] == "n/a: scores are not probabilities"
    assert table.loc["gender = F", "roc_auc"].startswith("0.")
    # No bare NaN or n/a left anywhere, and the numeric table is unchanged (MLflow's).
    assert not table.isin(["nan", "NaN", "n/a"]).any().any()
    assert math.isnan(result.by_slice.set_index("value").loc["M", "roc_auc"])
    # A row missing everything for one reason says it once, in its note.
    noted = result.readable_by_slice().set_index("slice")
    assert noted.loc["gender = M", "note"] == "n/a: only one class (no positives)"
    assert set(noted.loc["gender = M"].drop(["n", "positives", "note"])) == {"n/a"}
    assert noted.loc["gender = NULL", "note"] == "n/a: fewer than 20 positives (2)"
    assert noted.loc["gender = F", "note"] == ""
    assert noted.loc["gender = F", "log_loss"] == "n/a: scores are not probabilities"
    bare = noted.drop(columns="note").isin(["n/a"]).any(axis=1)
    assert (noted.loc[bare, "note"] != "").all()
    assert all(math.isfinite(v) or math.isnan(v) for v in result.flat().values())


def test_slice_comparison_puts_scorers_side_by_side() -> None:
    y = np.array([1, 0, 1, 0, 1, 0, 0, 0])
    slices = {"gender": np.array(["F", "F", "F", "F", "M", "M", "M", "M"], dtype=object)}
    evaluations = {
        name: evaluate(y, s, slices, top_k_percents=[50], min_slice_positives=2)
        for name, s in {
            "model": np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.2, 0.1]),
            "rule": np.full(8, 0.4),
        }.items()
    }
    table = slice_comparison(evaluations, "roc_auc", lambda c, v: f"{c} is {v}")
    assert table.columns.tolist() == ["slice", "n", "positives", "model", "rule", "note"]
    assert table["slice"].tolist() == ["gender is F", "gender is M"]
    assert table[["model", "rule", "note"]].iloc[0].tolist() == ["1.0000", "0.5000", ""]
    # Too thin for both scorers: the reason once.
    assert table[["model", "rule", "note"]].iloc[1].tolist() == [
        "n/a",
        "n/a",
        "n/a: fewer than 2 positives (1)",
    ]


def _scores_of_two_qualities(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    good = y + rng.normal(0, 0.6, n)
    poor = y + rng.normal(0, 1.5, n)
    return y, good, poor


def test_bootstrap_excludes_zero_for_a_clearly_better_scorer() -> None:
    y, good, poor = _scores_of_two_qualities(4000, seed=2)
    result = paired_bootstrap_difference(y, good, poor, "roc_auc", 300, 11, 0.95)
    assert result.difference == pytest.approx(roc_auc(y, good) - roc_auc(y, poor))
    assert result.lower > 0
    assert result.a_is_better
    assert result.excludes_zero
    reverse = paired_bootstrap_difference(y, poor, good, "lift_at_10", 300, 11, 0.95)
    assert reverse.upper < 0
    assert not reverse.a_is_better


def test_bootstrap_includes_zero_for_identical_and_equivalent_scorers() -> None:
    y, good, _ = _scores_of_two_qualities(4000, seed=3)
    same = paired_bootstrap_difference(y, good, good.copy(), "roc_auc", 200, 5, 0.95)
    assert same.difference == 0.0
    assert same.lower == 0.0 and same.upper == 0.0
    assert not same.excludes_zero
    rng = np.random.default_rng(4)
    twin = y + rng.normal(0, 0.6, y.size)  # same quality, different noise
    equivalent = paired_bootstrap_difference(y, good, twin, "roc_auc", 300, 5, 0.95)
    assert equivalent.lower < 0 < equivalent.upper
    assert not equivalent.a_is_better


def test_bootstrap_lower_is_better_metrics() -> None:
    rng = np.random.default_rng(5)
    truth = rng.uniform(0.05, 0.6, 3000)
    y = (rng.random(3000) < truth).astype(int)
    result = paired_bootstrap_difference(y, truth, np.full(3000, y.mean()), "log_loss", 300, 1, 0.9)
    assert result.upper < 0
    assert result.a_is_better


def test_bootstrap_equals_explicit_resampling() -> None:
    """The weighted kernels give exactly the metric of each explicitly drawn resample."""
    rng = np.random.default_rng(9)
    n, n_boot, seed = 40, 25, 123
    y = np.tile([0, 1], n // 2)
    a = np.round(rng.random(n) + 0.3 * y, 1)
    b = np.round(rng.random(n), 1)
    result = paired_bootstrap_difference(y, a, b, "roc_auc", n_boot, seed, 0.8)
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    explicit = np.array([roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]) for i in draws])
    assert result.bootstrap_mean == pytest.approx(explicit.mean(), abs=1e-12)
    assert result.lower == pytest.approx(np.quantile(explicit, 0.1), abs=1e-12)
    assert result.upper == pytest.approx(np.quantile(explicit, 0.9), abs=1e-12)


def test_bootstrap_is_reproducible_and_fast() -> None:
    y, good, poor = _scores_of_two_qualities(50_000, seed=6)
    started = time.perf_counter()
    first = paired_bootstrap_difference(y, good, poor, "roc_auc", 1000, 42, 0.95)
    elapsed = time.perf_counter() - started
    second = paired_bootstrap_difference(y, good, poor, "roc_auc", 1000, 42, 0.95)
    assert first == second
    assert elapsed < 30, f"1000 resamples of 50k rows took {elapsed:.1f}s"


def test_bootstrap_by_customer_is_wider_when_rows_repeat_a_customer() -> None:
    """Ten examples of each customer are not ten independent examples: resampling rows
    would make the interval about sqrt(10) times too narrow; resampling customers does
    not, and matches the interval of one row per customer."""
    y1, good1, poor1 = _scores_of_two_qualities(800, seed=6)
    once = paired_bootstrap_difference(y1, good1, poor1, "roc_auc", 400, 3, 0.95)
    y, good, poor = (np.repeat(v, 10) for v in (y1, good1, poor1))
    customers = np.repeat(np.arange(800), 10)
    by_row = paired_bootstrap_difference(y, good, poor, "roc_auc", 400, 3, 0.95)
    by_customer = paired_bootstrap_difference(
        y, good, poor, "roc_auc", 400, 3, 0.95, groups=customers
    )
    assert by_customer.difference == pytest.approx(once.difference)
    assert by_customer.units == 800 and by_row.units == 8000
    assert by_row.standard_error < 0.5 * by_customer.standard_error
    assert by_customer.standard_error == pytest.approx(once.standard_error, rel=0.25)
    assert by_customer.detectable_difference > 2.5 * by_row.detectable_difference
    with pytest.raises(ValueError, match="groups has 3 keys for 8000 rows"):
        paired_bootstrap_difference(y, good, poor, "roc_auc", 10, 3, 0.95, groups=[1, 2, 3])


def test_detectable_difference_is_the_power_calculation_on_the_standard_error() -> None:
    """2.80 standard errors (1.96 + 0.84): the difference a 95% test finds 80% of the time;
    it shrinks like 1 / sqrt(rows)."""
    small = paired_bootstrap_difference(
        *_scores_of_two_qualities(1000, seed=8), "roc_auc", 400, 1, 0.95
    )
    large = paired_bootstrap_difference(
        *_scores_of_two_qualities(16000, seed=8), "roc_auc", 400, 1, 0.95
    )
    assert small.detectable_difference == pytest.approx(2.8016 * small.standard_error, rel=1e-3)
    assert large.detectable_difference == pytest.approx(small.detectable_difference / 4, rel=0.3)


def _by_stratum(y: np.ndarray, s: np.ndarray, strata: np.ndarray) -> dict[str, float]:
    """Stratified metrics written out from per-stratum counts, independently of the
    weighted kernels: pairs and top-k% counted inside each stratum, then pooled."""
    wins = pairs = top_positives = cutoff = ap_sum = 0.0
    for key in np.unique(strata):
        ys, ss = y[strata == key], s[strata == key]
        positives, negatives = ys.sum(), ys.size - ys.sum()
        if positives and negatives:
            wins += roc_auc_score(ys, ss) * positives * negatives
            pairs += positives * negatives
        if positives:
            ap_sum += average_precision_score(ys, ss) * positives
        take = 0.2 * ys.size
        top_positives += precision_at_top(ys, ss, 20) * take
        cutoff += take
    precision = top_positives / cutoff
    return {
        "roc_auc": wins / pairs,
        "pr_auc": ap_sum / y.sum(),
        "precision_at_20": precision,
        "lift_at_20": precision / y.mean(),
    }


def test_stratified_metrics_count_only_rows_of_one_stratum() -> None:
    """With strata (the backtest's folds), ranking metrics are the per-stratum ones pooled
    by their pairs, positives or cut-offs; a monotone map per stratum (calibration) leaves
    them unchanged while the unstratified ones move; losses ignore strata."""
    rng = np.random.default_rng(4)
    n = 600
    strata = rng.integers(1, 4, n)
    y = (rng.random(n) < 0.15 + 0.1 * strata).astype(float)
    s = np.round(rng.random(n) + 0.4 * y, 2)  # ties inside strata
    expected = _by_stratum(y, s, strata)
    for metric, value in expected.items():
        assert metric_value(metric, y, s, strata) == pytest.approx(value, abs=1e-12), metric
    # Per-stratum monotone maps: stratified metrics identical, pooled ones not.
    mapped = np.where(strata == 1, s / 10, np.where(strata == 2, s + 3, s**2))
    for metric in expected:
        assert metric_value(metric, y, mapped, strata) == pytest.approx(
            metric_value(metric, y, s, strata), abs=1e-12
        )
    assert metric_value("roc_auc", y, mapped) != pytest.approx(metric_value("roc_auc", y, s))
    assert metric_value("brier", y, s / 2, strata) == brier_score(y, s / 2)
    # One stratum is the unstratified metric; the same for the expected AUC.
    assert metric_value("roc_auc", y, s, np.zeros(n)) == pytest.approx(roc_auc(y, s), abs=1e-12)
    p = np.clip(s / 1.5, 0, 1)
    assert expected_roc_auc(p, mapped, strata) == pytest.approx(
        expected_roc_auc(p, s, strata), abs=1e-12
    )
    assert expected_roc_auc(p, s, np.zeros(n)) == pytest.approx(expected_roc_auc(p, s))
    # The bootstrap with strata: resampled stratified AUCs, observed value the same.
    result = paired_bootstrap_difference(y, s, mapped, "roc_auc", 200, 1, 0.9, strata=strata)
    assert result.difference == 0 and result.lower == result.upper == 0
    with pytest.raises(ValueError, match="strata has 3 keys for 600 rows"):
        metric_value("roc_auc", y, s, strata[:3])


def test_evaluate_with_strata_is_stratified_overall_and_per_slice() -> None:
    rng = np.random.default_rng(5)
    n = 400
    strata = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.3).astype(float)
    s = rng.random(n) + 0.3 * y + strata
    gender = rng.choice(["F", "M"], n)
    result = evaluate(
        y,
        s,
        {"gender": gender},
        top_k_percents=[10],
        min_slice_positives=5,
        probabilities=False,
        strata=strata,
    )
    assert result.overall["roc_auc"] == pytest.approx(metric_value("roc_auc", y, s, strata))
    female = result.by_slice.set_index("value").loc["F"]
    f = gender == "F"
    assert female["lift_at_10"] == pytest.approx(metric_value("lift_at_10", y[f], s[f], strata[f]))
