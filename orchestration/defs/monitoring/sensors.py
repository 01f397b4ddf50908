"""retrain_on_drift: the `retrain` job when the drift check or the performance check
fails with ERROR severity."""

import dagster as dg

from orchestration.defs.monitoring.checks import AS_OF, CHAMPION, DRIFT_CHECK
from orchestration.defs.monitoring.performance import PERFORMANCE_CHECK

# Run tags of a retrain the sensor requested: the alert's run and what it found.
ALERT_RUN_TAG = "nextbuy/drift_alert_run"
DRIFTED_TAG = "nextbuy/drifted"
PERFORMANCE_ALERT_RUN_TAG = "nextbuy/performance_alert_run"
PERFORMANCE_TAG = "nextbuy/performance"
# Newest executions searched for one that finished.
_RECORDS_SEARCHED = 20
_TAG_CHARS = 200


def newest_evaluation(
    instance: dg.DagsterInstance, check: dg.AssetCheckKey
) -> tuple[str, dg.AssetCheckEvaluation] | None:
    """The run id and evaluation of the newest finished evaluation of ``check`` (newer
    executions may be planned, in a run under way, or skipped)."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        check, limit=_RECORDS_SEARCHED
    )
    for record in records:
        evaluation = record.event.asset_check_evaluation if record.event else None
        if evaluation is not None:
            return record.run_id, evaluation
    return None


def newest_drift_evaluation(
    instance: dg.DagsterInstance,
) -> tuple[str, dg.AssetCheckEvaluation] | None:
    """The newest finished evaluation of the drift check."""
    return newest_evaluation(instance, DRIFT_CHECK)


def alert_key(run_id: str, evaluation: dg.AssetCheckEvaluation) -> str:
    """One key per (scoring model, as-of date): the retrain job re-scores and re-checks
    the same date, so a key per run would make a retrain that keeps the champion ask for
    another, without end. Both checks name the model that scored the run's date and that
    date, so a drift alert and a performance alert of the same run share one retrain."""
    values = {name: evaluation.metadata.get(name) for name in (CHAMPION, AS_OF)}
    if any(value is None for value in values.values()):
        return run_id
    return f"{values[CHAMPION].value}@{values[AS_OF].value}"  # type: ignore[union-attr]


DESCRIPTION = (
    "Requests the `retrain` job when the newest evaluation of the drift check (a PSI at or "
    "above monitoring.fail_psi) or of the performance check (realised AUC or calibration "
    "beyond monitoring.fail_auc_drop / fail_calibration_error) failed with ERROR severity: "
    "once per scoring model and as-of date (the run key), so one alert causes one retrain."
)

# check -> (its name in messages, the tag of the alert's run, the tag of what it found,
# the metadata entry that says it).
_ALERTS = {
    DRIFT_CHECK: ("drift", ALERT_RUN_TAG, DRIFTED_TAG, "drifted_columns"),
    PERFORMANCE_CHECK: ("performance", PERFORMANCE_ALERT_RUN_TAG, PERFORMANCE_TAG, None),
}


@dg.sensor(
    job_name="retrain",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=DESCRIPTION,
)
def retrain_on_drift(
    context: dg.SensorEvaluationContext,
) -> dg.RunRequest | list[dg.RunRequest] | dg.SkipReason:
    requests: dict[str, dg.RunRequest] = {}
    skipped: list[str] = []
    for check, (name, run_tag, finding_tag, finding) in _ALERTS.items():
        newest = newest_evaluation(context.instance, check)
        if newest is None:
            skipped.append(f"the {name} check has not been evaluated yet")
            continue
        run_id, evaluation = newest
        if evaluation.passed:
            skipped.append(f"the newest {name} check (run {run_id}) passed")
            continue
        if evaluation.severity != dg.AssetCheckSeverity.ERROR:
            skipped.append(
                f"the newest {name} check (run {run_id}) only warned: {evaluation.description}"
            )
            continue
        found = evaluation.metadata.get(finding) if finding else None
        text = found.value if found is not None else evaluation.description
        key = alert_key(run_id, evaluation)
        tags = {run_tag: run_id, finding_tag: str(text or "")[:_TAG_CHARS]}
        if key in requests:
            # Both checks of one run: one retrain, tagged with both alerts.
            tags = {**requests[key].tags, **tags}
        as_of = evaluation.metadata.get(AS_OF)
        requests[key] = dg.RunRequest(
            run_key=key,
            # The retrain re-scores the alert's date (the jobs run per as-of date).
            partition_key=str(as_of.value) if as_of is not None else None,
            tags=tags,
        )
    if not requests:
        return dg.SkipReason("; ".join(skipped))
    found_requests = list(requests.values())
    return found_requests[0] if len(found_requests) == 1 else found_requests
