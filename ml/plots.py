"""Figures comparing scorers on one evaluation set: ROC, cumulative gains and lift,
calibration.

Each function takes the labels and a mapping ``{name: score}`` (the model, the rule
baselines and, on simulated data, the simulator's true probabilities as the ceiling) and
returns a matplotlib ``Figure`` built without pyplot, so nothing is displayed and no
global state is touched: the caller saves or logs it (e.g. ``mlflow.log_figure``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve  # type: ignore[import-untyped]

from ml.metrics import _labels_and_scores, calibration_table, roc_auc

FloatArray = npt.NDArray[np.float64]


def _new_figure(columns: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(6.0 * columns, 5.0), layout="constrained")
    # Attaching the Agg canvas makes savefig work without pyplot or a display.
    FigureCanvasAgg(figure)
    return figure, [figure.add_subplot(1, columns, i + 1) for i in range(columns)]


def _rates(y: FloatArray, s: FloatArray) -> tuple[FloatArray, FloatArray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    # Every threshold, not only the ROC's corners: the lift curve is not linear between them.
    false_positive_rate, true_positive_rate, _ = roc_curve(y, s, drop_intermediate=False)
    return (
        np.asarray(false_positive_rate, dtype=np.float64),
        np.asarray(true_positive_rate, dtype=np.float64),
    )


def roc_figure(
    y_true: npt.ArrayLike, scores: Mapping[str, npt.ArrayLike], title: str = "ROC"
) -> Figure:
    """ROC curves of every scorer, AUC in the legend, and the chance diagonal.

    >>> from ml.plots import roc_figure
    >>> figure = roc_figure([0, 1, 0, 1], {"model": [0.2, 0.9, 0.4, 0.6], "rule": [0.5] * 4})
    >>> [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    ['model (AUC 1.000)', 'rule (AUC 0.500)', 'chance']
    """
    figure, (axes,) = _new_figure()
    for name, score in scores.items():
        y, s = _labels_and_scores(y_true, score)
        false_positive_rate, true_positive_rate = _rates(y, s)
        axes.plot(
            false_positive_rate, true_positive_rate, label=f"{name} (AUC {roc_auc(y, s):.3f})"
        )
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    axes.legend(loc="lower right")
    return figure


def gains_figure(
    y_true: npt.ArrayLike, scores: Mapping[str, npt.ArrayLike], title: str = "Gains and lift"
) -> Figure:
    """Left: share of positives reached when mailing the top x% (cumulative gains).
    Right: cumulative lift, the precision of the top x% over the overall rate.

    >>> from ml.plots import gains_figure
    >>> figure = gains_figure([0, 1, 0, 0], {"model": [0.2, 0.9, 0.4, 0.6]})
    >>> gains, lift = figure.axes
    >>> gains.get_lines()[0].get_ydata().tolist(), lift.get_lines()[0].get_ydata().tolist()
    ([0.0, 1.0, 1.0, 1.0, 1.0], [4.0, 2.0, 1.3333333333333333, 1.0])
    """
    figure, (gains, lift) = _new_figure(columns=2)
    for name, score in scores.items():
        y, s = _labels_and_scores(y_true, score)
        false_positive_rate, true_positive_rate = _rates(y, s)
        # Share of all rows above each threshold, written so that the last one is exactly 1.
        targeted = false_positive_rate + y.mean() * (true_positive_rate - false_positive_rate)
        gains.plot(targeted, true_positive_rate, label=name)
        lift.plot(targeted[1:], true_positive_rate[1:] / targeted[1:], label=name)
    gains.plot([0, 1], [0, 1], linestyle=":", color="grey", label="random")
    gains.set(xlabel="share of customers targeted", ylabel="share of positives reached")
    lift.axhline(1.0, linestyle=":", color="grey", label="random")
    lift.set(xlabel="share of customers targeted", ylabel="cumulative lift")
    for axes in (gains, lift):
        axes.legend(loc="best")
    figure.suptitle(title)
    return figure


def calibration_figure(
    y_true: npt.ArrayLike,
    scores: Mapping[str, npt.ArrayLike],
    bins: int,
    title: str = "Calibration",
) -> Figure:
    """Mean score against observed positive rate per equal-count bin; the diagonal is
    perfect calibration. Pass only scorers whose scores are probabilities.

    >>> from ml.plots import calibration_figure
    >>> figure = calibration_figure([0, 0, 1, 1], {"model": [0.1, 0.3, 0.6, 0.8]}, bins=2)
    >>> model_line = figure.axes[0].get_lines()[0]
    >>> model_line.get_xdata().tolist(), model_line.get_ydata().tolist()
    ([0.2, 0.7], [0.0, 1.0])
    """
    figure, (axes,) = _new_figure()
    upper = 0.0
    for name, score in scores.items():
        table = calibration_table(y_true, score, bins)
        axes.plot(table["mean_score"], table["observed_rate"], marker="o", label=name)
        upper = max(upper, float(table["mean_score"].max()), float(table["observed_rate"].max()))
    axes.plot([0, upper], [0, upper], linestyle=":", color="grey", label="perfect")
    axes.set(xlabel="mean predicted probability", ylabel="observed rate", title=title)
    axes.legend(loc="upper left")
    return figure
