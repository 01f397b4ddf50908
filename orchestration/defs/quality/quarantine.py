"""Future-dated order items, quarantined by dbt staging (stg_thelook__future_order_items),
reported by a non-blocking WARN check.

The loader keeps what arrived, an item dated 2999 included; staging leaves such items out
of every feature, label and evaluation window (dbt_project/macros/future_dated.sql says
which and why). So they are never fatal: the build and the runs after it go on, and
this check says how many rows of which day partitions wait for a correction.
"""

import dagster as dg
import pandas as pd

from orchestration.defs.features.assets import model_key
from orchestration.resources import Warehouse

QUARANTINE_MODEL = "stg_thelook__future_order_items"
QUARANTINE_TABLE = f"staging.{QUARANTINE_MODEL}"
CHECK_NAME = "future_dated_order_items"


def quarantine_result(quarantined: pd.DataFrame) -> dg.AssetCheckResult:
    """The check's result for the quarantined rows (columns of the quarantine model)."""
    if quarantined.empty:
        return dg.AssetCheckResult(
            check_name=CHECK_NAME,
            passed=True,
            description="no future-dated row in raw.order_items",
            metadata={"rows": 0},
        )
    by_partition = quarantined.groupby("partition_id").agg(
        rows=("order_item_id", "size"),
        newest_created_at=("created_at", "max"),
        received_at=("received_at", "max"),
    )
    ids = by_partition.index.tolist()
    shown = ", ".join(
        f"{pid} ({row.rows} row{'s' if row.rows != 1 else ''}, created_at up to "
        f"{row.newest_created_at:%Y-%m-%d %H:%M}, received {row.received_at:%Y-%m-%d %H:%M})"
        for pid, row in by_partition.head(5).iterrows()
    ) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    rows = len(quarantined)
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{rows} future-dated row{'s' if rows != 1 else ''} of raw.order_items "
            f"quarantined in {QUARANTINE_TABLE}, left out of features, labels and evaluation "
            f"windows (dated beyond dbt_project/macros/future_dated.sql's tolerance after raw "
            f"received them): partition{'s' if len(ids) != 1 else ''} {shown}. Load the "
            f"corrected whole day with `nextbuy load-thelook`, or remove it with "
            f"`nextbuy partitions drop {ids[0]}`"
        ),
        metadata={
            "rows": rows,
            "partitions": ", ".join(ids),
        },
    )


@dg.asset_check(
    asset=model_key(QUARANTINE_MODEL),
    name=CHECK_NAME,
    blocking=False,
    description=(
        "WARN when raw.order_items holds future-dated items (quarantined by dbt staging, "
        "never used): how many rows, in which day partitions."
    ),
)
def future_dated_order_items(warehouse: dg.ResourceParam[Warehouse]) -> dg.AssetCheckResult:
    return quarantine_result(
        warehouse.read_table(QUARANTINE_TABLE, order_by="partition_id, order_item_id")
    )
