"""The BigQuery warehouse resource (orchestration/bigquery_warehouse.py) on the emulator.

Reads come back ordered; scores are staged by a load job and published per as-of date:
a new date adds its rows, a republished date replaces exactly its own, a rerun changes
nothing, and a failure between staging and publishing leaves the published scores as
they were. Online predictions are appended once, however often the same rows come. The emulator knows no partition decorators, so publishing here goes through
the resource's multi-statement transaction; the copy job into the partition, what
production uses, is checked on recorded REST answers
(tests/orchestration/test_bigquery_warehouse.py).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pandas as pd
import pytest
from google.api_core.exceptions import GoogleAPIError
from google.cloud import bigquery

from orchestration.bigquery_warehouse import SCORES_COLUMNS, BigQueryWarehouseResource
from tests.bigquery.emulator import Emulator
from tests.orchestration.recorded_bigquery import within as bounded

# Datasets of their own: the dbt build of test_emulator_dbt.py shares the emulator.
MARTS = "warehouse_marts"
SCORES_DATASET = "warehouse_scores"
TABLE = "ml.customer_scores"
DAY_1, DAY_2 = dt.date(2024, 6, 1), dt.date(2024, 6, 2)
# Every call to the emulator is bounded twice: by the resource (its job timeouts) and
# by the test, which fails rather than hangs.
CALL_TIMEOUT = 30.0
DEADLINE = 60.0

R = TypeVar("R")


def within(fn: Callable[[], R], seconds: float = DEADLINE) -> R:
    """``fn()``, or a failure if the emulator has not answered after ``seconds``."""
    return bounded(seconds, fn)


@pytest.fixture(scope="module")
def emulator_env(bigquery_emulator: Emulator) -> Iterator[Emulator]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in bigquery_emulator.env.items():
            env.setenv(name, value)
        yield bigquery_emulator


@pytest.fixture(scope="module")
def warehouse(emulator_env: Emulator) -> BigQueryWarehouseResource:
    return BigQueryWarehouseResource(
        project=emulator_env.project,
        scores_dataset=SCORES_DATASET,
        # The emulator serves query results by REST pages only, and has no decorators.
        storage_read_api=False,
        replace_with_transaction=True,
        timeout=CALL_TIMEOUT,
    )


@pytest.fixture(scope="module")
def client(emulator_env: Emulator) -> Iterator[bigquery.Client]:
    client = bigquery.Client(project=emulator_env.project)
    yield client
    client.close()  # type: ignore[no-untyped-call]


def load_rows(
    client: bigquery.Client,
    table: str,
    schema: list[bigquery.SchemaField],
    rows: list[dict[str, Any]],
) -> None:
    """``rows`` into ``table`` (replacing it) by a load job, as the test of the dbt build
    loads raw."""
    body = "\n".join(json.dumps(row) for row in rows).encode()
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        schema=schema,
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
    )
    within(
        lambda: client.load_table_from_file(
            io.BytesIO(body), table, job_config=config, timeout=CALL_TIMEOUT
        ).result(timeout=CALL_TIMEOUT)
    )


def scores(as_of: dt.date, customers: range, offset: float = 0.0) -> pd.DataFrame:
    ids = list(customers)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "score": [round((i * 0.37 + offset) % 1, 6) for i in ids],
            "decile": [1 + i % 10 for i in ids],
            "model_name": "nextbuy",
            "model_version": "3",
            "as_of": as_of,
            "scored_at": pd.Timestamp("2024-06-03 04:05:06.789012"),
        }
    )


def publish(warehouse: BigQueryWarehouseResource, frame: pd.DataFrame, as_of: dt.date) -> int:
    staged = within(lambda: warehouse.stage_scores(frame, TABLE))
    return within(lambda: warehouse.publish_scores(staged, as_of, TABLE))


def published(client: bigquery.Client, warehouse: BigQueryWarehouseResource) -> pd.DataFrame:
    table = warehouse.table_id(TABLE)
    rows = within(
        lambda: client.query(
            f"select customer_id, score, decile, model_version, as_of from `{table}` "
            "order by as_of, customer_id",
            timeout=CALL_TIMEOUT,
        ).result(timeout=CALL_TIMEOUT)
    )
    return pd.DataFrame([dict(row.items()) for row in rows])


def expected(*frames: pd.DataFrame) -> pd.DataFrame:
    columns = ["customer_id", "score", "decile", "model_version", "as_of"]
    return pd.concat(frames, ignore_index=True)[columns].sort_values(
        ["as_of", "customer_id"], ignore_index=True
    )


def test_read_table_returns_the_rows_ordered(
    warehouse: BigQueryWarehouseResource, client: bigquery.Client
) -> None:
    within(lambda: client.create_dataset(MARTS, exists_ok=True, timeout=CALL_TIMEOUT))
    schema = [
        bigquery.SchemaField("customer_id", "INT64"),
        bigquery.SchemaField("as_of", "DATE"),
        bigquery.SchemaField("brand_sequence", "STRING"),
        bigquery.SchemaField("age", "INT64"),
    ]
    # Written out of order, one with a null.
    ids = [7, 3, 11, 1, 5]
    rows = [
        {"customer_id": i, "as_of": "2024-06-01", "brand_sequence": f"b{i};x", "age": i + 20}
        for i in ids
    ]
    rows[2]["age"] = None
    load_rows(client, f"{warehouse.project}.{MARTS}.customer_features", schema, rows)

    frame = within(
        lambda: warehouse.read_table(f"{MARTS}.customer_features", order_by="customer_id")
    )
    assert frame["customer_id"].tolist() == sorted(ids)
    assert frame["brand_sequence"].tolist() == [f"b{i};x" for i in sorted(ids)]
    assert frame["age"].isna().tolist() == [i == 11 for i in sorted(ids)]
    # Dates as the DuckDB warehouse gives them, so features_as_of reads either.
    assert frame["as_of"].dtype == "datetime64[us]"
    assert set(frame["as_of"].dt.date) == {DAY_1}

    newest_first = within(
        lambda: warehouse.read_table(
            f"{MARTS}.customer_features", order_by="customer_id desc", where="age > 22"
        )
    )
    assert newest_first["customer_id"].tolist() == [7, 5, 3]
    assert within(lambda: warehouse.has_table(f"{MARTS}.customer_features"))
    assert not within(lambda: warehouse.has_table(f"{MARTS}.no_such_table"))
    with pytest.raises(LookupError, match="build the dbt models first"):
        within(lambda: warehouse.read_table(f"{MARTS}.no_such_table", order_by="1"))


def test_publishing_replaces_exactly_one_date(
    warehouse: BigQueryWarehouseResource, client: bigquery.Client
) -> None:
    first = scores(DAY_1, range(1, 6))
    second = scores(DAY_2, range(3, 10))

    assert publish(warehouse, first, DAY_1) == 5
    table = within(lambda: client.get_table(warehouse.table_id(TABLE), timeout=CALL_TIMEOUT))
    # In the scores dataset, partitioned and clustered, and the staged table is gone.
    assert table.dataset_id == SCORES_DATASET
    assert table.time_partitioning.field == "as_of"
    assert table.time_partitioning.type_ == "DAY"
    assert table.clustering_fields == ["customer_id"]
    assert not within(lambda: warehouse.has_table(f"{TABLE}__staged"))
    pd.testing.assert_frame_equal(published(client, warehouse), expected(first))

    assert publish(warehouse, second, DAY_2) == 7
    pd.testing.assert_frame_equal(published(client, warehouse), expected(first, second))

    # Day 1 again, other scores and fewer customers: day 2 is untouched.
    rescored = scores(DAY_1, range(2, 5), offset=0.5)
    rescored["model_version"] = "4"
    assert publish(warehouse, rescored, DAY_1) == 3
    after = published(client, warehouse)
    pd.testing.assert_frame_equal(after, expected(rescored, second))

    # The same scores again: nothing changes.
    assert publish(warehouse, rescored, DAY_1) == 3
    pd.testing.assert_frame_equal(published(client, warehouse), after)

    # Read back through the resource, as a monitoring step would.
    scored_at = within(lambda: warehouse.read_table(TABLE, order_by="as_of, customer_id"))
    assert scored_at["scored_at"].unique().tolist() == [pd.Timestamp("2024-06-03 04:05:06.789012")]


def test_a_failure_between_staging_and_publishing_leaves_the_published_scores(
    warehouse: BigQueryWarehouseResource, client: bigquery.Client
) -> None:
    before = published(client, warehouse)
    assert not before.empty, "runs after test_publishing_replaces_exactly_one_date"
    staged = f"{TABLE}__staged"

    # A run that fails after staging (say, its validation) publishes nothing.
    within(lambda: warehouse.stage_scores(scores(DAY_1, range(100, 104)), TABLE))
    pd.testing.assert_frame_equal(published(client, warehouse), before)

    # Scores of another date staged for day 1 are refused before anything is replaced.
    within(lambda: warehouse.stage_scores(scores(DAY_2, range(100, 104)), TABLE))
    with pytest.raises(ValueError, match="not of 2024-06-01"):
        within(lambda: warehouse.publish_scores(staged, DAY_1, TABLE))
    pd.testing.assert_frame_equal(published(client, warehouse), before)

    # Staged tables that break the replacement inside its transaction, at compile time
    # (a column missing) or at run time, after the DELETE (a customer_id that is no
    # number): the transaction rolls back and day 1 keeps its rows.
    wrong_type = [
        bigquery.SchemaField(name, "STRING" if name == "customer_id" else kind)
        for name, kind in SCORES_COLUMNS
    ]
    row = {
        "customer_id": "no number",
        "score": 0.5,
        "decile": 1,
        "model_name": "nextbuy",
        "model_version": "3",
        "as_of": DAY_1.isoformat(),
        "scored_at": "2024-06-03 04:05:06",
    }
    missing_column = [
        bigquery.SchemaField("customer_id", "INT64"),
        bigquery.SchemaField("as_of", "DATE"),
    ]
    for schema, rows in (
        (missing_column, [{"customer_id": 100, "as_of": DAY_1.isoformat()}]),
        (wrong_type, [row]),
    ):
        within(lambda: client.delete_table(warehouse.table_id(staged), timeout=CALL_TIMEOUT))
        load_rows(client, warehouse.table_id(staged), schema, rows)
        with pytest.raises(GoogleAPIError):
            within(lambda: warehouse.publish_scores(staged, DAY_1, TABLE))
        pd.testing.assert_frame_equal(published(client, warehouse), before)

    # Scores without the contract's columns are not even staged.
    with pytest.raises(ValueError, match="must have the columns"):
        within(
            lambda: warehouse.stage_scores(scores(DAY_1, range(3)).drop(columns="decile"), TABLE)
        )
    pd.testing.assert_frame_equal(published(client, warehouse), before)


def test_online_predictions_are_appended_once(
    warehouse: BigQueryWarehouseResource, client: bigquery.Client
) -> None:
    """The serving log's rows, appended as ml/online_predictions appends them: the table
    is created empty, new rows are added, a rerun and a re-read overlap add nothing."""
    from orchestration.defs.monitoring.online import COLUMNS, ONLINE_PREDICTIONS

    def requests(*minutes: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "customer_id": list(minutes),
                "as_of": DAY_1,
                "features_hash": "hash",
                "score": [m / 100 for m in minutes],
                "model_name": "nextbuy",
                "model_version": "3",
                "path": "features",
                "requested_at": [pd.Timestamp(2024, 6, 1, 9, m) for m in minutes],
            }
        )

    def append(frame: pd.DataFrame) -> int:
        return within(
            lambda: warehouse.append_absent(frame, ONLINE_PREDICTIONS, COLUMNS, "requested_at")
        )

    assert within(lambda: warehouse.newest(ONLINE_PREDICTIONS, "requested_at")) is None
    assert append(requests().head(0)) == 0
    assert within(lambda: warehouse.has_table(ONLINE_PREDICTIONS))
    assert append(requests(1, 2)) == 2
    assert append(requests(1, 2)) == 0
    # The asset re-reads an hour before the newest: what is held is not added again.
    assert append(requests(1, 2, 0, 5)) == 2
    newest = within(lambda: warehouse.newest(ONLINE_PREDICTIONS, "requested_at"))
    assert newest == dt.datetime(2024, 6, 1, 9, 5)
    rows = within(
        lambda: list(
            client.query(
                f"select customer_id from `{warehouse.table_id(ONLINE_PREDICTIONS)}` "
                "order by requested_at",
                timeout=CALL_TIMEOUT,
            ).result(timeout=CALL_TIMEOUT)
        )
    )
    assert [row["customer_id"] for row in rows] == [0, 1, 2, 5]
