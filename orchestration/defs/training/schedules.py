"""When the champion is retrained on the clock: parameters.yaml's retraining.schedule."""

import dagster as dg

from orchestration.settings import load_parameters


@dg.schedule(
    name="weekly_retrain",
    job_name="retrain",
    cron_schedule=load_parameters().retraining.schedule,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Train a candidate, gate it against the champion and rescore the newest scored "
        "as-of date, every week."
    ),
)
def weekly_retrain(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    from orchestration.partitions import AS_OF_DATES

    dates = context.instance.get_dynamic_partitions(AS_OF_DATES.name or "")
    if not dates:
        return dg.SkipReason("nothing has been scored yet, so there is no date to retrain for")
    # The newest date: the one customer_features is computed as of after the daily loop.
    return dg.RunRequest(partition_key=max(dates))
