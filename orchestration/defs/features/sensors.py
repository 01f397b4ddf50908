"""The sensor that starts the daily loop: new or corrected day partitions of raw
order_items, read from the warehouse's partitions table."""

import dagster as dg

from orchestration.partitions import (
    changed_partitions,
    cursor_of,
    data_as_of,
    processed_state,
    read_partitions,
    run_key,
)
from orchestration.resources import WarehouseResource

# Run tags: which partitions a daily run processed, and the date it scored as of.
PARTITIONS_TAG = "nextbuy/partitions"
AS_OF_TAG = "nextbuy/as_of"


def daily_run_config(as_of: str | None, full_refresh: bool = False) -> dict[str, object]:
    """The run config of the `daily` and `pipeline` jobs for one as-of date."""
    return {"ops": {"feature_models": {"config": {"as_of": as_of, "full_refresh": full_refresh}}}}


@dg.sensor(
    job_name="daily",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests one `daily` run for every set of new or changed (re-delivered, corrected) "
        "day partitions of raw.order_items: changed against what the last successful "
        "feature build processed (kept in the instance, whichever run built them); the run "
        "key is the set of (partition, last_modified_time), the cursor the state seen."
    ),
)
def order_items_partitions(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    from pathlib import Path

    partitions = read_partitions(Path(warehouse.path))
    changed = changed_partitions(partitions, processed_state(context.instance))
    if not changed:
        return dg.SkipReason("no new or changed day partition of raw.order_items")
    as_of = data_as_of(partitions)
    if as_of is None:
        return dg.SkipReason(
            f"{len(changed)} partition(s) changed, but no day is complete yet to score as of"
        )
    ids = [p.partition_id for p in changed]
    shown = ",".join(ids) if len(ids) <= 10 else f"{ids[0]}..{ids[-1]} ({len(ids)} partitions)"
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key(changed),
                run_config=daily_run_config(as_of.isoformat()),
                tags={PARTITIONS_TAG: shown, AS_OF_TAG: as_of.isoformat()},
            )
        ],
        cursor=cursor_of(partitions),
    )
