"""The BigQuery warehouse resource offline: the engine chosen from the environment, its
settings, and the copy job that publishes one as-of date's partition, on recorded REST
answers (tests/fixtures/bigquery_scores/, README there).

The emulator (tests/bigquery/test_emulator_warehouse.py) knows no partition decorators, so
the production publishing path is proven here: which requests the client sends, in which
order, and what happens when BigQuery refuses. Sockets refuse to connect, and every call
runs under a deadline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from google.api_core.exceptions import BadRequest

from orchestration.bigquery_jobs import parameter as query_parameter
from orchestration.bigquery_warehouse import BigQueryWarehouseResource
from orchestration.environment import Environment, EnvironmentSettingError
from orchestration.resources import Warehouse, WarehouseResource, build_resources
from tests.conftest import FIXTURES
from tests.orchestration.recorded_bigquery import (
    Answer,
    RecordedBigQuery,
    no_network,
    warehouse_talks_to,
    within,
)

RECORDED = FIXTURES / "bigquery_scores"
PROJECT = "shop-analytics"
COUNT_JOB = "job_Vb3nR8sLq0Xe2KmT6wYc9HdA1uZf"
COPY_JOB = "job_Hq7Ld2Wx5Nc8Rb0Ty3Mv6Kp1Sg9J"
AS_OF = dt.date(2024, 6, 1)
TABLE = "ml.customer_scores"
STAGED = "ml.customer_scores__staged"
TIMEOUT = 5.0
DEADLINE = 10.0
PRODUCTION = {
    "NEXTBUY_ENV": "production",
    "NEXTBUY_BQ_PROJECT": PROJECT,
    "NEXTBUY_BQ_DATASET": "nextbuy",
    "NEXTBUY_BQ_LOCATION": "EU",
}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    no_network(monkeypatch)


def test_production_chooses_bigquery_with_dbts_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NEXTBUY_BQ_SCORES_DATASET", raising=False)

    warehouse = build_resources(Environment("production", tmp_path))["warehouse"]

    assert isinstance(warehouse, BigQueryWarehouseResource)
    assert isinstance(warehouse, Warehouse)
    assert (warehouse.project, warehouse.dataset, warehouse.location) == (
        PROJECT,
        "nextbuy",
        "EU",
    )
    assert warehouse.scores_dataset == "ml"
    assert warehouse.storage_read_api
    assert not warehouse.replace_with_transaction
    assert warehouse.table_id("marts.customer_features") == f"{PROJECT}.marts.customer_features"
    assert warehouse.table_id(TABLE) == f"{PROJECT}.ml.customer_scores"


def test_local_chooses_the_duckdb_file(tmp_path: Path) -> None:
    warehouse = build_resources(Environment("local", tmp_path))["warehouse"]

    assert isinstance(warehouse, WarehouseResource)
    assert isinstance(warehouse, Warehouse)
    assert warehouse.path == str(tmp_path / "warehouse.duckdb")


def test_the_scores_dataset_is_its_own_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {**PRODUCTION, "NEXTBUY_BQ_SCORES_DATASET": "scoring", "NEXTBUY_BQ_DATASET": "dbt"}
    warehouse = BigQueryWarehouseResource.from_environment(environ)

    assert warehouse.table_id(TABLE) == f"{PROJECT}.scoring.customer_scores"
    assert warehouse.table_id(STAGED) == f"{PROJECT}.scoring.customer_scores__staged"
    assert warehouse.table_id("marts.customer_features") == f"{PROJECT}.marts.customer_features"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"NEXTBUY_BQ_SCORES_DATASET": "raw"}, "the raw dataset"),
        ({"NEXTBUY_BQ_SCORES_DATASET": "ml.scores"}, "NEXTBUY_BQ_SCORES_DATASET"),
        ({"NEXTBUY_BQ_PROJECT": ""}, "NEXTBUY_BQ_PROJECT"),
        ({"NEXTBUY_BQ_STORAGE_READ_API": "maybe"}, "NEXTBUY_BQ_STORAGE_READ_API"),
        ({"NEXTBUY_BQ_PUBLISH": "merge"}, "NEXTBUY_BQ_PUBLISH"),
    ],
)
def test_settings_bigquery_or_the_raw_data_would_suffer_from_are_refused(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(EnvironmentSettingError, match=message):
        BigQueryWarehouseResource.from_environment({**PRODUCTION, **environ})


def test_the_rest_path_can_be_chosen_for_reads() -> None:
    environ = {**PRODUCTION, "NEXTBUY_BQ_STORAGE_READ_API": "false"}
    assert not BigQueryWarehouseResource.from_environment(environ).storage_read_api


def test_publishing_is_a_copy_job_unless_a_transaction_is_asked_for() -> None:
    assert not BigQueryWarehouseResource.from_environment(PRODUCTION).replace_with_transaction
    environ = {**PRODUCTION, "NEXTBUY_BQ_PUBLISH": "transaction"}
    assert BigQueryWarehouseResource.from_environment(environ).replace_with_transaction


def test_steps_name_tables_and_validate_them_where_bigquery_keeps_them() -> None:
    environ = {
        **PRODUCTION,
        "NEXTBUY_BQ_SCORES_DATASET": "scoring",
        "NEXTBUY_BQ_KEYFILE": "/k.json",
    }
    warehouse = BigQueryWarehouseResource.from_environment(environ)

    assert warehouse.relation(TABLE) == f"`{PROJECT}.scoring.customer_scores`"
    assert warehouse.relation("marts.customer_features") == f"`{PROJECT}.marts.customer_features`"
    url = sa.engine.make_url(warehouse.sqlalchemy_url())
    assert (url.drivername, url.host, url.database) == ("bigquery", PROJECT, "nextbuy")
    assert url.query == {"location": warehouse.location, "credentials_path": "/k.json"}


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (True, "BOOL"),
        (3, "INT64"),
        (np.int64(3), "INT64"),
        (0.25, "FLOAT64"),
        ("online", "STRING"),
        (None, "STRING"),
        (dt.date(2024, 6, 1), "DATE"),
        (dt.datetime(2024, 6, 1, 4, 5), "TIMESTAMP"),
        (pd.Timestamp("2024-06-01 04:05"), "TIMESTAMP"),
    ],
)
def test_query_parameters_take_the_bigquery_type_of_their_value(value: Any, kind: str) -> None:
    parameter = query_parameter(value)
    assert parameter.name is None and parameter.type_ == kind
    if isinstance(value, dt.datetime):
        # Naive instants are UTC, as everywhere in the warehouse.
        assert parameter.value.tzinfo is not None and parameter.value.utcoffset() == dt.timedelta(0)


def test_a_value_without_a_bigquery_type_is_refused() -> None:
    with pytest.raises(TypeError, match="no BigQuery query parameter for list"):
        query_parameter([1, 2])


@pytest.fixture
def recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., tuple[BigQueryWarehouseResource, RecordedBigQuery]]]:
    """A production resource whose client talks to the recorded answers given."""
    sessions: list[RecordedBigQuery] = []

    def make(*answers: Answer) -> tuple[BigQueryWarehouseResource, RecordedBigQuery]:
        http = RecordedBigQuery(*answers, folder=RECORDED)
        sessions.append(http)
        warehouse_talks_to(monkeypatch, lambda: http)
        return BigQueryWarehouseResource(project=PROJECT, timeout=TIMEOUT), http

    yield make
    for http in sessions:
        http.close()
        assert not http.answers, f"recorded answers never asked for: {http.answers}"


def jobs(fixture: str) -> Answer:
    return Answer("POST", f"/projects/{PROJECT}/jobs", fixture)


def job(job_id: str, fixture: str) -> Answer:
    return Answer("GET", f"/projects/{PROJECT}/jobs/{job_id}", fixture)


def counted(rows: str = "get_query_results_count_rows.json") -> tuple[Answer, ...]:
    """The staged rows counted by a query job: inserted, polled, its rows read."""
    results = f"/projects/{PROJECT}/queries/{COUNT_JOB}"
    return (
        jobs("jobs_insert_count.json"),
        job(COUNT_JOB, "jobs_get_count.json"),
        Answer("GET", results, "get_query_results_count_done.json"),
        Answer("GET", results, rows),
    )


TABLES = f"/projects/{PROJECT}/datasets/ml/tables"
CREATED = Answer("POST", TABLES, "tables_insert.json")
EXISTS = (
    Answer("POST", TABLES, "error_already_exists.json", status=409),
    Answer("GET", f"{TABLES}/customer_scores", "tables_get.json"),
)
STAGED_DROPPED = Answer("DELETE", f"{TABLES}/customer_scores__staged", "", status=204)


def test_publishing_copies_the_staged_partition_over_the_table_partition(recorded: Any) -> None:
    warehouse, http = recorded(
        *counted(),
        CREATED,
        jobs("jobs_insert_copy.json"),
        job(COPY_JOB, "jobs_get_copy_done.json"),
        STAGED_DROPPED,
    )

    rows = within(DEADLINE, lambda: warehouse.publish_scores(STAGED, AS_OF, TABLE))

    assert rows == 412
    count, _, _, _, create, copy, _, drop = http.calls
    # Every staged row is of the date, or nothing is published.
    assert count.body is not None
    query = count.body["configuration"]["query"]["query"]
    assert f"`{PROJECT}.ml.customer_scores__staged`" in query
    assert "as_of != DATE '2024-06-01'" in query
    assert count.body["configuration"]["jobTimeoutMs"] == str(int(TIMEOUT * 1000))
    # The table: partitioned by day of as_of, clustered by customer, the scores' columns.
    assert create.body is not None
    assert create.body["timePartitioning"] == {"type": "DAY", "field": "as_of"}
    assert create.body["clustering"] == {"fields": ["customer_id"]}
    assert [f["name"] for f in create.body["schema"]["fields"]] == [
        "customer_id",
        "score",
        "decile",
        "model_name",
        "model_version",
        "as_of",
        "scored_at",
    ]
    # One copy job, partition to partition, replacing only that partition.
    assert copy.body is not None
    assert copy.body["configuration"]["copy"] == {
        "sourceTables": [
            {"projectId": PROJECT, "datasetId": "ml", "tableId": "customer_scores__staged$20240601"}
        ],
        "destinationTable": {
            "projectId": PROJECT,
            "datasetId": "ml",
            "tableId": "customer_scores$20240601",
        },
        "writeDisposition": "WRITE_TRUNCATE",
    }
    assert copy.body["jobReference"]["location"] == "US"
    assert copy.timeout == TIMEOUT
    assert drop.method == "DELETE"


def test_republishing_reuses_the_existing_table(recorded: Any) -> None:
    warehouse, http = recorded(
        *counted(),
        *EXISTS,
        jobs("jobs_insert_copy.json"),
        job(COPY_JOB, "jobs_get_copy_done.json"),
        STAGED_DROPPED,
    )

    assert within(DEADLINE, lambda: warehouse.publish_scores(STAGED, AS_OF, TABLE)) == 412
    assert [c.method for c in http.calls].count("POST") == 3  # count, create, copy


def test_a_refused_copy_fails_the_run_and_keeps_the_staged_scores(recorded: Any) -> None:
    """BigQuery's job fails as a whole: the partition keeps its old rows, and the staged
    table stays for a look (it is not dropped)."""
    warehouse, http = recorded(
        *counted(),
        *EXISTS,
        jobs("jobs_insert_copy.json"),
        job(COPY_JOB, "jobs_get_copy_failed.json"),
    )

    with pytest.raises(BadRequest, match="Provided Schema does not match"):
        within(DEADLINE, lambda: warehouse.publish_scores(STAGED, AS_OF, TABLE))
    assert all(call.method != "DELETE" for call in http.calls)


def test_staged_scores_of_other_dates_are_refused_before_any_write(recorded: Any) -> None:
    warehouse, http = recorded(*counted("get_query_results_count_rows_other_dates.json"))

    with pytest.raises(ValueError, match=r"37 of the 412 staged scores .* are not of 2024-06-01"):
        within(DEADLINE, lambda: warehouse.publish_scores(STAGED, AS_OF, TABLE))
    assert len(http.calls) == 4


def test_a_table_not_partitioned_by_as_of_is_refused_before_the_copy(recorded: Any) -> None:
    warehouse, http = recorded(
        *counted(),
        Answer("POST", TABLES, "error_already_exists.json", status=409),
        Answer("GET", f"{TABLES}/customer_scores", "tables_get_unpartitioned.json"),
    )

    with pytest.raises(ValueError, match="is not partitioned by as_of"):
        within(DEADLINE, lambda: warehouse.publish_scores(STAGED, AS_OF, TABLE))
    assert http.calls[-1].method == "GET"
