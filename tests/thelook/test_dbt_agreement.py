"""Where thelook and the dbt project decide the same thing, they decide it alike.

Partition ids: thelook writes meta.partitions with `partition_id_sql`, dbt stages
order_items with its `partition_id` macro and reads changed partitions back in its
incremental macros. Target brands: the simulator marks a product as a target by its brand
string exactly as shipped, dbt labels by the brand as staging cleans it. dbt's SQL is
rendered from the project's own files (tests/thelook/dbt_sql.py) and run in DuckDB.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
import sqlglot

from tests.thelook.dbt_sql import DBT_PROJECT, DbtSql
from tests.thelook.shipped import shipped_settings, shipped_target_brands
from thelook import behaviour as bh
from thelook.schema import (
    NULL_PARTITION_ID,
    PARTITION_ID_FORMAT,
    RAW_SCHEMA,
    partition_id,
    partition_id_sql,
)
from thelook.simulator import simulate
from thelook.warehouse import connect

TIMESTAMPS = [
    dt.datetime(2024, 1, 1),
    dt.datetime(2024, 1, 1, 23, 59, 59, 999_999),
    dt.datetime(1999, 2, 28, 23, 30),
    dt.datetime(2026, 12, 31, 12),
    None,
]


def _evaluate(query: str) -> list[object]:
    """`query`'s single column over a table t(created_at) of TIMESTAMPS, in their order."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute("create table t (i integer, created_at timestamp)")
    con.executemany("insert into t values (?, ?)", list(enumerate(TIMESTAMPS)))
    return [row[0] for row in con.execute(f"{query} order by i").fetchall()]


def test_partition_ids_are_computed_alike() -> None:
    expected = [partition_id(ts) for ts in TIMESTAMPS]
    assert expected[0] == "20240101" and expected[-1] == NULL_PARTITION_ID
    assert _evaluate(f"select {partition_id_sql('created_at')} from t") == expected
    query = "select {{ partition_id('created_at') }} from t"
    assert _evaluate(DbtSql("duckdb").render(query)) == expected
    # BigQuery's spelling, translated to DuckDB's by sqlglot, on the same timestamps.
    bigquery = DbtSql("bigquery").render(query)
    assert "format_timestamp" in bigquery
    (translated,) = sqlglot.transpile(bigquery, read="bigquery", write="duckdb")
    assert _evaluate(translated) == expected


def test_incremental_builds_read_partition_ids_alike() -> None:
    text = (DBT_PROJECT / "macros" / "incremental.sql").read_text(encoding="utf-8")
    assert f"'{NULL_PARTITION_ID}'" in text
    assert f"'{PARTITION_ID_FORMAT}'" in text


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    """A tiny simulated shop: raw.products is the shipped catalogue, as the simulator writes it."""
    con = connect(Path(tmp_path_factory.mktemp("agreement")) / "w.duckdb")
    simulate(con, shipped_settings(users=20), shipped_target_brands())
    return con


def test_simulator_and_dbt_mark_the_same_target_products(shop: duckdb.DuckDBPyConnection) -> None:
    targets = shipped_target_brands()
    catalogue = bh.load_catalogue(shop, targets)
    simulated = set(catalogue.product_id[catalogue.is_target].tolist())

    dbt = DbtSql(vars={"target_brands": list(targets)}, relations=lambda _, t: f"{RAW_SCHEMA}.{t}")
    staged = dbt.render_model("staging/stg_thelook__products.sql")
    shop.execute(f"create or replace temp view stg_thelook__products as {staged}")
    labelled = shop.execute(
        dbt.render(
            "select product_id from stg_thelook__products as products "
            "where {{ is_target_brand('products.brand') }}"
        )
    ).fetchall()

    assert simulated == {product_id for (product_id,) in labelled}
    assert len(simulated) > 1000
    # Not a vacuous agreement: staging does change brand strings of the shipped catalogue.
    cleaned = shop.execute(
        f"""select count(*) from stg_thelook__products s join {RAW_SCHEMA}.products r
            on r.id = s.product_id where s.brand is distinct from r.brand"""
    ).fetchall()
    assert cleaned[0][0] > 0
