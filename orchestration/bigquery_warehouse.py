"""The warehouse on BigQuery: the production engine behind the Warehouse interface
(orchestration/resources.py), for the Python steps that read marts and write scores.

Kept whole: one resource class, whose methods answer the Warehouse interface one by one
and share its client, settings and timeouts; the statements they send are apart, in
orchestration/bigquery_jobs.py.

Tables are named as the steps name them, ``<dataset>.<table>``: ``marts.customer_features``
is ``<project>.marts.customer_features`` (dbt's generate_schema_name keeps custom schemas
as they are), while ``ml.<table>`` is the scores dataset, a setting of its own that may
never be the raw dataset. Reads are query jobs turned into DataFrames (through the
BigQuery Storage Read API when it is installed and not turned off); writes are load jobs
and, to publish, a copy job (see `BigQueryWarehouseResource.publish_scores`); the online
predictions are appended by a load job and one INSERT (`append_absent`).
The statements and job settings it sends are built in orchestration/bigquery_jobs.py.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from io import BytesIO
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import dagster as dg
import pandas as pd

from orchestration import bigquery_jobs as jobs
from orchestration.bigquery_jobs import CLUSTERING, PARTITION_COLUMN, SCORES_COLUMNS
from orchestration.bigquery_partitions import (
    check_dataset_id,
    check_project_id,
    read_bigquery_partitions,
)
from orchestration.environment import EnvironmentSettingError
from thelook.schema import RAW_SCHEMA

if TYPE_CHECKING:
    from google.cloud import bigquery

    from orchestration.partitions import PartitionState

# The logical dataset of the scores in the steps' table names; BigQuery's is a setting.
SCORES_DATASET = "ml"
_TRUE = ("1", "true", "yes", "on")


def _flag(value: str, setting: str) -> bool:
    if value.strip().lower() in (*_TRUE, "0", "false", "no", "off"):
        return value.strip().lower() in _TRUE
    raise EnvironmentSettingError(f"{setting} must be true or false, not {value!r}")


class BigQueryWarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """BigQuery, for the Python steps that read marts and write scores (production).

    ``project``, ``dataset`` (dbt's dataset: where a table named without a dataset lives)
    and ``location`` are dbt_project/profiles.yml's bigquery target; ``scores_dataset``
    holds ml.customer_scores and its staged table, and is refused when it is
    ``raw_dataset``, the dataset the shop's data arrives in.
    """

    project: str
    dataset: str = "nextbuy"
    scores_dataset: str = SCORES_DATASET
    raw_dataset: str = RAW_SCHEMA
    location: str = "US"
    # A service-account key file; empty: Application Default Credentials.
    keyfile: str = ""
    # Query results through the Storage Read API (when google-cloud-bigquery-storage is
    # installed), else the REST API's pages; the emulator only serves the latter.
    storage_read_api: bool = True
    # Publish by one multi-statement transaction instead of a copy job into the partition
    # (for engines without partition decorators: the emulator of tests/bigquery).
    replace_with_transaction: bool = False
    # Bounds every job and the wait for it, in seconds (dbt's job_execution_timeout_seconds).
    timeout: float = 900.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> BigQueryWarehouseResource:
        """The settings dbt's bigquery target reads (NEXTBUY_BQ_PROJECT, NEXTBUY_BQ_DATASET,
        NEXTBUY_BQ_LOCATION, NEXTBUY_BQ_KEYFILE), plus NEXTBUY_BQ_SCORES_DATASET (default
        ``ml``), NEXTBUY_BQ_STORAGE_READ_API (default true) and NEXTBUY_BQ_PUBLISH (``copy``,
        the default, or ``transaction`` for engines without partition decorators)."""
        publish = environ.get("NEXTBUY_BQ_PUBLISH", "copy").strip().lower()
        if publish not in ("copy", "transaction"):
            raise EnvironmentSettingError(
                f"NEXTBUY_BQ_PUBLISH must be copy or transaction, not {publish!r}"
            )
        resource = cls(
            project=environ.get("NEXTBUY_BQ_PROJECT", ""),
            dataset=environ.get("NEXTBUY_BQ_DATASET", "nextbuy"),
            scores_dataset=environ.get("NEXTBUY_BQ_SCORES_DATASET", SCORES_DATASET),
            location=environ.get("NEXTBUY_BQ_LOCATION", "US"),
            keyfile=environ.get("NEXTBUY_BQ_KEYFILE", ""),
            storage_read_api=_flag(
                environ.get("NEXTBUY_BQ_STORAGE_READ_API", "true"), "NEXTBUY_BQ_STORAGE_READ_API"
            ),
            replace_with_transaction=publish == "transaction",
        )
        resource.check_settings()
        return resource

    def check_settings(self) -> None:
        """Refuse settings BigQuery would refuse later, or that would write where the
        shop's data arrives, naming the setting."""
        try:
            check_project_id(self.project, "NEXTBUY_BQ_PROJECT")
            check_dataset_id(self.dataset, "NEXTBUY_BQ_DATASET")
            check_dataset_id(self.scores_dataset, "NEXTBUY_BQ_SCORES_DATASET")
        except ValueError as e:
            raise EnvironmentSettingError(str(e)) from e
        if self.scores_dataset == self.raw_dataset:
            raise EnvironmentSettingError(
                f"NEXTBUY_BQ_SCORES_DATASET is {self.scores_dataset!r}, the raw dataset: "
                "scores are never written where the shop's data arrives"
            )

    def table_id(self, table: str) -> str:
        """``project.dataset.table`` of a step's table name (``ml.`` is the scores dataset)."""
        dataset, _, name = table.rpartition(".")
        dataset = self.scores_dataset if dataset == SCORES_DATASET else dataset or self.dataset
        return f"{self.project}.{check_dataset_id(dataset)}.{name}"

    @contextmanager
    def client(self) -> Iterator[bigquery.Client]:
        from google.cloud import bigquery

        self.check_settings()
        credentials = None
        if self.keyfile:
            from google.oauth2 import service_account

            credentials = service_account.Credentials.from_service_account_file(self.keyfile)  # type: ignore[no-untyped-call]
        client = bigquery.Client(
            project=self.project, location=self.location, credentials=credentials
        )
        try:
            yield client
        finally:
            client.close()  # type: ignore[no-untyped-call]

    def read_table(self, table: str, order_by: str, where: str = "true") -> pd.DataFrame:
        """The table's rows that meet ``where`` (a BigQuery SQL condition) in the order of
        ``order_by``, which CatBoost's result depends on. The client reads an ordered
        result through one Storage Read API stream, so the order survives the download.
        Columns come as DuckDB's reader gives them: dates and timestamps as naive
        datetime64 (UTC)."""
        from google.api_core.exceptions import NotFound

        table_id = self.table_id(table)
        with self.client() as client:
            try:
                client.get_table(table_id, timeout=self.timeout)
            except NotFound as e:
                raise LookupError(
                    f"warehouse table {table_id} does not exist: build the dbt models first "
                    "(`nextbuy features`, or materialise the features group)"
                ) from e
            rows = client.query(
                f"select * from `{table_id}` where {where} order by {order_by}",
                job_config=self._query_config(),
                timeout=self.timeout,
            ).result(timeout=self.timeout)
            frame = rows.to_dataframe(create_bqstorage_client=self.storage_read_api)
        return jobs.like_duckdb(frame)

    def has_table(self, table: str) -> bool:
        from google.api_core.exceptions import NotFound

        with self.client() as client:
            try:
                client.get_table(self.table_id(table), timeout=self.timeout)
            except NotFound:
                return False
            return True

    def relation(self, table: str) -> str:
        return f"`{self.table_id(table)}`"

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> pd.DataFrame:
        """The rows of a query job (``?`` bound to ``parameters``), in DuckDB's shapes."""
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            job_timeout_ms=int(self.timeout * 1000),
            query_parameters=[jobs.parameter(value) for value in parameters],
        )
        with self.client() as client:
            rows = client.query(sql, job_config=config, timeout=self.timeout).result(
                timeout=self.timeout
            )
            frame = rows.to_dataframe(create_bqstorage_client=self.storage_read_api)
        return jobs.like_duckdb(frame)

    def sqlalchemy_url(self) -> str:
        """sqlalchemy-bigquery's URL of the project (tables are named in full)."""
        query = {"location": self.location}
        if self.keyfile:
            query["credentials_path"] = self.keyfile
        return f"bigquery://{self.project}/{self.dataset}?" + urlencode(query)

    def replace_rows(
        self, rows: pd.DataFrame, table: str, columns: Sequence[tuple[str, str]]
    ) -> None:
        """One load job with WRITE_TRUNCATE: BigQuery swaps the table's content whole."""
        target = self.table_id(table)
        with self.client() as client:
            client.create_dataset(target.split(".")[1], exists_ok=True, timeout=self.timeout)
            client.load_table_from_file(
                BytesIO(jobs.ndjson(rows[[name for name, _ in columns]], columns)),
                target,
                job_config=jobs.load_config(columns, int(self.timeout * 1000)),
                timeout=self.timeout,
            ).result(timeout=self.timeout)

    def partitions(self) -> list[PartitionState]:
        """From raw's INFORMATION_SCHEMA.PARTITIONS (orchestration/bigquery_partitions.py)."""
        with self.client() as client:
            return read_bigquery_partitions(
                client, self.raw_dataset, project=self.project, timeout=self.timeout
            )

    def stage_scores(self, scores: pd.DataFrame, table: str) -> str:
        """Load new scores beside ``table`` (as ``<table>__staged``, replacing what was
        staged before), partitioned and clustered as the table is, where they can be
        validated before anyone reads them; returns the staged table's name.

        A load job of newline-delimited JSON: accepted by BigQuery and by the emulator
        alike (which refuses the content type of the client's DataFrame uploads)."""
        from google.cloud import bigquery

        expected = [name for name, _ in SCORES_COLUMNS]
        if sorted(scores.columns) != sorted(expected):
            raise ValueError(
                f"scores for {table} must have the columns {expected}, not {list(scores.columns)}"
            )
        staged = f"{table}__staged"
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            schema=jobs.schema(),
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            time_partitioning=jobs.partitioning(),
            clustering_fields=CLUSTERING,
            job_timeout_ms=int(self.timeout * 1000),
        )
        with self.client() as client:
            client.create_dataset(self.scores_dataset, exists_ok=True, timeout=self.timeout)
            client.load_table_from_file(
                BytesIO(jobs.ndjson(scores[expected])),
                self.table_id(staged),
                job_config=config,
                timeout=self.timeout,
            ).result(timeout=self.timeout)
        return staged

    def publish_scores(self, staged: str, as_of: dt.date, table: str) -> int:
        """Replace the ``as_of`` partition of ``table`` with the staged scores; returns rows
        written. ``table`` is created on first use, partitioned by day of as_of and
        clustered by customer_id.

        How: a copy job from the staged table's partition to ``table$YYYYMMDD`` with
        WRITE_TRUNCATE. It is BigQuery's own partition overwrite: one job, atomic (readers
        see the old partition until the new one is committed, and a failed job leaves it),
        free (copy jobs scan nothing, where DELETE + INSERT bills the staged bytes), outside
        DML's quotas and its conflicts between concurrent transactions on a table, and
        no other partition can be touched. First the staged rows are counted: every one must
        be of ``as_of``, since the partition copy would silently leave the others behind.

        With ``replace_with_transaction`` the same replacement is one multi-statement
        transaction (DELETE the date, INSERT the staged rows, COMMIT; a failed statement
        rolls it back), for engines that know no partition decorators, such as the emulator.
        """
        from google.cloud import bigquery

        from thelook.pause_points import pause_point

        target, source = self.table_id(table), self.table_id(staged)
        with self.client() as client:
            rows = self._staged_rows(client, source, as_of)
            self._ensure_scores_table(client, target)
            # Staged and checked; the old partition is still the published one.
            pause_point("scores-publishing")
            if self.replace_with_transaction:
                self._query(client, jobs.transaction(source, target, as_of))
            else:
                partition = f"${as_of:%Y%m%d}"
                client.copy_table(
                    source + partition,
                    target + partition,
                    job_config=bigquery.CopyJobConfig(
                        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                        job_timeout_ms=int(self.timeout * 1000),
                    ),
                    timeout=self.timeout,
                ).result(timeout=self.timeout)
            client.delete_table(source, not_found_ok=True, timeout=self.timeout)
        return rows

    def newest(self, table: str, column: str) -> Any:
        """The largest value of ``column``, as DuckDB's reader gives it (a timestamp naive
        UTC); None when the table is empty or absent."""
        from google.api_core.exceptions import NotFound

        table_id = self.table_id(table)
        with self.client() as client:
            try:
                client.get_table(table_id, timeout=self.timeout)
            except NotFound:
                return None
            [row] = self._query(client, f"select max({column}) as newest from `{table_id}`")
        value = row["newest"]
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def append_absent(
        self, rows: pd.DataFrame, table: str, columns: Sequence[tuple[str, str]], since: str
    ) -> int:
        """Load ``rows`` beside ``table`` (``<table>__incoming``, a load job of JSON rows as
        for the scores), then one INSERT of them EXCEPT DISTINCT the rows ``table`` holds
        from their smallest ``since`` on (a literal, so that BigQuery reads only those
        days of ``table``, which is partitioned by day of ``since``); one statement, so
        atomic. ``table`` is created when absent, even without rows."""
        from google.cloud import bigquery

        target, source = self.table_id(table), self.table_id(f"{table}__incoming")
        schema = jobs.schema(columns)
        with self.client() as client:
            client.create_dataset(target.split(".")[1], exists_ok=True, timeout=self.timeout)
            created = bigquery.Table(target, schema=schema)
            created.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=since
            )
            client.create_table(created, exists_ok=True, timeout=self.timeout)
            if rows.empty:
                return 0
            client.load_table_from_file(
                BytesIO(jobs.ndjson(rows[[name for name, _ in columns]], columns)),
                source,
                job_config=jobs.load_config(columns, int(self.timeout * 1000)),
                timeout=self.timeout,
            ).result(timeout=self.timeout)
            after = pd.Timestamp(rows[since].min()).to_pydatetime()
            job = client.query(
                jobs.append_absent_sql(source, target, columns, since, after),
                job_config=self._query_config(),
                timeout=self.timeout,
            )
            job.result(timeout=self.timeout)
            client.delete_table(source, not_found_ok=True, timeout=self.timeout)
        return int(job.num_dml_affected_rows or 0)

    def _query_config(self) -> bigquery.QueryJobConfig:
        from google.cloud import bigquery

        return bigquery.QueryJobConfig(job_timeout_ms=int(self.timeout * 1000))

    def _query(self, client: bigquery.Client, sql: str) -> list[bigquery.Row]:
        """A short query's rows, by a query job (jobs.insert). Not client.query_and_wait:
        the emulator's jobs.query answers a failing query with no rows and no error."""
        job = client.query(sql, job_config=self._query_config(), timeout=self.timeout)
        return list(job.result(timeout=self.timeout))

    def _staged_rows(self, client: bigquery.Client, staged: str, as_of: dt.date) -> int:
        [row] = self._query(
            client,
            "select count(*) as total, "
            f"countif(as_of is null or as_of != {jobs.date(as_of)}) as other from `{staged}`",
        )
        if row["other"]:
            raise ValueError(
                f"{row['other']} of the {row['total']} staged scores in {staged} are not of "
                f"{as_of}: only one as-of date is published at a time"
            )
        return int(row["total"])

    def _ensure_scores_table(self, client: bigquery.Client, target: str) -> None:
        from google.cloud import bigquery

        table = bigquery.Table(target, schema=jobs.schema())
        table.time_partitioning = jobs.partitioning()
        table.clustering_fields = CLUSTERING
        table = client.create_table(table, exists_ok=True, timeout=self.timeout)
        partitioning = table.time_partitioning
        if partitioning is None or partitioning.field != PARTITION_COLUMN:
            raise ValueError(
                f"{target} exists but is not partitioned by {PARTITION_COLUMN}: its partitions "
                "cannot be replaced one at a time (recreate it, or name another scores dataset)"
            )
