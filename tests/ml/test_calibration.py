"""Calibrated scores under drift, and the expected AUC under true probabilities."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from ml.calibration import Calibrated, calibration_errors
from ml.metrics import expected_roc_auc, roc_auc


class _Fixed:
    """A scorer whose probabilities are a column of X (stands in for a trained model)."""

    name = "fixed"
    is_probability = True

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return X["p"].to_numpy(dtype=np.float64)


def _drifted(n: int, seed: int, shift: float = 0.8) -> tuple[pd.DataFrame, np.ndarray]:
    """Scores a model learnt before the drift; labels from after it (logit + shift)."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(-1.4, 0.8, n)))
    truth = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + shift)))
    return pd.DataFrame({"p": p}), (rng.random(n) < truth).astype(float)


def test_calibration_tracks_the_recent_rate_and_keeps_every_ranking() -> None:
    window, y_window = _drifted(6000, seed=1)
    later, y_later = _drifted(6000, seed=2)
    calibrated = Calibrated(_Fixed()).fit(window, y_window)
    before = calibration_errors(y_later, _Fixed().predict_proba(later), bins=10)
    after = calibration_errors(y_later, calibrated.predict_proba(later), bins=10)
    assert before["in_the_large"] > 0.3  # the drift: far more buyers than scores say
    assert after["in_the_large"] < 0.05
    assert after["ece"] < before["ece"] / 3
    assert calibrated.slope > 0 and not calibrated.slope_fixed
    raw, new = _Fixed().predict_proba(later), calibrated.predict_proba(later)
    assert roc_auc(y_later, new) == roc_auc(y_later, raw)
    assert (np.argsort(raw, kind="stable") == np.argsort(new, kind="stable")).all()


def test_a_backwards_window_refits_only_the_intercept() -> None:
    window, y = _drifted(3000, seed=3)
    calibrated = Calibrated(_Fixed()).fit(window, 1 - y)  # labels that rank backwards
    assert calibrated.slope_fixed and calibrated.slope == 1.0
    assert calibrated.predict_proba(window).mean() == pytest.approx((1 - y).mean(), abs=1e-6)


def test_calibrated_scorer_pickles_and_passes_on_the_base_attributes() -> None:
    base = _Fixed()
    base.best_iteration_ = 17  # type: ignore[attr-defined]
    window, y = _drifted(500, seed=4)
    calibrated = cloudpickle.loads(cloudpickle.dumps(Calibrated(base).fit(window, y)))
    assert calibrated.best_iteration_ == 17
    assert calibrated.name == "fixed" and calibrated.fitted_on == 500
    with pytest.raises(ValueError, match="both labels"):
        Calibrated(_Fixed()).fit(window, np.zeros(500))


def test_expected_auc_is_the_mean_of_realised_aucs_without_their_noise() -> None:
    rng = np.random.default_rng(5)
    p = rng.beta(2, 5, 2000)
    score = p + rng.normal(0, 0.1, p.size)
    draws = [roc_auc((rng.random(p.size) < p).astype(float), score) for _ in range(400)]
    assert expected_roc_auc(p, score) == pytest.approx(np.mean(draws), abs=0.002)
    assert np.std(draws) > 0.005  # what one draw of labels adds
    labels = (rng.random(p.size) < p).astype(float)
    assert expected_roc_auc(labels, score) == pytest.approx(roc_auc(labels, score))
    assert expected_roc_auc(p, p) > expected_roc_auc(p, score)
    tied = np.round(score, 1)
    assert expected_roc_auc(p, tied) == pytest.approx(
        np.mean([roc_auc((rng.random(p.size) < p).astype(float), tied) for _ in range(400)]),
        abs=0.002,
    )
