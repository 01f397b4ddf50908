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

from ml.metrics import _labels_and_scores, _Ranked, calibration_table, roc_auc

FloatArray = npt.NDArray[np.float64]


def _new_figure(columns: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(6.0 * columns, 5.0), layout="constrained")
    # Attaching the Agg canvas makes savefig work without pyplot or a display.
    FigureCanvasAgg(figure)
    return figure, [figure.add_subplot(1, columns, i + 1) for i in range(columns)]


def _cumulative_counts(y: FloatArray, s: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Cumulative positives and negatives at each distinct threshold, from the top."""
    ranked = _Ranked.of(y, s)
    positives, negatives = ranked.group_sums(np.ones((1, y.size)))
    zero = np.zeros(1)
    return (
        np.concatenate([zero, np.cumsum(positives[0])]),
        np.concatenate([zero, np.cumsum(negatives[0])]),
    )


def roc_figure(
    y_true: npt.ArrayLike, scores: Mapping[str, npt.ArrayLike], title: str = "ROC"
) -> Figure:
    """ROC curves of every scorer, AUC in the legend, and the chance diagonal."""
    figure, (axes,) = _new_figure()
    for name, score in scores.items():
        y, s = _labels_and_scores(y_true, score)
        true_positives, false_positives = _cumulative_counts(y, s)
        axes.plot(
            false_positives / false_positives[-1],
            true_positives / true_positives[-1],
            label=f"{name} (AUC {roc_auc(y, s):.3f})",
        )
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    axes.legend(loc="lower right")
    return figure


def gains_figure(
    y_true: npt.ArrayLike, scores: Mapping[str, npt.ArrayLike], title: str = "Gains and lift"
) -> Figure:
    """Left: share of positives reached when mailing the top x% (cumulative gains).
    Right: cumulative lift, the precision of the top x% over the overall rate."""
    figure, (gains, lift) = _new_figure(columns=2)
    for name, score in scores.items():
        y, s = _labels_and_scores(y_true, score)
        true_positives, false_positives = _cumulative_counts(y, s)
        reached = true_positives + false_positives
        targeted = reached / reached[-1]
        gains.plot(targeted, true_positives / true_positives[-1], label=name)
        base_rate = true_positives[-1] / reached[-1]
        lift.plot(targeted[1:], true_positives[1:] / reached[1:] / base_rate, label=name)
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
    perfect calibration. Pass only scorers whose scores are probabilities."""
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
