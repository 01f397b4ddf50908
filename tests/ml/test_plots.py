from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from ml.plots import calibration_figure, gains_figure, roc_figure


def _scores() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.05, 0.6, 500)
    y = (rng.random(500) < truth).astype(int)
    return y, {
        "true probability": truth,
        "model": np.clip(truth + rng.normal(0, 0.1, 500), 0, 1),
        "overall rate": np.full(500, y.mean()),
    }


def _renders(figure: Figure) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"


def test_roc_figure_has_one_curve_per_scorer() -> None:
    y, scores = _scores()
    figure = roc_figure(y, scores)
    (axes,) = figure.axes
    assert len(axes.get_lines()) == len(scores) + 1  # + chance diagonal
    legend = axes.get_legend()
    assert legend is not None
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels[2] == "overall rate (AUC 0.500)"
    false_positive_rate = np.asarray(axes.get_lines()[0].get_xdata())
    assert false_positive_rate[0] == 0 and false_positive_rate[-1] == 1
    _renders(figure)


def test_gains_figure_has_gains_and_lift() -> None:
    y, scores = _scores()
    figure = gains_figure(y, scores)
    gains, lift = figure.axes
    assert len(gains.get_lines()) == len(scores) + 1
    constant_lift = np.asarray(lift.get_lines()[2].get_ydata())
    assert constant_lift[-1] == 1.0  # a constant score has lift 1 everywhere
    _renders(figure)


def test_calibration_figure() -> None:
    y, scores = _scores()
    figure = calibration_figure(y, scores, bins=10)
    (axes,) = figure.axes
    assert np.asarray(axes.get_lines()[0].get_xdata()).size == 10
    _renders(figure)
