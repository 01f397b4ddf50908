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

from orchestration.fingerprint import REBUILD, Fingerprint, rebuild_notice
from orchestration.partitions import PartitionState, read_partitions


def removed_partitions(warehouse: Path, processed: Mapping[str, str]) -> list[str]:
    """The day partitions a build processed (``processed``: partition_id -> ISO
    last_modified_time, as the instance keeps them) that raw no longer holds."""
    return removed_from(read_partitions(warehouse), processed)


def removed_from(present: Iterable[PartitionState], processed: Mapping[str, str]) -> list[str]:
    """``removed_partitions`` of the partitions raw holds now (``present``)."""
    return sorted(set(processed) - {p.partition_id for p in present})


def replaced_at(warehouse: Path) -> dt.datetime | None:
    """When raw was last replaced whole (`load-thelook --replace`); None if never."""
    from thelook.warehouse import LOAD_HISTORY_TABLE, REPLACED_ALL, connect, first_row

    if not Path(warehouse).exists():
        return None
    con = connect(warehouse, read_only=True)
    try:
        has_action = first_row(
            con,
            "select count(*) from information_schema.columns where table_schema = ? "
            "and table_name = ? and column_name = 'action'",
            LOAD_HISTORY_TABLE.split("."),
        )
        if not has_action or not has_action[0]:
            return None  # a warehouse from before replacements were recorded
        row = first_row(
            con, f"select max(loaded_at) from {LOAD_HISTORY_TABLE} where action = ?", [REPLACED_ALL]
        )
    finally:
        con.close()
    value = row[0] if row else None
    return value if isinstance(value, dt.datetime) else None


def removal_reason(warehouse: Path, processed: Mapping[str, str]) -> str | None:
    """Why the built marts may hold rows raw no longer has; None when they cannot (or
    nothing was built yet).

    >>> removal_reason(Path("/nonexistent.duckdb"), {})
    """
    if not processed:
        return None
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


def removal_notice(warehouse: Path, processed: Mapping[str, str]) -> str | None:
    """The line a feature build says when raw lost rows since the last build, so it
    rebuilds from all partitions; None when an incremental build is right."""
    reason = removal_reason(warehouse, processed)
    return f"{reason}: {REBUILD}" if reason else None


def full_rebuild_notice(
    warehouse: Path, current: Fingerprint, processed: Mapping[str, str]
) -> str | None:
    """Why a feature build must be a full refresh over all partitions: the marts were
    built with other data-defining settings or SQL (``current`` is now's fingerprint), or
    raw lost rows since the last build; None when an incremental build is right. The one
    decision both the CLI's runs and the `feature_models` asset make."""
    return rebuild_notice(warehouse, current) or removal_notice(warehouse, processed)
