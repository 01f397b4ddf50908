"""BigQuery's partitions table read as the daily loop's sensor reads it, offline.

A real google-cloud-bigquery Client talks to a fake HTTP session that answers with
recorded REST bodies (tests/fixtures/bigquery_partitions/, README there). Each test
checks the requests the client made and what the reader made of the answers. Sockets
refuse to connect, and every call runs under a deadline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from orchestration.bigquery_partitions import (
    BigQueryPartitionsError,
    partitions_query,
    read_bigquery_partitions,
)
from orchestration.partitions import PartitionState, data_as_of
from tests.conftest import FIXTURES
from tests.orchestration.recorded_bigquery import Answer, RecordedBigQuery, no_network, within

RECORDED = FIXTURES / "bigquery_partitions"
PROJECT = "shop-analytics"
JOB_ID = "job_Q2n7xVbL0sKd4TfA9rWm1uHc3yEp"
TIMEOUT = 5.0  # what the reader is given
DEADLINE = 10.0  # what the test waits for it, at most

T = dt.datetime
# What the recorded table holds, as the sensor must see it: the day partitions only, in
# UTC without a zone, sorted.
EXPECTED = [
    PartitionState("20240601", T(2024, 6, 2, 1, 12, 7, 318504), 412),
    PartitionState("20240602", T(2024, 6, 3, 1, 12, 9, 2117), 398),
    PartitionState("20240603", T(2024, 6, 3, 14, 5, 11, 482913), 157),
]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    no_network(monkeypatch)


@pytest.fixture
def connect() -> Iterator[Callable[..., tuple[bigquery.Client, RecordedBigQuery]]]:
    sessions: list[RecordedBigQuery] = []

    def make(
        *answers: Answer, polled: tuple[Answer, ...] = (), project: str = PROJECT
    ) -> tuple[bigquery.Client, RecordedBigQuery]:
        http = RecordedBigQuery(*answers, folder=RECORDED, polled=polled)
        client = bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            _http=http,
            location="US",
        )
        sessions.append(http)
        return client, http

    yield make
    for http in sessions:
        # Client.close() expects google-auth's AuthorizedSession; close ours directly.
        http.close()
        assert not http.answers, f"recorded answers never asked for: {http.answers}"


def query(fixture: str, status: int = 200) -> Answer:
    return Answer("POST", f"/projects/{PROJECT}/queries", fixture, status)


def test_one_jobs_query_answers_with_the_day_partitions(connect: Any) -> None:
    client, http = connect(query("jobs_query.json"))

    partitions = within(
        DEADLINE, lambda: read_bigquery_partitions(client, "thelook", timeout=TIMEOUT)
    )

    assert partitions == EXPECTED
    assert all(p.last_modified_time.tzinfo is None for p in partitions)
    assert partitions == sorted(partitions)
    assert [p.complete for p in partitions] == [True, True, False]
    assert data_as_of(partitions) == dt.date(2024, 6, 3)

    [call] = http.calls
    assert call.body is not None
    # The view of the right dataset, the table as a parameter, standard SQL.
    assert call.body["query"] == partitions_query(PROJECT, "thelook")
    assert "`shop-analytics`.`thelook`.INFORMATION_SCHEMA.PARTITIONS" in call.body["query"]
    assert "table_name = @table" in call.body["query"]
    assert call.body["parameterMode"] == "NAMED"
    assert call.body["queryParameters"] == [
        {
            "name": "table",
            "parameterType": {"type": "STRING"},
            "parameterValue": {"value": "order_items"},
        }
    ]
    assert call.body["useLegacySql"] is False
    assert call.body["location"] == "US"
    # The timestamp format the recorded rows are in.
    assert call.body["formatOptions"] == {"useInt64Timestamp": True}
    # The timeout reaches the HTTP request and both of BigQuery's own limits.
    assert call.timeout == TIMEOUT
    assert call.body["timeoutMs"] <= TIMEOUT * 1000
    assert call.body["jobTimeoutMs"] == str(int(TIMEOUT * 1000))


def test_a_query_outliving_jobs_query_is_polled_for_its_rows(connect: Any) -> None:
    job = f"/projects/{PROJECT}/jobs/{JOB_ID}"
    results = f"/projects/{PROJECT}/queries/{JOB_ID}"
    client, http = connect(
        query("jobs_query_pending.json"),
        Answer("GET", job, "jobs_get.json"),
        Answer("GET", results, "get_query_results_done.json"),
        Answer("GET", results, "get_query_results_rows.json"),
    )

    partitions = within(
        DEADLINE, lambda: read_bigquery_partitions(client, "thelook", timeout=TIMEOUT)
    )

    assert partitions == EXPECTED
    assert not http.answers
    rows = http.calls[-1]
    assert rows.params["formatOptions.useInt64Timestamp"] == "True"
    assert rows.params["location"] == "US"


def test_the_table_is_a_parameter_and_the_data_project_may_differ(connect: Any) -> None:
    """The data project (a public dataset's) names the view; the job runs in the
    client's project; a hostile table name stays a value."""
    client, http = connect(query("jobs_query.json"))
    table = "order_items' or 'a' = 'a"

    within(
        DEADLINE,
        lambda: read_bigquery_partitions(
            client, "thelook_ecommerce", table, project="bigquery-public-data", timeout=TIMEOUT
        ),
    )

    [call] = http.calls
    assert call.path == f"/projects/{PROJECT}/queries"
    assert "`bigquery-public-data`.`thelook_ecommerce`.INFORMATION_SCHEMA" in call.body["query"]
    assert table not in call.body["query"]
    assert call.body["queryParameters"][0]["parameterValue"] == {"value": table}


@pytest.mark.parametrize(
    ("dataset", "project", "setting"),
    [
        ("thelook-ecommerce", None, "dataset"),
        ("thelook.order_items", None, "dataset"),
        ("thelook`; drop table x; --", None, "dataset"),
        ("", None, "dataset"),
        ("thelook", "Shop-Analytics", "project"),
        ("thelook", "shop", "project"),
        ("thelook", "shop-analytics-", "project"),
        ("thelook", "1shop-analytics", "project"),
        ("thelook", "shop-analytics`.`x", "project"),
    ],
)
def test_invalid_identifiers_are_refused_before_any_request(
    connect: Any, dataset: str, project: str | None, setting: str
) -> None:
    client, http = connect()

    with pytest.raises(ValueError, match=rf"^{setting} "):
        within(
            DEADLINE,
            lambda: read_bigquery_partitions(client, dataset, project=project, timeout=TIMEOUT),
        )
    assert http.calls == []


def test_an_invalid_client_project_is_named_as_such(connect: Any) -> None:
    client, http = connect(project="Shop_Analytics")

    with pytest.raises(ValueError, match="the BigQuery client's project 'Shop_Analytics'"):
        within(DEADLINE, lambda: read_bigquery_partitions(client, "thelook", timeout=TIMEOUT))
    assert http.calls == []


def test_domain_scoped_projects_are_valid() -> None:
    assert "`example.com:shop-analytics`.`thelook`" in partitions_query(
        "example.com:shop-analytics", "thelook"
    )


def test_a_missing_dataset_is_a_clear_error(connect: Any) -> None:
    client, http = connect(query("error_not_found.json", status=404))

    with pytest.raises(BigQueryPartitionsError) as raised:
        within(DEADLINE, lambda: read_bigquery_partitions(client, "thelook", timeout=TIMEOUT))

    message = str(raised.value)
    assert "shop-analytics.thelook.order_items" in message
    assert (
        "dataset 'thelook' in project 'shop-analytics', in the location the query ran in, US"
        in message
    )
    assert "Not found: Dataset shop-analytics:thelook was not found in location US" in message
    assert type(raised.value.__cause__).__name__ == "NotFound"
    assert len(http.calls) == 1  # not retried


def test_permission_denied_is_a_clear_error(connect: Any) -> None:
    client, http = connect(query("error_access_denied.json", status=403))

    with pytest.raises(BigQueryPartitionsError) as raised:
        within(DEADLINE, lambda: read_bigquery_partitions(client, "thelook", timeout=TIMEOUT))

    message = str(raised.value)
    assert "shop-analytics.thelook.order_items" in message
    assert "permission denied" in message
    assert "bigquery.jobs.create" in message
    assert len(http.calls) == 1


def test_a_query_that_does_not_finish_in_time_is_cancelled(connect: Any) -> None:
    job = f"/projects/{PROJECT}/jobs/{JOB_ID}"
    client, http = connect(
        query("jobs_query_pending.json"),
        Answer("POST", f"{job}/cancel", "jobs_cancel.json"),
        polled=(
            Answer("GET", job, "jobs_get_running.json"),
            Answer(
                "GET", f"/projects/{PROJECT}/queries/{JOB_ID}", "get_query_results_pending.json"
            ),
        ),
    )

    with pytest.raises(BigQueryPartitionsError, match=r"did not answer within 0\.5 s") as raised:
        within(DEADLINE, lambda: read_bigquery_partitions(client, "thelook", timeout=0.5))

    assert "shop-analytics.thelook.order_items" in str(raised.value)
    assert http.calls[0].body is not None
    assert http.calls[0].body["jobTimeoutMs"] == "500"
    assert http.calls[-1].path == f"{job}/cancel"
