from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp  # type: ignore[import-untyped]

from ml.drift import DriftMonitor, population_stability_index

WARN, FAIL = 0.1, 0.25
CATEGORIES = np.array(["A", "B", "C", "D", "E"], dtype=object)
TOKENS = [f"brand {i}" for i in range(20)]


def _psi_by_hand(reference: np.ndarray, current: np.ndarray, epsilon: float = 1e-4) -> float:
    """PSI written out: shares clipped at epsilon and renormalised, sum (c - r) ln(c / r)."""
    r = np.maximum(reference / reference.sum(), epsilon)
    c = np.maximum(current / current.sum(), epsilon)
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def _frame(
    n: int,
    seed: int,
    shift: float = 0.0,
    category_shares: list[float] | None = None,
    token_shares: list[float] | None = None,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 6, size=n)
    token_p = token_shares or [1 / len(TOKENS)] * len(TOKENS)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, size=n),
            "c": rng.choice(CATEGORIES, size=n, p=category_shares or [0.2] * 5),
            "s": [";".join(rng.choice(TOKENS, size=k, p=token_p)) for k in lengths],
        }
    )


def _monitor(**kwargs: int) -> DriftMonitor:
    return DriftMonitor(["x"], ["c"], ["s"], warn_psi=WARN, fail_psi=FAIL, **kwargs)


@pytest.fixture(scope="module")
def fitted() -> DriftMonitor:
    return _monitor().fit(_frame(20_000, seed=1))


def _row(report_columns: pd.DataFrame, column: str) -> pd.Series:
    return report_columns.set_index("column").loc[column]


# ------------------------------------------------------------------------------ PSI


def test_psi_hand_computed() -> None:
    # 0.1 ln(0.3/0.2) + 0 + (-0.1) ln(0.4/0.5)
    expected = 0.1 * math.log(1.5) - 0.1 * math.log(0.8)
    assert population_stability_index([20, 30, 50], [30, 30, 40]) == pytest.approx(expected)
    assert population_stability_index([2, 3, 5], [2, 3, 5]) == 0.0
    # Symmetric: the Jeffreys divergence.
    assert population_stability_index([1, 3], [3, 1]) == pytest.approx(
        population_stability_index([3, 1], [1, 3])
    )


def test_psi_empty_bin_counts_as_epsilon() -> None:
    reference, current = np.array([50.0, 50.0, 0.0]), np.array([40.0, 40.0, 20.0])
    assert population_stability_index(reference, current, epsilon=1e-3) == pytest.approx(
        _psi_by_hand(reference, current, epsilon=1e-3)
    )
    with pytest.raises(ValueError, match="bins"):
        population_stability_index([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="positive total"):
        population_stability_index([0, 0], [1, 2])


def test_numeric_psi_matches_an_independent_binning(fitted: DriftMonitor) -> None:
    reference = _frame(20_000, seed=1)["x"].to_numpy()
    current = _frame(5_000, seed=2, shift=0.3)["x"].to_numpy()
    # Deciles of the reference as observed values; bins right-closed, ends open.
    edges = np.sort(reference)[[2_000 * k - 1 for k in range(1, 10)]]
    assert fitted.reference_["x"]["edges"] == edges.tolist()
    bins = [-np.inf, *edges, np.inf]
    reference_counts = np.bincount(pd.cut(reference, bins, right=True, labels=False))
    current_counts = np.bincount(pd.cut(current, bins, right=True, labels=False), minlength=10)
    assert reference_counts.tolist() == fitted.reference_["x"]["counts"] == [2_000] * 10
    report = fitted.compare(pd.DataFrame({"x": current, "c": "A", "s": "brand 0"}))
    assert _row(report.columns, "x")["psi"] == pytest.approx(
        _psi_by_hand(reference_counts.astype(float), current_counts.astype(float)), rel=1e-12
    )
    ks = ks_2samp(np.asarray(fitted.reference_["x"]["sample"]), current)
    assert _row(report.columns, "x")["statistic"] == pytest.approx(ks.statistic)
    # 1,000 reference quantiles stand in for 20,000 rows: the statistic barely moves.
    assert ks.statistic == pytest.approx(ks_2samp(reference, current).statistic, abs=2e-3)


# --------------------------------------------------------------------- stationary / shifted


def test_stationary_sample_is_ok(fitted: DriftMonitor) -> None:
    report = fitted.compare(_frame(10_000, seed=2))
    assert report.status == "ok"
    assert (report.columns["psi"] < 0.01).all()
    assert report.columns["status"].tolist() == ["ok", "ok", "ok"]
    assert (report.columns["p_value"].dropna() > 0.01).all()


def test_mean_shift_of_half_a_standard_deviation_is_flagged(fitted: DriftMonitor) -> None:
    row = _row(fitted.compare(_frame(10_000, seed=2, shift=0.5)).columns, "x")
    assert row["psi"] >= WARN
    assert row["status"] in ("warn", "fail")
    assert row["p_value"] < 1e-10
    # The top of the distribution gains most: the open last bin.
    assert row["top_changes"].startswith("> ")


def test_doubled_category_share_is_flagged(fitted: DriftMonitor) -> None:
    current = _frame(10_000, seed=2, category_shares=[0.4, 0.15, 0.15, 0.15, 0.15])
    report = fitted.compare(current)
    row = _row(report.columns, "c")
    assert row["status"] in ("warn", "fail")
    assert row["p_value"] < 1e-10
    assert row["top_changes"].startswith("A: 19.7% -> 39.9%")
    assert _row(report.columns, "x")["status"] == "ok"
    assert report.status == row["status"]


def test_tripled_token_share_is_flagged(fitted: DriftMonitor) -> None:
    shares = [0.15] + [0.85 / 19] * 19
    row = _row(fitted.compare(_frame(10_000, seed=2, token_shares=shares)).columns, "s")
    assert row["status"] in ("warn", "fail")
    assert row["top_changes"].startswith("brand 0: ")
    assert math.isnan(row["statistic"]) and pd.isna(row["test"])


def test_status_thresholds() -> None:
    reference = pd.DataFrame({"c": ["A"] * 50 + ["B"] * 50})
    small_shift = pd.DataFrame({"c": ["A"] * 60 + ["B"] * 40})  # psi 0.0405
    for warn, fail, status in [(0.05, 0.1, "ok"), (0.04, 0.1, "warn"), (0.01, 0.041, "warn")]:
        monitor = DriftMonitor([], ["c"], [], warn_psi=warn, fail_psi=fail).fit(reference)
        assert monitor.compare(small_shift).status == status
    monitor = DriftMonitor([], ["c"], [], warn_psi=0.01, fail_psi=0.04).fit(reference)
    assert monitor.compare(small_shift).status == "fail"


# ------------------------------------------------------------------- bins, NULLs, unseen


def test_tied_quantiles_merge_and_outside_values_go_to_end_bins() -> None:
    reference = pd.DataFrame({"n": [0.0] * 70 + [1.0] * 20 + [2.0] * 10})
    monitor = DriftMonitor(["n"], [], [], warn_psi=WARN, fail_psi=FAIL).fit(reference)
    # Nine deciles collapse to two edges; every value sits inside its bin, none between.
    assert monitor.reference_["n"]["edges"] == [0.0, 1.0]
    assert monitor.reference_["n"]["counts"] == [70, 20, 10]
    assert monitor.compare(reference).columns.loc[0, "psi"] == 0.0
    report = monitor.compare(pd.DataFrame({"n": [-5.0, 0.0, 1.0, 9.0]}))
    shares = report.shares.set_index("bin")["current_share"].to_dict()
    assert shares == {"<= 0": 0.5, "(0, 1]": 0.25, "> 1": 0.25}


def test_numeric_nulls_are_their_own_bin() -> None:
    reference = pd.DataFrame({"x": np.arange(100, dtype=float)})
    monitor = DriftMonitor(["x"], [], [], warn_psi=WARN, fail_psi=FAIL, bins=4).fit(reference)
    assert monitor.reference_["x"]["nulls"] == 0
    current = pd.DataFrame({"x": [*np.arange(0, 100, 2, dtype=float), *[None] * 50]})
    report = monitor.compare(current)
    shares = report.shares.set_index("bin")
    assert shares.loc["NULL", "reference_share"] == 0.0
    assert shares.loc["NULL", "current_share"] == 0.5
    expected = _psi_by_hand(np.array([25, 25, 25, 25, 0.0]), np.array([13, 12, 12, 13, 50.0]))
    assert report.columns.loc[0, "psi"] == pytest.approx(expected)
    assert report.columns.loc[0, "status"] == "fail"
    # The KS test compares the values that are there: the same spread, no shift.
    assert report.columns.loc[0, "statistic"] < 0.05
    # Nullable dtypes read the same.
    nullable = monitor.compare(current.astype({"x": "Float64"}))
    assert nullable.columns.loc[0, "psi"] == report.columns.loc[0, "psi"]


def test_categorical_new_other_and_null() -> None:
    reference = pd.DataFrame({"c": ["A"] * 40 + ["B"] * 30 + ["C"] * 20 + [None] * 10})
    monitor = DriftMonitor([], ["c"], [], warn_psi=WARN, fail_psi=FAIL, top_categories=2)
    monitor.fit(reference)
    current = pd.DataFrame({"c": ["A"] * 30 + ["B"] * 30 + ["C"] * 10 + ["Z"] * 20 + [None] * 10})
    report = monitor.compare(current)
    shares = report.shares.set_index("bin")
    # For PSI the unseen Z joins the pooled tail with C.
    assert shares.index.tolist() == ["A", "B", "(other)", "NULL"]
    assert shares["reference_share"].tolist() == pytest.approx([0.4, 0.3, 0.2, 0.1])
    assert shares["current_share"].tolist() == pytest.approx([0.3, 0.3, 0.3, 0.1])
    row = report.columns.iloc[0]
    assert row["psi"] == pytest.approx(
        _psi_by_hand(np.array([40, 30, 20, 10.0]), np.array([30, 30, 30, 10.0]))
    )
    # The test sees every category (C is not pooled away, Z is a cell of its own) and
    # nothing is sparse here.
    table = np.array([[40, 30, 20, 0, 10], [30, 30, 10, 20, 10]])
    assert row["statistic"] == pytest.approx(chi2_contingency(table).statistic)
    assert row["top_changes"] == "(other): 20.0% -> 30.0%; A: 40.0% -> 30.0%"


def test_a_long_tail_of_new_categories_is_no_drift() -> None:
    # Every month brings cities never seen before; the distribution has not moved.
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"city": rng.choice([f"c{i}" for i in range(5000)], 20_000)})
    current = pd.DataFrame({"city": rng.choice([f"c{i}" for i in range(6000)], 5_000)})
    monitor = DriftMonitor([], ["city"], [], warn_psi=WARN, fail_psi=FAIL).fit(reference)
    row = monitor.compare(current).columns.iloc[0]
    assert row["status"] == "ok", row["psi"]


def test_sparse_categories_do_not_fake_a_significant_test() -> None:
    # 3,000 equally likely cities: the reference's "top" ones are top by chance, and
    # a test on them would call a stationary day drifted.
    cities = np.array([f"city {i}" for i in range(3000)], dtype=object)
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"city": rng.choice(cities, size=50_000)})
    current = pd.DataFrame({"city": rng.choice(cities, size=5_000)})
    monitor = DriftMonitor([], ["city"], [], warn_psi=WARN, fail_psi=FAIL).fit(reference)
    row = monitor.compare(current).columns.iloc[0]
    assert row["p_value"] > 0.05
    assert row["status"] == "ok"


def test_token_shares_over_top_tokens() -> None:
    reference = pd.DataFrame({"s": ["a;b", "a", "c", None]})
    monitor = DriftMonitor([], [], ["s"], warn_psi=WARN, fail_psi=FAIL, top_tokens=2)
    monitor.fit(reference)
    # b and c tie: the name breaks it, so the kept tokens never depend on row order.
    assert monitor.reference_["s"] == {
        "kind": "sequence",
        "tokens": ["a", "b"],
        "counts": [2, 1],
        "other": 1,
    }
    report = monitor.compare(pd.DataFrame({"s": ["c;c", "a", "new brand", ""]}))
    shares = report.shares.set_index("bin")
    assert shares["reference_share"].tolist() == [0.5, 0.25, 0.25]
    assert shares["current_share"].tolist() == [0.25, 0.0, 0.75]
    assert report.columns.loc[0, "psi"] == pytest.approx(
        _psi_by_hand(np.array([2, 1, 1.0]), np.array([1, 0, 3.0]))
    )


def test_sequence_without_tokens_fails() -> None:
    monitor = DriftMonitor([], [], ["s"], warn_psi=WARN, fail_psi=FAIL)
    monitor.fit(pd.DataFrame({"s": ["a;b", "a"]}))
    report = monitor.compare(pd.DataFrame({"s": [None, ""]}))
    assert math.isnan(report.columns.loc[0, "psi"])
    assert report.status == "fail"
    assert report.as_dict()["columns"][0]["psi"] is None


# ------------------------------------------------------------- serialisation, determinism


def test_json_round_trip_gives_identical_reports(fitted: DriftMonitor) -> None:
    stored = json.dumps(fitted.reference_dict(), allow_nan=False)
    restored = DriftMonitor.from_reference_dict(json.loads(stored), warn_psi=WARN, fail_psi=FAIL)
    assert restored.reference_ == fitted.reference_
    current = _frame(3_000, seed=5, shift=0.2, category_shares=[0.3, 0.1, 0.2, 0.2, 0.2])
    before, after = fitted.compare(current), restored.compare(current)
    pd.testing.assert_frame_equal(before.columns, after.columns)
    pd.testing.assert_frame_equal(before.shares, after.shares)
    assert before.as_dict() == after.as_dict()
    json.dumps(after.as_dict(), allow_nan=False)


def test_restored_thresholds_are_todays() -> None:
    reference = pd.DataFrame({"c": ["A"] * 50 + ["B"] * 50})
    stored = DriftMonitor([], ["c"], [], warn_psi=0.1, fail_psi=0.2).fit(reference).reference_dict()
    strict = DriftMonitor.from_reference_dict(stored, warn_psi=0.01, fail_psi=0.02)
    assert strict.compare(pd.DataFrame({"c": ["A"] * 60 + ["B"] * 40})).status == "fail"
    with pytest.raises(ValueError, match="format"):
        DriftMonitor.from_reference_dict({**stored, "format": 99}, warn_psi=0.1, fail_psi=0.2)


def test_deterministic_and_independent_of_row_order(fitted: DriftMonitor) -> None:
    reference = _frame(20_000, seed=1)
    shuffled = reference.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert _monitor().fit(shuffled).reference_dict() == fitted.reference_dict()
    current = _frame(2_000, seed=9, shift=0.1)
    first, second = fitted.compare(current), fitted.compare(current)
    pd.testing.assert_frame_equal(first.columns, second.columns)


# ------------------------------------------------------------------------------ errors


def test_errors() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "c": ["A", "B"]})
    with pytest.raises(RuntimeError, match="not fitted"):
        DriftMonitor(["x"], [], [], warn_psi=WARN, fail_psi=FAIL).compare(frame)
    with pytest.raises(ValueError, match="missing"):
        DriftMonitor(["y"], [], [], warn_psi=WARN, fail_psi=FAIL).fit(frame)
    with pytest.raises(ValueError, match="more than one kind"):
        DriftMonitor(["x"], ["x"], [], warn_psi=WARN, fail_psi=FAIL).fit(frame)
    with pytest.raises(ValueError, match="warn_psi"):
        DriftMonitor(["x"], [], [], warn_psi=0.3, fail_psi=0.2).fit(frame)
    with pytest.raises(ValueError, match="bins"):
        DriftMonitor(["x"], [], [], warn_psi=WARN, fail_psi=FAIL, bins=1).fit(frame)
    monitor = DriftMonitor(["x"], ["c"], [], warn_psi=WARN, fail_psi=FAIL).fit(frame)
    with pytest.raises(ValueError, match="missing"):
        monitor.compare(frame[["x"]])
    with pytest.raises(ValueError, match="no rows"):
        monitor.compare(frame.iloc[:0])
