"""retrain_on_drift: the `retrain` job when the drift check fails with ERROR severity."""

import dagster as dg

from orchestration.defs.monitoring.checks import AS_OF, CHAMPION, DRIFT_CHECK

# Run tags of a retrain the sensor requested: the alert's run and what drifted.
ALERT_RUN_TAG = "nextbuy/drift_alert_run"
DRIFTED_TAG = "nextbuy/drifted"
# Newest executions searched for one that finished.
_RECORDS_SEARCHED = 20


def newest_drift_evaluation(
    instance: dg.DagsterInstance,
) -> tuple[str, dg.AssetCheckEvaluation] | None:
    """The run id and evaluation of the newest finished evaluation of the drift check
    (newer executions may be planned, in a run under way, or skipped, for want of a
    reference)."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        DRIFT_CHECK, limit=_RECORDS_SEARCHED
    )
    for record in records:
        evaluation = record.event.asset_check_evaluation if record.event else None
        if evaluation is not None:
            return record.run_id, evaluation
    return None


def alert_key(run_id: str, evaluation: dg.AssetCheckEvaluation) -> str:
    """One key per (scoring model, as-of date): the retrain job re-scores and re-checks
    the same date, so a key per run would make a retrain that keeps the champion ask for
    another, without end."""
    values = {name: evaluation.metadata.get(name) for name in (CHAMPION, AS_OF)}
    if any(value is None for value in values.values()):
        return run_id
    return f"{values[CHAMPION].value}@{values[AS_OF].value}"  # type: ignore[union-attr]


DESCRIPTION = (
    "Requests the `retrain` job when the newest evaluation of the drift check failed with "
    "ERROR severity (a PSI at or above monitoring.fail_psi): once per scoring model and "
    "as-of date (the run key), so one alert causes one retrain."
)


@dg.sensor(
    job_name="retrain",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=DESCRIPTION,
)
def retrain_on_drift(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    newest = newest_drift_evaluation(context.instance)
    if newest is None:
        return dg.SkipReason("the drift check has not been evaluated yet")
    run_id, evaluation = newest
    if evaluation.passed:
        return dg.SkipReason(f"the newest drift check (run {run_id}) passed")
    if evaluation.severity != dg.AssetCheckSeverity.ERROR:
        return dg.SkipReason(
            f"the newest drift check (run {run_id}) only warned: {evaluation.description}"
        )
    drifted = evaluation.metadata.get("drifted_columns")
    return dg.RunRequest(
        run_key=alert_key(run_id, evaluation),
        tags={
            ALERT_RUN_TAG: run_id,
            DRIFTED_TAG: str(drifted.value if drifted is not None else "")[:200],
        },
    )
