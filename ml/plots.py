"""Figures comparing scorers on one evaluation set (ROC, cumulative gains and lift,
calibration) and monitoring a scorer afterwards (drift per column, the score's
distribution against its reference, realised performance over time).

The evaluation figures take the labels and a mapping ``{name: score}`` (the model, the
rule baselines and, on simulated data, the simulator's true probabilities as the
ceiling); the monitoring figures take the data frames ``ml.drift`` and ``ml.realised``
return. Each returns a matplotlib ``Figure`` built without pyplot, so nothing is
displayed and no global state is touched: the caller saves or logs it (e.g.
``mlflow.log_figure``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from sklearn.metrics import roc_curve  # type: ignore[import-untyped]

from ml.metrics import _labels_and_scores, calibration_table, metric_value

FloatArray = npt.NDArray[np.float64]


def _new_figure(columns: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(6.0 * columns, 5.0), layout="constrained")
    # Attaching the Agg canvas makes savefig work without pyplot or a display.
    FigureCanvasAgg(figure)
    return figure, [figure.add_subplot(1, columns, i + 1) for i in range(columns)]


def figure_png(figure: Figure, dpi: int = 72, colours: int = 256) -> bytes:
    """The figure as a small PNG: rendered at ``dpi`` and reduced to a palette of
    ``colours`` (a third of the bytes for these line plots, no visible change), for pages
    that embed images inline, such as Dagster's metadata.

    >>> from ml.plots import figure_png, roc_figure
    >>> data = figure_png(roc_figure([0, 1, 0, 1], {"model": [0.2, 0.9, 0.4, 0.6]}))
    >>> data[:8] == b"\\x89PNG\\r\\n\\x1a\\n", len(data) < 20_000
    (True, True)
    """
    rendered = io.BytesIO()
    figure.savefig(rendered, format="png", dpi=dpi)
    rendered.seek(0)
    with Image.open(rendered) as image:
        palette = image.convert("RGB").quantize(colors=colours)
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _rates(y: FloatArray, s: FloatArray) -> tuple[FloatArray, FloatArray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    # Every threshold, not only the ROC's corners: the lift curve is not linear between them.
    false_positive_rate, true_positive_rate, _ = roc_curve(y, s, drop_intermediate=False)
    return (
        np.asarray(false_positive_rate, dtype=np.float64),
        np.asarray(true_positive_rate, dtype=np.float64),
    )


def ranks_within(score: FloatArray, strata: npt.ArrayLike | None) -> FloatArray:
    """Each score as its percentile rank within its stratum (average ranks for ties), so
    that a threshold on the pooled ranks takes the same share of every stratum: the
    curves of a backtest then target the top x% of each test window, as a campaign would.

    >>> import numpy as np
    >>> from ml.plots import ranks_within
    >>> ranks_within(np.array([0.1, 0.9, 5.0, 7.0]), ["a", "a", "b", "b"]).tolist()
    [0.5, 1.0, 0.5, 1.0]
    """
    if strata is None:
        return score
    frame = pd.DataFrame({"score": score, "stratum": np.asarray(strata).ravel()})
    ranks = frame.groupby("stratum")["score"].rank(method="average", pct=True)
    return ranks.to_numpy(dtype=np.float64)


def roc_figure(
    y_true: npt.ArrayLike,
    scores: Mapping[str, npt.ArrayLike],
    title: str = "ROC",
    strata: npt.ArrayLike | None = None,
) -> Figure:
    """ROC curves of every scorer, AUC in the legend, and the chance diagonal. With
    ``strata`` (the backtest fold of each row) the curves rank each stratum on its own
    (``ranks_within``) and the AUC counts pairs within a stratum, as the report's.

    >>> from ml.plots import roc_figure
    >>> figure = roc_figure([0, 1, 0, 1], {"model": [0.2, 0.9, 0.4, 0.6], "rule": [0.5] * 4})
    >>> [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    ['model (AUC 1.000)', 'rule (AUC 0.500)', 'chance']
    """
    figure, (axes,) = _new_figure()
    for name, score in scores.items():
        y, s = _labels_and_scores(y_true, score)
        auc = metric_value("roc_auc", y, s, strata)
        false_positive_rate, true_positive_rate = _rates(y, ranks_within(s, strata))
        axes.plot(false_positive_rate, true_positive_rate, label=f"{name} (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    axes.legend(loc="lower right")
    return figure


def gains_figure(
    y_true: npt.ArrayLike,
    scores: Mapping[str, npt.ArrayLike],
    title: str = "Gains and lift",
    strata: npt.ArrayLike | None = None,
) -> Figure:
    """Left: share of positives reached when mailing the top x% (cumulative gains).
    Right: cumulative lift, the precision of the top x% over the overall rate. With
    ``strata`` the top x% is taken of each stratum (``ranks_within``).

    >>> from ml.plots import gains_figure
    >>> figure = gains_figure([0, 1, 0, 0], {"model": [0.2, 0.9, 0.4, 0.6]})
    >>> gains, lift = figure.axes
    >>> gains.get_lines()[0].get_ydata().tolist(), lift.get_lines()[0].get_ydata().tolist()
    ([0.0, 1.0, 1.0, 1.0, 1.0], [4.0, 2.0, 1.3333333333333333, 1.0])
    """
    figure, (gains, lift) = _new_figure(columns=2)
    for name, score in scores.items():
        y, s = _labels_and_scores(y_true, score)
        false_positive_rate, true_positive_rate = _rates(y, ranks_within(s, strata))
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


# Colours of a drift status, as the report's tables show them.
STATUS_COLOURS = {"ok": "tab:green", "warn": "tab:orange", "fail": "tab:red"}


def psi_figure(
    columns: pd.DataFrame, warn_psi: float, fail_psi: float, title: str = "Drift per column"
) -> Figure:
    """One horizontal bar per column of ``ml.drift.DriftReport.columns`` (column, psi,
    status), worst at the top, coloured by status, with the warn and fail thresholds.
    A column without a PSI (a sequence without a token today) is drawn at fail_psi.

    >>> import pandas as pd
    >>> from ml.plots import psi_figure
    >>> columns = pd.DataFrame({"column": ["age", "city"], "psi": [0.02, 0.3],
    ...                         "status": ["ok", "fail"]})
    >>> figure = psi_figure(columns, warn_psi=0.1, fail_psi=0.25)
    >>> [label.get_text() for label in figure.axes[0].get_yticklabels()]
    ['age', 'city']
    """
    rows = columns.sort_values("psi", ascending=True, na_position="last")
    psi = rows["psi"].to_numpy(dtype=np.float64, na_value=np.nan)
    figure = Figure(figsize=(6.0, 1.0 + 0.3 * max(len(rows), 1)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.barh(
        rows["column"].astype(str).tolist(),
        np.where(np.isnan(psi), fail_psi, psi),
        color=[STATUS_COLOURS.get(str(s), "grey") for s in rows["status"]],
    )
    axes.axvline(warn_psi, linestyle=":", color=STATUS_COLOURS["warn"], label=f"warn {warn_psi:g}")
    axes.axvline(fail_psi, linestyle=":", color=STATUS_COLOURS["fail"], label=f"fail {fail_psi:g}")
    axes.set(xlabel="PSI", title=title)
    axes.legend(loc="lower right")
    return figure


def distribution_figure(
    shares: pd.DataFrame, title: str = "Score distribution: reference and current"
) -> Figure:
    """The shares of one column's bins (``bin``, ``reference_share``, ``current_share``,
    as in ``ml.drift.DriftReport.shares``) side by side, in the reference's bin order.

    >>> import pandas as pd
    >>> from ml.plots import distribution_figure
    >>> shares = pd.DataFrame({"bin": ["<= 0.2", "> 0.2"], "reference_share": [0.5, 0.5],
    ...                        "current_share": [0.3, 0.7]})
    >>> figure = distribution_figure(shares)
    >>> [[float(bar.get_height()) for bar in bars] for bars in figure.axes[0].containers]
    [[0.5, 0.5], [0.3, 0.7]]
    """
    figure, (axes,) = _new_figure()
    position = np.arange(len(shares))
    width = 0.4
    axes.bar(position - width / 2, shares["reference_share"], width, label="reference")
    axes.bar(position + width / 2, shares["current_share"], width, label="current")
    axes.set_xticks(position, shares["bin"].astype(str).tolist(), rotation=45, ha="right")
    axes.set(ylabel="share of customers", title=title)
    axes.legend(loc="best")
    return figure


def realised_figure(
    table: pd.DataFrame, lift_column: str, title: str = "Realised performance by as-of date"
) -> Figure:
    """Realised performance over the as-of dates of ``table`` (``ml.realised.
    realised_performance`` rows with ``eval_roc_auc`` and ``eval_<lift_column>``, the
    scoring model's figures on its test window, beside them):

    - ROC-AUC realised (points) against the evaluation-time AUC (line);
    - the lift ``lift_column`` likewise;
    - calibration: the positive rate of the labelled against their mean score;
    - the customers labelled and still pending per date (stacked bars).

    >>> import pandas as pd
    >>> from ml.plots import realised_figure
    >>> table = pd.DataFrame({
    ...     "as_of": pd.to_datetime(["2026-07-01", "2026-07-02"]), "roc_auc": [0.6, None],
    ...     "eval_roc_auc": [0.62, 0.62], "lift_at_10": [1.5, None],
    ...     "eval_lift_at_10": [1.6, 1.6], "positive_rate": [0.3, 0.25],
    ...     "mean_score": [0.25, 0.25], "n_labelled": [1200, 300], "n_pending": [0, 900]})
    >>> figure = realised_figure(table, "lift_at_10")
    >>> auc, lift, calibration, counts = figure.axes
    >>> [text.get_text() for text in auc.get_legend().get_texts()]
    ['realised', 'at evaluation']
    >>> [round(bar.get_height()) for bar in counts.containers[1]]
    [0, 900]
    """
    figure = Figure(figsize=(12.0, 8.0), layout="constrained")
    FigureCanvasAgg(figure)
    auc, lift, calibration, counts = (figure.add_subplot(2, 2, i + 1) for i in range(4))
    dates = pd.to_datetime(table["as_of"])
    for axes, column, label in (
        (auc, "roc_auc", "ROC-AUC"),
        (lift, lift_column, lift_column.replace("_", " ")),
    ):
        axes.plot(dates, table[column], marker="o", linestyle="-", label="realised")
        axes.plot(
            dates,
            table[f"eval_{column}"],
            drawstyle="steps-post",
            linestyle="--",
            color="grey",
            label="at evaluation",
        )
        axes.set(ylabel=label)
    auc.axhline(0.5, linestyle=":", color="lightgrey")
    lift.axhline(1.0, linestyle=":", color="lightgrey")
    calibration.plot(dates, table["positive_rate"], marker="o", label="positive rate (realised)")
    calibration.plot(dates, table["mean_score"], marker="x", linestyle="--", label="mean score")
    calibration.set(ylabel="share of the labelled")
    labelled = table["n_labelled"].to_numpy(dtype=np.float64)
    pending = table["n_pending"].to_numpy(dtype=np.float64)
    # Bars a day wide on a date axis.
    counts.bar(dates, labelled, width=0.8, label="labelled")
    counts.bar(dates, pending, width=0.8, bottom=labelled, label="pending")
    counts.set(ylabel="customers")
    for axes in (auc, lift, calibration, counts):
        axes.legend(loc="best")
        axes.tick_params(axis="x", labelrotation=30)
    figure.suptitle(title)
    return figure
