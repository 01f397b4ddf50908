"""The partitions table on BigQuery: raw order_items' day partitions as the dataset's
INFORMATION_SCHEMA.PARTITIONS view describes them.

The local counterpart is partitions.read_partitions (the loader's meta.partitions, which
is modelled on this view); both answer with the same PartitionState list, so the daily
loop's sensor reads either the same way. The view is queried once per call with the
table name as a query parameter; dataset and project are part of the view's name, so
they cannot be parameters and are checked against BigQuery's naming rules instead.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from orchestration.partitions import ORDER_ITEMS, PartitionState, day_partitions

if TYPE_CHECKING:
    from google.cloud import bigquery

# https://cloud.google.com/resource-manager/docs/creating-managing-projects: 6 to 30
# lowercase letters, digits or hyphens, starting with a letter and not ending with a
# hyphen; older projects may carry a domain prefix (`example.com:my-project`).
_PROJECT_ID = re.compile(r"(?:[a-z0-9][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
# https://cloud.google.com/bigquery/docs/datasets#dataset-naming: letters, digits and
# underscores, at most 1,024 characters.
_DATASET_ID = re.compile(r"[A-Za-z0-9_]{1,1024}")

# The view's columns the sensor needs, in the order day_partitions takes them.
_COLUMNS = ("partition_id", "last_modified_time", "total_rows")


class BigQueryPartitionsError(RuntimeError):
    """BigQuery could not answer for a table's partitions (the cause is chained)."""


def check_project_id(project: object, setting: str = "project") -> str:
    """``project`` if it is a valid Google Cloud project ID, else ValueError naming the
    setting it came from."""
    if not isinstance(project, str) or not _PROJECT_ID.fullmatch(project):
        raise ValueError(
            f"{setting} {project!r} is not a BigQuery project ID: 6 to 30 lowercase letters, "
            "digits or hyphens, starting with a letter and not ending with a hyphen"
        )
    return project


def check_dataset_id(dataset: object, setting: str = "dataset") -> str:
    """``dataset`` if it is a valid BigQuery dataset ID, else ValueError naming the
    setting it came from."""
    if not isinstance(dataset, str) or not _DATASET_ID.fullmatch(dataset):
        raise ValueError(
            f"{setting} {dataset!r} is not a BigQuery dataset ID: 1 to 1024 letters, "
            "digits or underscores"
        )
    return dataset


def partitions_query(project: str, dataset: str) -> str:
    """The query of a dataset's INFORMATION_SCHEMA.PARTITIONS for the table @table."""
    view = (
        f"`{check_project_id(project)}`.`{check_dataset_id(dataset)}`.INFORMATION_SCHEMA.PARTITIONS"
    )
    return (
        f"select {', '.join(_COLUMNS)}\nfrom {view}\n"
        "where table_name = @table\norder by partition_id"
    )


def read_bigquery_partitions(
    client: bigquery.Client,
    dataset: str,
    table: str = ORDER_ITEMS,
    *,
    project: str | None = None,
    timeout: float = 60.0,
) -> list[PartitionState]:
    """``table``'s day partitions from ``project.dataset``'s INFORMATION_SCHEMA.PARTITIONS,
    sorted by day, without the ``__NULL__`` and ``__UNPARTITIONED__`` pseudo-partitions.

    ``project`` is the project that holds the dataset (default: the client's, which is
    also the one the query job runs and is billed in). ``timeout`` bounds the retries,
    the wait for the query job (which is cancelled when it runs out) and the job itself
    on BigQuery's side; the client library lets a single jobs.getQueryResults request
    wait at least 120 s for its answer. A table the view does not know
    (not yet created, or not partitioned) has no day partitions: the answer is empty, as
    partitions.read_partitions' is for a warehouse that does not exist yet.

    Raises ValueError for an invalid project or dataset ID and BigQueryPartitionsError,
    naming project.dataset.table, when BigQuery does not answer (dataset not found,
    permission denied, timeout).
    """
    from google.api_core.exceptions import Forbidden, GoogleAPIError, NotFound
    from google.auth.exceptions import GoogleAuthError
    from google.cloud import bigquery
    from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY
    from requests import RequestException

    data_project = check_project_id(
        project if project is not None else client.project,
        "project" if project is not None else "the BigQuery client's project",
    )
    check_dataset_id(dataset)
    if not isinstance(table, str) or not table:
        raise ValueError(f"table {table!r} is not a BigQuery table name")
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, not {timeout!r}")

    where = f"{data_project}.{dataset}.{table}"
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("table", "STRING", table)],
        job_timeout_ms=max(1, int(timeout * 1000)),
    )
    try:
        rows = client.query_and_wait(
            partitions_query(data_project, dataset),
            job_config=config,
            api_timeout=timeout,
            wait_timeout=timeout,
            retry=DEFAULT_RETRY.with_timeout(timeout),
            job_retry=DEFAULT_JOB_RETRY.with_timeout(timeout),
        )
        values = [(row[0], row[1], row[2]) for row in rows]
    except NotFound as exc:
        raise BigQueryPartitionsError(
            f"cannot read the partitions of {where}: not found (is there a dataset "
            f"{dataset!r} in project {data_project!r}, in the location the query ran in, "
            f"{client.location or 'the default'}?): {exc.message}"
        ) from exc
    except Forbidden as exc:
        raise BigQueryPartitionsError(
            f"cannot read the partitions of {where}: permission denied (INFORMATION_SCHEMA"
            ".PARTITIONS needs bigquery.tables.get and bigquery.tables.list on the dataset, "
            f"and bigquery.jobs.create on the client's project): {exc.message}"
        ) from exc
    except TimeoutError as exc:  # the wait for the job (which the client then cancels)
        raise BigQueryPartitionsError(
            f"cannot read the partitions of {where}: BigQuery did not answer within {timeout:g} s"
        ) from exc
    except (GoogleAPIError, GoogleAuthError, RequestException) as exc:
        raise BigQueryPartitionsError(
            f"cannot read the partitions of {where} from BigQuery: {exc}"
        ) from exc
    return day_partitions(values)
