"""The daily loop's sensor in production: it reads raw order_items' day partitions through
the BigQuery warehouse (INFORMATION_SCHEMA.PARTITIONS, orchestration/bigquery_partitions.py),
the same code the feature build reads them with, here on recorded REST answers
(tests/fixtures/bigquery_partitions/, README there): the emulator never updates a
partition's last_modified_time, which is what tells a corrected day from a seen one.

Offline: sockets refuse to connect and every call runs under a deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from orchestration.bigquery_warehouse import BigQueryWarehouseResource
from orchestration.defs.features.sensors import order_items_partitions
from orchestration.partitions import record_processed
from tests.conftest import FIXTURES
from tests.orchestration.recorded_bigquery import (
    Answer,
    RecordedBigQuery,
    no_network,
    warehouse_talks_to,
    within,
)

RECORDED = FIXTURES / "bigquery_partitions"
PROJECT = "shop-analytics"
DEADLINE = 10.0


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    no_network(monkeypatch)


@pytest.fixture
def answering(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Recorded answers for the production warehouse's partitions query, one file per
    sensor tick, in the order appended to the list this yields."""
    answers: list[str] = []
    sessions: list[RecordedBigQuery] = []

    def session() -> RecordedBigQuery:
        query = Answer("POST", f"/projects/{PROJECT}/queries", answers.pop(0))
        sessions.append(RecordedBigQuery(query, folder=RECORDED))
        return sessions[-1]

    warehouse_talks_to(monkeypatch, session)
    yield answers
    for http in sessions:
        http.close()
        assert not http.answers, f"recorded answers never asked for: {http.answers}"
    assert not answers, f"ticks never made: {answers}"


def _tick(instance: dg.DagsterInstance) -> dg.SensorResult | dg.SkipReason:
    warehouse = BigQueryWarehouseResource(project=PROJECT, raw_dataset="thelook", timeout=5.0)
    context = dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse})
    return within(DEADLINE, lambda: order_items_partitions(context))  # type: ignore[no-any-return]


def test_the_sensor_reads_bigquerys_partitions_and_sees_a_corrected_day(
    answering: list[str], tmp_path: Path
) -> None:
    answering += ["jobs_query.json", "jobs_query.json", "jobs_query_corrected.json"]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = _tick(instance)
        assert isinstance(first, dg.SensorResult)
        # Three days; the view's __NULL__ and __UNPARTITIONED__ rows are no days.
        (request,) = first.run_requests or []
        assert request.tags["nextbuy/partitions"] == "20240601..20240603 (3 partitions)"
        (added,) = first.dynamic_partitions_requests or []
        assert added.partition_keys == ["20240601", "20240602", "20240603"]
        instance.add_dynamic_partitions(added.partitions_def_name, list(added.partition_keys))
        # The newest complete day is 2024-06-02 (the 3rd was still written to on the 3rd).
        assert request.tags["nextbuy/as_of"] == "2024-06-03"

        # Built: the same answer asks for nothing.
        warehouse = BigQueryWarehouseResource(project=PROJECT, raw_dataset="thelook")
        answering.insert(0, "jobs_query.json")
        record_processed(instance, within(DEADLINE, warehouse.partitions))
        assert isinstance(_tick(instance), dg.SkipReason)

        # 2024-06-02 re-delivered (a later last_modified_time) and a new day: one run over
        # the range from one to the other (one dbt invocation); only the new day is a new
        # partition.
        corrected = _tick(instance)
        assert isinstance(corrected, dg.SensorResult)
        (request2,) = corrected.run_requests or []
        assert request2.tags["dagster/asset_partition_range_start"] == "20240602"
        assert request2.tags["dagster/asset_partition_range_end"] == "20240604"
        (added2,) = corrected.dynamic_partitions_requests or []
        assert added2.partition_keys == ["20240604"]
        assert request2.run_key != request.run_key
