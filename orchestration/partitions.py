"""What the warehouse's partitions table says: which day partitions of raw order_items
exist, when each last changed, and the date the data supports scoring as of.

Locally the table is the loader's `meta.partitions`, modelled on BigQuery's
INFORMATION_SCHEMA.PARTITIONS (one row per table and partition_id YYYYMMDD, with
total_rows and last_modified_time). **Dates follow the data**: the as-of date of a run is
the day after the newest *complete* day, never the machine's clock. A day is complete once
its partition was last written after the day ended; a partition written before its own
day was over (an export's future-dated items, a partial load of today) is not, so it
cannot move the as-of date forward.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from thelook.schema import NULL_PARTITION_ID, PARTITION_ID_FORMAT, RAW_SCHEMA

ORDER_ITEMS = "order_items"
# What Dagster shows per day. Both are dynamic, not daily: the partitions table holds only
# the days that have rows (a shop's history starts on its own first day and can skip
# days), a day can be re-delivered long after it passed, and the dates follow the data,
# not the clock a DailyPartitionsDefinition is bounded by.
# The raw order_items day partitions a feature build processed (keys: partition_id).
ORDER_ITEMS_DAYS = dg.DynamicPartitionsDefinition(name="order_items_days")
# The as-of dates scored (keys: YYYY-MM-DD): scores, audience and monitoring per date.
AS_OF_DATES = dg.DynamicPartitionsDefinition(name="as_of_dates")
# Where the Dagster instance keeps the partition states the last successful feature build
# processed (partition_id -> last_modified_time): what "new" means to the sensor.
PROCESSED_KEY = "nextbuy/processed_partitions/raw.order_items"
# BigQuery's pseudo-partitions: rows with a NULL partitioning column, and rows still in the
# streaming buffer / of an unpartitioned table. Neither is a day.
PSEUDO_PARTITIONS = frozenset({NULL_PARTITION_ID, "__UNPARTITIONED__"})


@dataclass(frozen=True, order=True)
class PartitionState:
    """One day partition of raw order_items as the partitions table describes it."""

    partition_id: str  # YYYYMMDD
    last_modified_time: dt.datetime  # UTC, naive
    total_rows: int = 0

    @property
    def day(self) -> dt.date:
        return dt.datetime.strptime(self.partition_id, PARTITION_ID_FORMAT).date()

    @property
    def complete(self) -> bool:
        """Written after the day ended, so it holds the whole day."""
        return self.last_modified_time >= dt.datetime.combine(
            self.day + dt.timedelta(days=1), dt.time()
        )

    @property
    def version(self) -> str:
        """What identifies this state of the partition: its id and last modification."""
        return f"{self.partition_id}@{self.last_modified_time.isoformat()}"


def day_partitions(rows: Iterable[tuple[object, object, object]]) -> list[PartitionState]:
    """Partition states from (partition_id, last_modified_time, total_rows) rows, without
    BigQuery's pseudo-partitions and NULL ids; sorted by day."""
    out = []
    for partition_id, modified, total_rows in rows:
        if partition_id is None or str(partition_id) in PSEUDO_PARTITIONS:
            continue
        if not isinstance(modified, dt.datetime):
            raise ValueError(f"partition {partition_id}: last_modified_time {modified!r}")
        if modified.tzinfo is not None:
            modified = modified.astimezone(dt.UTC).replace(tzinfo=None)
        out.append(PartitionState(str(partition_id), modified, int(total_rows or 0)))  # type: ignore[call-overload]
    return sorted(out)


def read_partitions(warehouse: Path) -> list[PartitionState]:
    """raw.order_items' day partitions from a DuckDB warehouse's meta.partitions (none
    when the warehouse does not exist yet)."""
    from thelook.warehouse import PARTITIONS_TABLE, connect

    if not Path(warehouse).exists():
        return []
    con = connect(warehouse, read_only=True)
    try:
        rows = con.execute(
            f"""select partition_id, last_modified_time, total_rows from {PARTITIONS_TABLE}
                where table_schema = ? and table_name = ?""",
            [RAW_SCHEMA, ORDER_ITEMS],
        ).fetchall()
    finally:
        con.close()
    return day_partitions(rows)


def data_as_of(partitions: Iterable[PartitionState]) -> dt.date | None:
    """The day after the newest complete day partition; None when there is none."""
    complete = [p.day for p in partitions if p.complete]
    return max(complete) + dt.timedelta(days=1) if complete else None


def changed_partitions(
    partitions: Iterable[PartitionState], seen: Mapping[str, str]
) -> list[PartitionState]:
    """The partitions that are new or whose last_modified_time differs from ``seen``
    (partition_id -> last_modified_time, ISO), as a cursor stores them."""
    return [p for p in partitions if seen.get(p.partition_id) != p.last_modified_time.isoformat()]


def cursor_of(partitions: Iterable[PartitionState]) -> str:
    """The cursor after processing ``partitions``: partition_id -> last_modified_time."""
    return json.dumps(
        {p.partition_id: p.last_modified_time.isoformat() for p in partitions}, sort_keys=True
    )


def seen_in(cursor: str | None) -> dict[str, str]:
    loaded = json.loads(cursor) if cursor else {}
    return dict(loaded) if isinstance(loaded, dict) else {}


def run_key(partitions: Iterable[PartitionState]) -> str:
    """One key per set of (partition, last_modified_time): the same state twice is one run,
    a corrected partition is a new one."""
    versions = sorted(p.version for p in partitions)
    digest = hashlib.sha256("\n".join(versions).encode()).hexdigest()[:16]
    return f"order_items:{len(versions)}:{digest}"


def processed_state(instance: dg.DagsterInstance) -> dict[str, str]:
    """The partition states the last successful feature build processed."""
    return seen_in(instance.run_storage.get_cursor_values({PROCESSED_KEY}).get(PROCESSED_KEY))


def record_processed(
    instance: dg.DagsterInstance, partitions: Iterable[PartitionState], *, merge: bool = True
) -> None:
    """Note that a feature build processed these partition states (read before it began,
    so a partition changed meanwhile counts as new for the next run). ``merge`` keeps what
    earlier builds processed of other days; without it (a full rebuild) these are all."""
    state = processed_state(instance) if merge else {}
    state.update(seen_in(cursor_of(partitions)))
    instance.run_storage.set_cursor_values({PROCESSED_KEY: json.dumps(state, sort_keys=True)})


def add_partitions(
    instance: dg.DagsterInstance, definition: dg.DynamicPartitionsDefinition, keys: Iterable[str]
) -> None:
    """Register the keys a run is for (those not registered yet, in order)."""
    assert definition.name is not None
    known = set(instance.get_dynamic_partitions(definition.name))
    new = [k for k in dict.fromkeys(keys) if k not in known]
    if new:
        instance.add_dynamic_partitions(definition.name, new)


def partition_range_tags(keys: list[str]) -> dict[str, str]:
    """The run tags of a run over ``keys`` (in the order they were registered): one key,
    or the range from the first to the last."""
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
        PARTITION_NAME_TAG,
    )

    if len(keys) == 1:
        return {PARTITION_NAME_TAG: keys[0]}
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


# The most days one feature run records as partitions of their own. Dagster records a
# materialisation per partition and asset of a run (11 dbt models), and its instance
# storage takes tens of milliseconds for each: a 5-year history as 1,800 day partitions
# would spend ten minutes on bookkeeping for a build of seconds. Beyond this many changed
# days (the first build, a reload of history) the run is one build keyed by the newest.
MAX_RANGE_DAYS = 31


@dataclass(frozen=True)
class FeatureRun:
    """What one `features` run is for: its partition keys (one, or a range in the order
    they were registered), the keys it registers first, and the days dbt processes
    (None: a rebuild, in which dbt takes every day it finds changed itself)."""

    keys: list[str]
    register: list[str]
    days: list[str] | None

    @property
    def rebuild(self) -> bool:
        return self.days is None

    def tags(self) -> dict[str, str]:
        return partition_range_tags(self.keys)

    def describe(self, changed: int) -> str:
        if self.days is None:
            return f"{changed} days as one build, keyed by the newest, {self.keys[0]}"
        if len(self.keys) == 1:
            return self.keys[0]
        # The run's range follows the order keys were registered in; people read days.
        days = sorted(self.keys)
        return f"{days[0]}..{days[-1]} ({len(days)} partitions)"


def plan_feature_run(
    changed: Iterable[str], registered: Iterable[str], *, rebuild: bool = False
) -> FeatureRun:
    """The run that processes the ``changed`` day partitions, given the keys of
    order_items_days already ``registered`` (in their order). Days not registered yet are
    added in day order; a run covers one key or a contiguous range of registered keys,
    so changed days that are not contiguous widen it to the keys between them (processed
    again, which an incremental build makes cheap). ``rebuild``, or more than
    MAX_RANGE_DAYS changed days, makes it one build keyed by the newest changed day."""
    wanted = sorted(set(changed))
    if not wanted:
        raise ValueError("no day partition to process")
    known = list(registered)
    if rebuild or len(wanted) > MAX_RANGE_DAYS:
        newest = wanted[-1]
        return FeatureRun([newest], [] if newest in known else [newest], None)
    new = [d for d in wanted if d not in set(known)]
    order = known + new
    positions = sorted(order.index(d) for d in wanted)
    span = order[positions[0] : positions[-1] + 1]
    return FeatureRun(span, new, span)
