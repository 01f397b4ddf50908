"""What raw lost since the last feature build: rows the incremental marts may still hold.

An incremental build recomputes the customers whose items sit in new or changed day
partitions. A partition that disappeared (`nextbuy partitions drop`, or a
`load-thelook --replace` without that day) names no customer to recompute, and neither
does a customer a replacing load left out altogether; their rows would live on in the
marts. So a feature build compares the partitions the last successful build processed
with those raw holds now, and meta.load_history's replacements of the whole of raw with
that build's time; when raw lost something since, the build is a full refresh that says
why (the pattern of orchestration/fingerprint.py's settings check).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from orchestration.fingerprint import REBUILD, Fingerprint, rebuild_notice
from orchestration.partitions import PartitionState
from orchestration.resources import Warehouse, as_warehouse


def removed_partitions(warehouse: Warehouse, processed: Mapping[str, str]) -> list[str]:
    """The day partitions a build processed (``processed``: partition_id -> ISO
    last_modified_time, as the instance keeps them) that raw no longer holds."""
    return removed_from(warehouse.partitions(), processed)


def removed_from(present: Iterable[PartitionState], processed: Mapping[str, str]) -> list[str]:
    """``removed_partitions`` of the partitions raw holds now (``present``)."""
    return sorted(set(processed) - {p.partition_id for p in present})


def replaced_at(warehouse: Warehouse) -> dt.datetime | None:
    """When raw was last replaced whole (`load-thelook --replace`); None if never, or when
    no load history is kept (BigQuery's raw is loaded by the shop's own exports)."""
    from thelook.warehouse import LOAD_HISTORY_TABLE, REPLACED_ALL

    if not warehouse.has_table(LOAD_HISTORY_TABLE):
        return None
    table = warehouse.relation(LOAD_HISTORY_TABLE)
    if "action" not in warehouse.query(f"select * from {table} limit 0").columns:
        return None  # a warehouse from before replacements were recorded
    rows = warehouse.query(
        f"select max(loaded_at) as replaced from {table} where action = ?", [REPLACED_ALL]
    )
    value = rows.iloc[0]["replaced"] if len(rows) else None
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def removal_reason(warehouse: Warehouse | Path, processed: Mapping[str, str]) -> str | None:
    """Why the built marts may hold rows raw no longer has; None when they cannot (or
    nothing was built yet). ``warehouse``: the engine, or the DuckDB file's path.

    >>> removal_reason(Path("/nonexistent.duckdb"), {})
    """
    if not processed:
        return None
    warehouse = as_warehouse(warehouse)
    reasons = []
    removed = removed_partitions(warehouse, processed)
    if removed:
        shown = ", ".join(removed[:5]) + (
            f" and {len(removed) - 5} more" if len(removed) > 5 else ""
        )
        reasons.append(
            f"raw partition{'s' if len(removed) > 1 else ''} {shown} "
            f"{'were' if len(removed) > 1 else 'was'} removed since the last build"
        )
    replaced = replaced_at(warehouse)
    built = max(dt.datetime.fromisoformat(v) for v in processed.values())
    if replaced is not None and replaced > built:
        reasons.append(
            f"raw was replaced whole (load-thelook --replace, {replaced:%Y-%m-%d %H:%M:%S} UTC) "
            "since the last build"
        )
    return "; ".join(reasons) or None


def removal_notice(warehouse: Warehouse | Path, processed: Mapping[str, str]) -> str | None:
    """The line a feature build says when raw lost rows since the last build, so it
    rebuilds from all partitions; None when an incremental build is right."""
    reason = removal_reason(warehouse, processed)
    return f"{reason}: {REBUILD}" if reason else None


def full_rebuild_notice(
    warehouse: Warehouse | Path, current: Fingerprint, processed: Mapping[str, str]
) -> str | None:
    """Why a feature build must be a full refresh over all partitions: the marts were
    built with other data-defining settings or SQL (``current`` is now's fingerprint), or
    raw lost rows since the last build; None when an incremental build is right. The one
    decision both the CLI's runs and the `feature_models` asset make."""
    return rebuild_notice(warehouse, current) or removal_notice(warehouse, processed)
