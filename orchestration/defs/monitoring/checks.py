"""The drift check: a scored date's features and scores against the scoring model's
reference, warning at parameters.yaml's monitoring.warn_psi and failing (ERROR severity,
which asks for a retrain: sensors.py) at monitoring.fail_psi.

It is reported by the feature_drift asset itself (assets.py), from the report it computes,
and is not blocking: drift is news for people and for retraining, not a reason to stop
the campaign audience.
"""

import math

import dagster as dg

from ml.drift import DriftReport

DRIFT_KEY = dg.AssetKey(["monitoring", "feature_drift"])
DRIFT_CHECK = dg.AssetCheckKey(DRIFT_KEY, "drift")
# Metadata of an evaluation the retrain sensor reads back.
AS_OF = "as_of"
CHAMPION = "champion"

drift_check_spec = dg.AssetCheckSpec(
    DRIFT_CHECK.name,
    asset=DRIFT_KEY,
    blocking=False,
    description=(
        "Population Stability Index of every model feature and of the score against the "
        "scoring model's reference: WARN at monitoring.warn_psi, ERROR at monitoring.fail_psi."
    ),
)


def drifted(report: DriftReport) -> str:
    """The columns at or above warn_psi, worst first, e.g. "city 0.31 (fail), age 0.12 (warn)"."""
    rows = report.columns[report.columns["status"] != "ok"]
    rows = rows.sort_values("psi", ascending=False, na_position="first")
    return ", ".join(f"{r.column} {psi_text(r.psi)} ({r.status})" for r in rows.itertuples())


def psi_text(value: float) -> str:
    """PSI to three decimals; NaN is a sequence column without a single token today."""
    return "no values" if math.isnan(value) else f"{value:.3f}"


def drift_check_result(report: DriftReport, *, as_of: str, champion: str) -> dg.AssetCheckResult:
    """Passed when every column is under warn_psi; otherwise failed with WARN severity, or
    ERROR when one reaches fail_psi."""
    status = report.status
    worst = report.columns.sort_values("psi", ascending=False).iloc[0]
    if status == "ok":
        description = (
            f"No drift as of {as_of} against {champion}: every PSI is under "
            f"{report.warn_psi} (highest: {worst.column} {psi_text(worst.psi)})."
        )
    else:
        description = f"Drift ({status}) as of {as_of} against {champion}: {drifted(report)}."
    return dg.AssetCheckResult(
        check_name=DRIFT_CHECK.name,
        asset_key=DRIFT_KEY,
        passed=status == "ok",
        severity=dg.AssetCheckSeverity.ERROR if status == "fail" else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "status": status,
            AS_OF: as_of,
            CHAMPION: champion,
            "max_psi": float(report.columns["psi"].max()),
            "drifted_columns": drifted(report) or "(none)",
            "warn_psi": report.warn_psi,
            "fail_psi": report.fail_psi,
        },
    )


def unmeasured_check_result(reason: str, *, as_of: str, champion: str) -> dg.AssetCheckResult:
    """A WARN that drift went unmeasured (the model has no reference): not a drift alert,
    but monitoring is blind until the next champion, and people should see that."""
    return dg.AssetCheckResult(
        check_name=DRIFT_CHECK.name,
        asset_key=DRIFT_KEY,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"Drift not measured as of {as_of}: {reason}.",
        metadata={"status": "no reference", AS_OF: as_of, CHAMPION: champion},
    )
