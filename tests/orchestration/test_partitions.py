"""The partitions table read as the daily loop reads it, and the sensor on it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from orchestration.partitions import (
    PartitionState,
    changed_partitions,
    cursor_of,
    data_as_of,
    day_partitions,
    read_partitions,
    record_processed,
    run_key,
    seen_in,
)

T = dt.datetime


def test_pseudo_partitions_and_null_ids_are_not_days() -> None:
    rows = [
        ("20240102", T(2024, 1, 3, 1), 5),
        ("__NULL__", T(2024, 1, 3, 1), 2),
        ("__UNPARTITIONED__", T(2024, 1, 3, 1), 9),
        (None, T(2024, 1, 3, 1), 1),
        ("20240101", T(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))), 4),
    ]
    parts = day_partitions(rows)
    assert [p.partition_id for p in parts] == ["20240101", "20240102"]
    # Zoned times are compared in UTC: 00:00+02:00 is 22:00 of the day before.
    assert parts[0].last_modified_time == T(2024, 1, 1, 22)


def test_the_as_of_date_is_the_day_after_the_newest_complete_day() -> None:
    parts = day_partitions(
        [
            ("20240101", T(2024, 1, 2, 0, 30), 1),
            ("20240102", T(2024, 1, 3, 0, 30), 1),
            # Future-dated items written on the 3rd: not a complete day of the 5th.
            ("20240105", T(2024, 1, 3, 0, 30), 1),
            # Today's partial load, written before the day ended.
            ("20240103", T(2024, 1, 3, 23, 0), 1),
        ]
    )
    assert [p.complete for p in parts] == [True, True, False, False]
    assert data_as_of(parts) == dt.date(2024, 1, 3)
    assert data_as_of([]) is None


def test_new_and_changed_partitions_against_what_was_processed() -> None:
    old = day_partitions([("20240101", T(2024, 1, 2), 1), ("20240102", T(2024, 1, 3), 1)])
    seen = seen_in(cursor_of(old))
    assert changed_partitions(old, seen) == []
    corrected = PartitionState("20240101", T(2024, 2, 1), 3)
    new = PartitionState("20240103", T(2024, 1, 4), 1)
    changed = changed_partitions([corrected, old[1], new], seen)
    assert changed == [corrected, new]
    # The same state gives the same run key; a correction gives another.
    assert run_key([new, corrected]) == run_key([corrected, new])
    assert run_key([PartitionState("20240101", T(2024, 2, 2), 3), new]) != run_key(changed)


def _warehouse(path: Path, partitions: list[tuple[str, dt.datetime]]) -> Path:
    from thelook.warehouse import PARTITIONS_TABLE, connect

    con = connect(path)
    con.execute(f"delete from {PARTITIONS_TABLE}")
    for partition_id, modified in partitions:
        con.execute(
            f"insert into {PARTITIONS_TABLE} values ('raw', 'order_items', ?, 10, ?)",
            [partition_id, modified],
        )
    # Another table's partitions are not the sensor's business.
    con.execute(f"insert into {PARTITIONS_TABLE} values ('raw', 'users', null, 5, ?)", [T.now()])
    con.close()
    return path


def _tick(instance: dg.DagsterInstance, path: Path) -> dg.SensorResult | dg.SkipReason:
    from orchestration.defs.features.sensors import order_items_partitions
    from orchestration.resources import WarehouseResource

    context = dg.build_sensor_context(
        instance=instance, resources={"warehouse": WarehouseResource(path=str(path))}
    )
    return order_items_partitions(context)  # type: ignore[no-any-return]


def test_sensor_requests_one_run_for_new_days_and_again_for_a_corrected_day(
    tmp_path: Path,
) -> None:
    path = tmp_path / "warehouse.duckdb"
    days = [("20240101", T(2024, 1, 2, 1)), ("20240102", T(2024, 1, 3, 1))]
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        first = _tick(instance, _warehouse(path, days))
        assert isinstance(first, dg.SensorResult)
        (request,) = first.run_requests or []  # several new days: one run, over a range
        assert request.tags["dagster/asset_partition_range_start"] == "20240101"
        assert request.tags["dagster/asset_partition_range_end"] == "20240102"
        assert request.tags["nextbuy/partitions"] == "20240101..20240102 (2 partitions)"
        (added,) = first.dynamic_partitions_requests or []
        assert added.partition_keys == ["20240101", "20240102"]
        assert added.partitions_def_name == "order_items_days"
        instance.add_dynamic_partitions(added.partitions_def_name, list(added.partition_keys))
        assert request.tags["nextbuy/as_of"] == "2024-01-03"
        assert request.run_config["ops"]["feature_models"]["config"]["as_of"] == "2024-01-03"
        # Until a feature build has processed them, the same state asks for the same run
        # (which the run key makes Dagster skip).
        again = _tick(instance, path)
        assert isinstance(again, dg.SensorResult)
        assert again.run_requests[0].run_key == request.run_key  # type: ignore[index]

        record_processed(instance, read_partitions(path))
        assert isinstance(_tick(instance, path), dg.SkipReason)

        corrected = [days[0], ("20240102", T(2024, 1, 9)), ("20240103", T(2024, 1, 4, 1))]
        later = _tick(instance, _warehouse(path, corrected))
        assert isinstance(later, dg.SensorResult)
        (request2,) = later.run_requests or []
        assert request2.tags["nextbuy/partitions"] == "20240102..20240103 (2 partitions)"
        # Only the day not seen before is a new partition; the corrected one is re-run.
        (added2,) = later.dynamic_partitions_requests or []
        assert added2.partition_keys == ["20240103"]
        assert request2.run_key != request.run_key

    # A restart: a new instance object on the same storage remembers what was processed.
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        record_processed(instance, read_partitions(path))
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        assert isinstance(_tick(instance, path), dg.SkipReason)


def test_sensor_waits_for_a_complete_day(tmp_path: Path) -> None:
    path = _warehouse(tmp_path / "warehouse.duckdb", [("20240105", T(2024, 1, 5, 12))])
    with dg.instance_for_test() as instance:
        skipped = _tick(instance, path)
    assert isinstance(skipped, dg.SkipReason)
    assert "no day is complete yet" in (skipped.skip_message or "")


@pytest.mark.parametrize("missing", [True, False])
def test_no_warehouse_or_no_partitions_is_nothing_to_do(tmp_path: Path, missing: bool) -> None:
    path = tmp_path / "warehouse.duckdb"
    if not missing:
        _warehouse(path, [])
    with dg.instance_for_test() as instance:
        assert isinstance(_tick(instance, path), dg.SkipReason)


def test_a_feature_run_is_one_key_or_a_range_and_history_is_one_build() -> None:
    from orchestration.partitions import MAX_RANGE_DAYS, plan_feature_run

    # The first build: years of days are one run keyed by the newest, dbt takes them all.
    history = [f"2024{m:02d}{d:02d}" for m in range(1, 13) for d in range(1, 29)]
    first = plan_feature_run(history, [])
    assert (first.keys, first.register, first.days) == (["20241228"], ["20241228"], None)
    assert first.tags() == {"dagster/partition": "20241228"}
    # New days after it: registered in day order, one range, dbt processes exactly those.
    later = plan_feature_run(["20241230", "20241229"], first.keys)
    assert later.register == ["20241229", "20241230"]
    assert later.days == ["20241229", "20241230"]
    assert later.tags() == {
        "dagster/asset_partition_range_start": "20241229",
        "dagster/asset_partition_range_end": "20241230",
    }
    registered = [*first.keys, *later.register]
    # A corrected old day is a key of its own; with a newer one the range spans between.
    old = plan_feature_run(["20240305"], registered)
    assert (old.keys, old.register) == (["20240305"], ["20240305"])
    both = plan_feature_run(["20241229", "20240305"], registered)
    assert both.keys == ["20241229", "20241230", "20240305"]
    # Too many days for partitions of their own, or a full refresh: one build.
    many = [f"202501{d:02d}" for d in range(1, MAX_RANGE_DAYS + 2)]
    assert plan_feature_run(many, registered).days is None
    assert plan_feature_run(["20241229"], registered, rebuild=True).keys == ["20241229"]
    with pytest.raises(ValueError, match="no day partition"):
        plan_feature_run([], registered)
