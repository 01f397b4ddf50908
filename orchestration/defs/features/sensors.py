"""The sensors of the daily loop, one run after the other:

1. order_items_partitions: new or corrected day partitions of raw order_items (read from
   the warehouse's partitions table) -> one `features` run over those days;
2. features_ready: a feature build whose blocking checks passed -> one `daily` run for
   the as-of date it computed customer_features for (scores, audience, monitoring).

Two runs, because a run has one partitions definition: the feature build is keyed by the
raw days it processed, the scores by the date they are as of (jobs.py).
"""

import hashlib

import dagster as dg

from orchestration.partitions import (
    AS_OF_DATES,
    ORDER_ITEMS_DAYS,
    PartitionState,
    changed_partitions,
    cursor_of,
    data_as_of,
    plan_feature_run,
    processed_state,
    run_key,
)
from orchestration.removals import removed_from
from orchestration.resources import Warehouse

# Run tags: which partitions a run processed, and the date it scored as of.
PARTITIONS_TAG = "nextbuy/partitions"
AS_OF_TAG = "nextbuy/as_of"


def features_run_config(
    as_of: str | None, *, full_refresh: bool = False, rebuild: bool = False
) -> dict[str, object]:
    """The run config of a `features` run for one as-of date."""
    config = {"as_of": as_of, "full_refresh": full_refresh, "rebuild": rebuild}
    return {"ops": {"feature_models": {"config": config}}}


@dg.sensor(
    job_name="features",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests one `features` run for every set of new or changed (re-delivered, "
        "corrected) day partitions of raw.order_items: changed against what the last "
        "successful feature build processed (kept in the instance, whichever run built "
        "them). New days become partitions of order_items_days; the run covers them as one "
        "range (one dbt invocation); the run key is the set of (partition, "
        "last_modified_time), the cursor the state seen."
    ),
)
def order_items_partitions(
    context: dg.SensorEvaluationContext, warehouse: dg.ResourceParam[Warehouse]
) -> dg.SensorResult | dg.SkipReason:
    partitions = warehouse.partitions()
    processed = processed_state(context.instance)
    changed = changed_partitions(partitions, processed)
    if not changed and partitions and removed_from(partitions, processed):
        # Only removed days: a run keyed by the newest day, which the build itself turns
        # into a full refresh (orchestration/removals.py).
        changed = partitions[-1:]
    if not changed:
        return dg.SkipReason("no new or changed day partition of raw.order_items")
    as_of = data_as_of(partitions)
    if as_of is None:
        return dg.SkipReason(
            f"{len(changed)} partition(s) changed, but no day is complete yet to score as of"
        )
    plan = plan_feature_run(
        [p.partition_id for p in changed],
        context.instance.get_dynamic_partitions(ORDER_ITEMS_DAYS.name or ""),
    )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key(changed) + _removed_suffix(processed, partitions),
                run_config=features_run_config(as_of.isoformat(), rebuild=plan.rebuild),
                tags={
                    **plan.tags(),
                    PARTITIONS_TAG: plan.describe(len(changed)),
                    AS_OF_TAG: as_of.isoformat(),
                },
            )
        ],
        dynamic_partitions_requests=(
            [ORDER_ITEMS_DAYS.build_add_request(plan.register)] if plan.register else []
        ),
        cursor=cursor_of(partitions),
    )


def _removed_suffix(processed: dict[str, str], partitions: list[PartitionState]) -> str:
    """Part of the run key: which processed days raw has lost, so that a drop after a run
    of the same partition state still makes a run."""
    present = {p.partition_id for p in partitions}
    removed = sorted(set(processed) - present)
    digest = hashlib.sha256(",".join(removed).encode()).hexdigest()[:12]
    return f":removed:{len(removed)}:{digest}" if removed else ""


@dg.sensor(
    job_name="daily",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests one `daily` run (scores, audience, monitoring) for the as-of date of the "
        "newest build of customer_features, once its `features` run has succeeded (every "
        "dbt test and blocking check passed; a failed build is never scored) and unless "
        "that date was scored after the build. Run key: the date and the build's event."
    ),
)
def features_ready(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    from orchestration.defs.features.assets import AS_OF_METADATA, CUSTOMER_FEATURES_KEY
    from orchestration.defs.scoring.assets import SCORES_KEY

    newest = context.instance.fetch_materializations(CUSTOMER_FEATURES_KEY, limit=1).records
    if not newest or newest[0].event_log_entry.asset_materialization is None:
        return dg.SkipReason("customer_features has not been built yet")
    record = newest[0]
    event = record.event_log_entry
    as_of = event.asset_materialization.metadata.get(AS_OF_METADATA)  # type: ignore[union-attr]
    if as_of is None:
        return dg.SkipReason("the newest build of customer_features does not say its as-of date")
    date = str(as_of.value)
    run = context.instance.get_run_by_id(event.run_id)
    if run is None or run.status != dg.DagsterRunStatus.SUCCESS:
        state = run.status.value.lower() if run else "unknown"
        return dg.SkipReason(
            f"customer_features as of {date} is not scored: its run {event.run_id} is {state}"
            + (" (a dbt test or blocking check failed)" if state == "failure" else "")
        )
    scored = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=SCORES_KEY, asset_partitions=[date], after_storage_id=record.storage_id
        ),
        limit=1,
    )
    if scored.records:
        return dg.SkipReason(f"customer_features as of {date} is already scored")
    key = f"{date}@{record.storage_id}"
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=key,
                partition_key=date,
                tags={AS_OF_TAG: date, "nextbuy/features_run": event.run_id},
            )
        ],
        dynamic_partitions_requests=[AS_OF_DATES.build_add_request([date])],
        cursor=key,
    )
