"""nextbuy's pure machine-learning library: time-gapped split, the CatBoost propensity
model, the online challenger (River), rule baselines, metrics with a paired bootstrap,
and comparison plots.

No Dagster, no warehouse I/O: callers pass DataFrames shaped like the dbt marts and the
values of parameters.yaml, and get arrays, frames, dataclasses and figures back.
"""

from ml.baselines import OverallRate, PriorShareRule, RateByGroup, Scorer, rule_baselines
from ml.bootstrap import BootstrapDifference, paired_bootstrap_difference
from ml.calibration import Calibrated, calibration_errors
from ml.drift import DriftMonitor, DriftReport, population_stability_index
from ml.logistic import LogisticModel
from ml.metrics import (
    Evaluation,
    average_precision,
    brier_score,
    calibration_table,
    evaluate,
    expected_roc_auc,
    higher_is_better,
    lift_at_top,
    log_loss,
    metric_names,
    metric_value,
    precision_at_top,
    roc_auc,
)
from ml.model import PropensityModel
from ml.online import OnlineModel
from ml.plots import calibration_figure, gains_figure, roc_figure
from ml.realised import realised_performance
from ml.split import SplitWindows, TimeSplit, time_gapped_split

__all__ = [
    "BootstrapDifference",
    "Calibrated",
    "DriftMonitor",
    "DriftReport",
    "Evaluation",
    "LogisticModel",
    "OnlineModel",
    "OverallRate",
    "PriorShareRule",
    "PropensityModel",
    "RateByGroup",
    "Scorer",
    "SplitWindows",
    "TimeSplit",
    "average_precision",
    "brier_score",
    "calibration_errors",
    "calibration_figure",
    "calibration_table",
    "evaluate",
    "expected_roc_auc",
    "gains_figure",
    "higher_is_better",
    "lift_at_top",
    "log_loss",
    "metric_names",
    "metric_value",
    "paired_bootstrap_difference",
    "population_stability_index",
    "precision_at_top",
    "realised_performance",
    "roc_auc",
    "roc_figure",
    "rule_baselines",
    "time_gapped_split",
]
