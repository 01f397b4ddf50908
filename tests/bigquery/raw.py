"""Raw thelook tables of a DuckDB warehouse copied into the emulator's `raw` dataset, as
the public dataset types them, for the tests of tests/bigquery.

The tables are created first, order_items partitioned by day of created_at as Google's
is, then filled by load jobs of newline-delimited JSON: the emulator ignores a load job's
partitioning but keeps a table's own, and derives INFORMATION_SCHEMA.PARTITIONS' day
partitions from it (their last_modified_time is the table's: see the recorded answers of
tests/orchestration/test_bigquery_sensor.py for changed days).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from google.cloud import bigquery

from orchestration.partitions import data_as_of, read_partitions
from thelook.schema import RAW_SCHEMA, TABLES
from thelook.warehouse import connect

CALL_TIMEOUT = 60.0
RETRY = bigquery.DEFAULT_RETRY.with_timeout(CALL_TIMEOUT)


def copy_raw(client: bigquery.Client, warehouse: Path) -> str:
    """Every required raw table of ``warehouse`` into ``client``'s project (replacing
    what it held); returns the as-of date of the newest complete day."""
    con = connect(warehouse, read_only=True)
    try:
        client.create_dataset(RAW_SCHEMA, exists_ok=True, retry=RETRY, timeout=CALL_TIMEOUT)
        for spec in TABLES.values():
            if spec.optional:
                continue
            table_id = f"{client.project}.{RAW_SCHEMA}.{spec.name}"
            schema = [bigquery.SchemaField(c.name, c.bq_type) for c in spec.columns]
            table = bigquery.Table(table_id, schema=schema)
            if spec.partition_column:
                table.time_partitioning = bigquery.TimePartitioning(field=spec.partition_column)
            client.delete_table(table_id, not_found_ok=True, retry=RETRY, timeout=CALL_TIMEOUT)
            client.create_table(table, retry=RETRY, timeout=CALL_TIMEOUT)
            relation = con.sql(f"select * from {spec.qualified_name}")
            rows = [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
            body = "\n".join(json.dumps(row, default=str) for row in rows).encode()
            config = bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                schema=schema,
                # Into the table as created: a truncating load would replace its partitioning.
                write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            )
            client.load_table_from_file(
                io.BytesIO(body), table_id, job_config=config, timeout=CALL_TIMEOUT
            ).result(timeout=CALL_TIMEOUT)
    finally:
        con.close()
    as_of = data_as_of(read_partitions(warehouse))
    assert as_of is not None, f"{warehouse} has no complete day"
    return as_of.isoformat()
