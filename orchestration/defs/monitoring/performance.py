"""The `performance` check of monitoring/realised_performance (realised.py).

Labels arrive late: when a date is scored, all its customers are pending. The check
therefore judges the newest scored date (up to the partition's) with at least
monitoring.min_labelled labelled customers, against the evaluation-time figures of the
model that scored it (its MLflow run's test-window metrics): its realised ROC-AUC against
the AUC on the test window (monitoring.warn_auc_drop / fail_auc_drop) and, when the
scores are probabilities, calibration-in-the-large, |positive rate / mean score - 1|
(monitoring.warn_calibration_error / fail_calibration_error). It fails with ERROR, which
asks for a retrain (sensors.py), only while the model that scored the judged date still
scores (it scored the partition's date too): an alert about a model already replaced
could not be answered by a retrain, so it only warns.

Not blocking: realised performance is news for people and for retraining, not a reason to
stop the campaign audience.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg
import pandas as pd

from orchestration.defs.monitoring.checks import AS_OF, CHAMPION
from orchestration.settings import MonitoringSettings

if TYPE_CHECKING:
    from orchestration.defs.monitoring.realised import Performance, ScoringModel

REALISED_KEY = dg.AssetKey(["monitoring", "realised_performance"])
PERFORMANCE_CHECK = dg.AssetCheckKey(REALISED_KEY, "performance")
# Statuses of the check, worst last.
STATUSES = ("ok", "warn", "fail")
NOT_JUDGED = "not judged"

performance_check_spec = dg.AssetCheckSpec(
    PERFORMANCE_CHECK.name,
    asset=REALISED_KEY,
    blocking=False,
    description=(
        "The newest scored date with monitoring.min_labelled outcomes against the scoring "
        "model's test window: WARN / ERROR when its realised ROC-AUC is monitoring."
        "warn_auc_drop / fail_auc_drop below, or its positive rate departs from the mean "
        "score by monitoring.warn_calibration_error / fail_calibration_error (relative)."
    ),
)


@dataclass(frozen=True)
class Judgement:
    """The check's verdict on the newest judged date (None: no date has enough outcomes)."""

    status: str
    description: str
    judged: pd.Series | None
    auc_drop: float
    calibration_error: float
    # The scorer of the judged date no longer scores: its verdict cannot ask for a retrain.
    replaced: bool


def judge(
    performance: Performance,
    settings: MonitoringSettings,
    scorer_label: str,
    probabilities: Callable[[ScoringModel], bool],
) -> Judgement:
    """The check's verdict: the newest date up to the partition's with min_labelled
    labelled customers, its realised AUC against the evaluation-time AUC of its model and
    (when ``probabilities`` says its scores are probabilities) its positive rate against
    its mean score."""
    table = performance.table
    judgeable = table[table["n_labelled"] >= settings.min_labelled]
    if judgeable.empty:
        most = table.sort_values(["n_labelled", "as_of"]).iloc[-1]
        return Judgement(
            NOT_JUDGED,
            f"No date up to {performance.as_of} has monitoring.min_labelled="
            f"{settings.min_labelled:,} labelled customers yet (most: {most['as_of']} with "
            f"{most['n_labelled']:,}, {most['n_pending']:,} pending): nothing to judge.",
            None,
            math.nan,
            math.nan,
            replaced=False,
        )
    judged = judgeable.iloc[-1]
    model = performance.models[judged["model_version"]]
    calibrated = probabilities(model)
    auc_drop = float(judged["eval_roc_auc"] - judged["roc_auc"])
    calibration_error = (
        abs(judged["positive_rate"] / judged["mean_score"] - 1)
        if calibrated and judged["mean_score"] > 0
        else math.nan
    )
    auc_status = _status(auc_drop, settings.warn_auc_drop, settings.fail_auc_drop)
    calibration_status = _status(
        calibration_error, settings.warn_calibration_error, settings.fail_calibration_error
    )
    status = max(auc_status, calibration_status, key=STATUSES.index)
    replaced = model.label != scorer_label
    findings = [
        f"ROC-AUC {_number(judged['roc_auc'])} against {_number(judged['eval_roc_auc'])} "
        f"at evaluation ({auc_status})",
        (
            f"positive rate {_number(judged['positive_rate'])} against mean score "
            f"{_number(judged['mean_score'])} ({calibration_status})"
            if calibrated
            else "calibration not judged: the scores are a ranking, not probabilities"
        ),
    ]
    description = (
        f"{judged['as_of']} ({judged['n_labelled']:,} labelled, {judged['n_pending']:,} "
        f"pending) scored by {model.label}: " + "; ".join(findings) + "."
    )
    if replaced and status == "fail":
        description += f" {model.label} no longer scores ({scorer_label} does): no retrain."
    return Judgement(status, description, judged, auc_drop, calibration_error, replaced)


def _status(value: float, warn: float, fail: float) -> str:
    if math.isnan(value):
        return "ok"
    return "fail" if value >= fail else "warn" if value >= warn else "ok"


def _number(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):.3f}"


def metadata_value(value: Any) -> Any:
    """Metadata values: NaN as None, numpy scalars as Python ones."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def performance_check_result(
    judgement: Judgement, settings: MonitoringSettings, *, as_of: str, champion: str
) -> dg.AssetCheckResult:
    """Passed when the judged date is within every threshold (or no date has enough
    outcomes yet); WARN, or ERROR at a fail threshold while its model still scores."""
    judged = judgement.judged
    error = judgement.status == "fail" and not judgement.replaced
    metadata: dict[str, Any] = {
        "status": judgement.status,
        AS_OF: as_of,
        CHAMPION: champion,
        "min_labelled": settings.min_labelled,
        "warn_auc_drop": settings.warn_auc_drop,
        "fail_auc_drop": settings.fail_auc_drop,
        "warn_calibration_error": settings.warn_calibration_error,
        "fail_calibration_error": settings.fail_calibration_error,
    }
    if judged is not None:
        metadata |= {
            "judged_as_of": str(judged["as_of"]),
            "judged_model": str(judged["model"]),
            "labelled": int(judged["n_labelled"]),
            "pending": int(judged["n_pending"]),
            "roc_auc": metadata_value(float(judged["roc_auc"])),
            "eval_roc_auc": metadata_value(float(judged["eval_roc_auc"])),
            "auc_drop": metadata_value(judgement.auc_drop),
            "positive_rate": metadata_value(float(judged["positive_rate"])),
            "mean_score": metadata_value(float(judged["mean_score"])),
            "calibration_error": metadata_value(judgement.calibration_error),
        }
    return dg.AssetCheckResult(
        check_name=PERFORMANCE_CHECK.name,
        asset_key=REALISED_KEY,
        passed=judgement.status in ("ok", NOT_JUDGED),
        severity=dg.AssetCheckSeverity.ERROR if error else dg.AssetCheckSeverity.WARN,
        description=judgement.description,
        metadata={k: v for k, v in metadata.items() if v is not None},
    )
