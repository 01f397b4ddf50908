"""The raw thelook_ecommerce schema, exactly as BigQuery's public dataset declares it.

One declaration serves the loader (which columns are required, how to type them), the
simulator (what to produce) and the warehouse (DDL, primary keys, partitioning). BigQuery
types map onto DuckDB as follows; timestamps are stored as naive UTC instants, which is
what BigQuery's TIMESTAMP is, and GEOGRAPHY as its WKT text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

DUCKDB_TYPES = {
    "INT64": "BIGINT",
    "FLOAT64": "DOUBLE",
    "STRING": "VARCHAR",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP",
    "GEOGRAPHY": "VARCHAR",
}

RAW_SCHEMA = "raw"
META_SCHEMA = "meta"
PARTITIONS_TABLE = f"{META_SCHEMA}.partitions"

# BigQuery's partition_id of a day-partitioned table: the day as YYYYMMDD, and this name
# for the rows whose partitioning column is NULL. dbt computes the same in its
# `partition_id` macro (dbt_project/macros/portability.sql); tests/thelook/test_dbt_agreement.py
# holds the two together.
PARTITION_ID_FORMAT = "%Y%m%d"
NULL_PARTITION_ID = "__NULL__"


def partition_id(day: dt.date | None) -> str:
    """The partition_id of the rows of `day` (a date or a timestamp)."""
    return NULL_PARTITION_ID if day is None else day.strftime(PARTITION_ID_FORMAT)


def partition_id_sql(column: str) -> str:
    """DuckDB SQL for the partition_id of a day-partitioned TIMESTAMP column."""
    return f"coalesce(strftime({column}, '{PARTITION_ID_FORMAT}'), '{NULL_PARTITION_ID}')"


@dataclass(frozen=True)
class Column:
    name: str
    bq_type: str
    required: bool = False

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.bq_type]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: str
    # Day-partitioned on this TIMESTAMP column, as BigQuery partitions order_items.
    partition_column: str | None = None
    # The pipeline can run without it (BigQuery's dataset has it; exports often do not).
    optional: bool = False

    @property
    def qualified_name(self) -> str:
        return f"{RAW_SCHEMA}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def ddl(self) -> str:
        cols = ",\n  ".join(f"{c.name} {c.duckdb_type}" for c in self.columns)
        return f"create table if not exists {self.qualified_name} (\n  {cols}\n)"


def _cols(*spec: tuple[str, str, bool]) -> tuple[Column, ...]:
    return tuple(Column(name, bq_type, required) for name, bq_type, required in spec)


# `required` marks what the pipeline reads; everything else may be absent from an export
# and is then loaded as NULL.
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "distribution_centers",
            _cols(
                ("id", "INT64", True),
                ("name", "STRING", True),
                ("latitude", "FLOAT64", False),
                ("longitude", "FLOAT64", False),
                ("distribution_center_geom", "GEOGRAPHY", False),
            ),
            primary_key="id",
        ),
        Table(
            "products",
            _cols(
                ("id", "INT64", True),
                ("cost", "FLOAT64", False),
                ("category", "STRING", True),
                ("name", "STRING", False),
                ("brand", "STRING", True),
                ("retail_price", "FLOAT64", True),
                ("department", "STRING", True),
                ("sku", "STRING", False),
                ("distribution_center_id", "INT64", False),
            ),
            primary_key="id",
        ),
        Table(
            "users",
            _cols(
                ("id", "INT64", True),
                ("first_name", "STRING", False),
                ("last_name", "STRING", False),
                ("email", "STRING", False),
                ("age", "INT64", True),
                ("gender", "STRING", True),
                ("state", "STRING", False),
                ("street_address", "STRING", False),
                ("postal_code", "STRING", False),
                ("city", "STRING", True),
                ("country", "STRING", True),
                ("latitude", "FLOAT64", False),
                ("longitude", "FLOAT64", False),
                ("traffic_source", "STRING", True),
                ("created_at", "TIMESTAMP", True),
                ("user_geom", "GEOGRAPHY", False),
            ),
            primary_key="id",
        ),
        Table(
            "orders",
            _cols(
                ("order_id", "INT64", True),
                ("user_id", "INT64", True),
                ("status", "STRING", True),
                ("gender", "STRING", False),
                ("created_at", "TIMESTAMP", True),
                ("returned_at", "TIMESTAMP", False),
                ("shipped_at", "TIMESTAMP", False),
                ("delivered_at", "TIMESTAMP", False),
                ("num_of_item", "INT64", False),
            ),
            primary_key="order_id",
        ),
        Table(
            "order_items",
            _cols(
                ("id", "INT64", True),
                ("order_id", "INT64", True),
                ("user_id", "INT64", True),
                ("product_id", "INT64", True),
                ("inventory_item_id", "INT64", False),
                ("status", "STRING", True),
                ("created_at", "TIMESTAMP", True),
                ("shipped_at", "TIMESTAMP", False),
                ("delivered_at", "TIMESTAMP", False),
                ("returned_at", "TIMESTAMP", False),
                ("sale_price", "FLOAT64", True),
            ),
            primary_key="id",
            partition_column="created_at",
        ),
        Table(
            "inventory_items",
            _cols(
                ("id", "INT64", True),
                ("product_id", "INT64", True),
                ("created_at", "TIMESTAMP", False),
                ("sold_at", "TIMESTAMP", False),
                ("cost", "FLOAT64", False),
                ("product_category", "STRING", False),
                ("product_name", "STRING", False),
                ("product_brand", "STRING", False),
                ("product_retail_price", "FLOAT64", False),
                ("product_department", "STRING", False),
                ("product_sku", "STRING", False),
                ("product_distribution_center_id", "INT64", False),
            ),
            primary_key="id",
            optional=True,
        ),
        Table(
            "events",
            _cols(
                ("id", "INT64", True),
                ("user_id", "INT64", False),
                ("sequence_number", "INT64", False),
                ("session_id", "STRING", False),
                ("created_at", "TIMESTAMP", True),
                ("ip_address", "STRING", False),
                ("city", "STRING", False),
                ("state", "STRING", False),
                ("postal_code", "STRING", False),
                ("browser", "STRING", False),
                ("traffic_source", "STRING", False),
                ("uri", "STRING", False),
                ("event_type", "STRING", False),
            ),
            primary_key="id",
            optional=True,
        ),
    )
}
