"""When the champion is retrained on the clock: parameters.yaml's retraining.schedule."""

import dagster as dg

from orchestration.settings import load_parameters

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job_name="retrain",
    cron_schedule=load_parameters().retraining.schedule,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Train a candidate, gate it against the champion and rescore, every week.",
)
