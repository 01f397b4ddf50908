"""The row counts and column types a DuckDB build's Dagster events carry (orchestration/dbt.py
duckdb_metadata): read with one connection after dbt has exited, as dagster-dbt's fetchers
would attach them. The whole path, through a real dbt build, is
test_pipeline.py::test_dbt_assets_show_row_counts_column_types_and_the_audience_cut."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from orchestration.dbt import duckdb_metadata


def node(name: str, schema: str, materialized: str, resource_type: str = "model") -> dict[str, Any]:
    return {
        "unique_id": f"{resource_type}.nextbuy.{name}",
        "resource_type": resource_type,
        "schema": schema,
        "alias": name,
        "config": {"materialized": materialized},
    }


MANIFEST = {
    "nodes": {
        n["unique_id"]: n
        for n in (
            node("orders", "marts", "incremental"),
            node("orders_view", "staging", "view"),
            node("not_null_orders_id", "tests", "test", resource_type="test"),
        )
    }
}


def output(name: str) -> dg.Output[None]:
    return dg.Output(None, output_name=name, metadata={"unique_id": f"model.nextbuy.{name}"})


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema marts; create schema staging")
    con.execute(
        "create table marts.orders (id bigint, ordered_at timestamp, total decimal(18, 3), "
        "note varchar)"
    )
    con.execute("insert into marts.orders select range, now(), 1.5, 'x' from range(1000)")
    # An incremental model deletes before it inserts: the count is the rows left, not an
    # estimate from storage.
    con.execute("delete from marts.orders where id < 10")
    con.execute("create view staging.orders_view as select id, note from marts.orders")
    con.close()
    return path


def test_tables_get_their_exact_row_count_and_every_model_its_columns(warehouse: Path) -> None:
    check = dg.AssetCheckResult(
        passed=True,
        asset_key=dg.AssetKey(["marts", "orders"]),
        check_name="not_null_orders_id",
        metadata={"unique_id": "test.nextbuy.not_null_orders_id"},
    )
    events = [output("orders"), check, output("orders_view")]
    out = duckdb_metadata(events, MANIFEST, warehouse)

    assert out[1] is check  # checks are left as they are
    table = {k: v.value for k, v in out[0].metadata.items()}
    assert table["dagster/row_count"] == 990
    assert table["dagster/storage_kind"] == "duckdb"
    columns = [(c.name, c.type) for c in table["dagster/column_schema"].columns]
    assert columns == [
        ("id", "BIGINT"),
        ("ordered_at", "TIMESTAMP"),
        ("total", "DECIMAL(18,3)"),
        ("note", "VARCHAR"),
    ]
    view = {k: v.value for k, v in out[2].metadata.items()}
    assert "dagster/row_count" not in view  # a view's SQL is not run again to count it
    assert [c.name for c in view["dagster/column_schema"].columns] == ["id", "note"]
    assert view["unique_id"] == "model.nextbuy.orders_view"


def test_unreadable_metadata_leaves_the_events_as_they_are(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = [output("orders")]
    missing = tmp_path / "gone.duckdb"
    with caplog.at_level(logging.WARNING):
        out = duckdb_metadata(events, MANIFEST, missing)
    assert out == events
    assert "could not read the row counts and column types" in caplog.text
    assert str(missing) in caplog.text
