"""The SQL online scoring runs is the SQL the batch ran, and the engine runs it faithfully.

The first tests need no shop: a hand-made manifest shows what `from_manifest` refuses
(anything but the as-of literal varying, incremental SQL, relations it does not hold).
The others compare with the shop's batch: its compiled files, and the engine's rows
computed in batches against the same customers computed one by one.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from serving.compiled import (
    AS_OF_PARAMETER,
    SENTINEL_AS_OF,
    FeatureCompileError,
    from_manifest,
)
from serving.features import FeatureEngine, History
from tests.serving.conftest import Shop

DB = '"warehouse"'


def _source(name: str, schema: str = "raw") -> dict[str, Any]:
    return {
        "name": name,
        "identifier": name,
        "schema": schema,
        "relation_name": f'{DB}."{schema}"."{name}"',
    }


def _model(name: str, schema: str, sql: str, **extra: Any) -> dict[str, Any]:
    return {
        "resource_type": "model",
        "name": name,
        "database": "warehouse",
        "schema": schema,
        "relation_name": f'{DB}."{schema}"."{name}"',
        "compiled_code": sql,
        **extra,
    }


def _manifest(final_sql: str, users_sql: str | None = None) -> dict[str, Any]:
    as_of = f"cast('{SENTINEL_AS_OF}' as timestamp)"
    return {
        "metadata": {"dbt_version": "1.11.0"},
        "sources": {
            "source.nextbuy.thelook.users": _source("users"),
            "source.nextbuy.thelook.products": _source("products"),
            "source.nextbuy.thelook.events": _source("events"),
        },
        "nodes": {
            "model.nextbuy.stg_users": _model(
                "stg_users",
                "staging",
                users_sql or f'select id as customer_id from {DB}."raw"."users"',
            ),
            "model.nextbuy.stg_products": _model(
                "stg_products", "staging", f'select id from {DB}."raw"."products"'
            ),
            "model.nextbuy.customer_features": _model(
                "customer_features",
                "marts",
                final_sql.replace("AS_OF", as_of),
                contract={"enforced": True},
                columns={
                    "customer_id": {"data_type": "bigint"},
                    "as_of": {"data_type": "timestamp"},
                },
            ),
        },
    }


FINAL = (
    '-- depends_on: "warehouse"."intermediate"."int_customer_changes"\n'
    'select customer_id, AS_OF as as_of from "warehouse"."staging"."stg_users" '
    'cross join "warehouse"."staging"."stg_products" where 1 < epoch(AS_OF)'
)


def test_the_as_of_literal_becomes_the_one_parameter_under_the_contract() -> None:
    compiled = from_manifest(_manifest(FINAL), dbt_vars={"sequence_length": 3}, key="k")
    assert [m.name for m in compiled.models] == ["stg_users", "stg_products"]
    # Reading only the catalogue, stg_products is computed once per engine.
    assert [m.materialized for m in compiled.models] == ["view", "table"]
    assert compiled.final_sql.count(AS_OF_PARAMETER) == 2
    assert SENTINEL_AS_OF not in compiled.final_sql
    assert 'cast("customer_id" as bigint) as "customer_id"' in compiled.final_sql
    assert compiled.sources == (("raw", "products"), ("raw", "users"))
    assert compiled.column_names == ["customer_id", "as_of"]


@pytest.mark.parametrize(
    ("final", "users_sql", "message"),
    [
        # The date must be rendered by as_of_timestamp, as a literal: nothing to replace.
        (FINAL.replace("AS_OF", "current_date"), None, "does not render the as-of date"),
        # ...and nowhere else in the final SQL (a bare sentinel would not be replaced).
        (FINAL + f" and '{SENTINEL_AS_OF}x' is not null", None, "cannot be substituted"),
        # Only customer_features may read the date.
        (
            FINAL,
            f'select id as customer_id, \'{SENTINEL_AS_OF}\' as d from {DB}."raw"."users"',
            "only customer_features",
        ),
        # An incremental build's SQL is not the definition.
        (
            FINAL,
            f'select id as customer_id from {DB}."raw"."users", {DB}."intermediate"."_incremental_watermarks"',
            "incremental",
        ),
        # A relation the engine does not hold.
        (FINAL, f'select id as customer_id from {DB}."raw"."events"', "does not hold"),
    ],
)
def test_what_cannot_be_run_as_the_batch_runs_it_is_refused(
    final: str, users_sql: str | None, message: str
) -> None:
    with pytest.raises(FeatureCompileError, match=message):
        from_manifest(_manifest(final, users_sql), dbt_vars={}, key="k")


def test_the_served_sql_is_byte_for_byte_the_sql_the_batch_ran(shop: Shop, compiled: Any) -> None:
    """The pipeline's first (full) build wrote its compiled SQL under the home's dbt
    target: every model the server runs is that text, and customer_features is that text
    with the batch's date literal where the server binds $as_of."""
    batch = shop.home / "dbt" / "target" / "compiled" / "nextbuy" / "models"
    for model in compiled.models:
        (path,) = batch.rglob(f"{model.name}.sql")
        assert path.read_text().strip() == model.sql.strip(), model.name
    (final,) = batch.rglob("customer_features.sql")
    text = final.read_text()
    dates = set(re.findall(r"cast\('(\d{4}-\d\d-\d\d)' as timestamp\)", text))
    assert dates == {shop.as_of.isoformat()}
    assert text.replace(f"'{shop.as_of}'", AS_OF_PARAMETER).strip() in compiled.final_sql
    assert {m.name for m in compiled.models} >= {
        "stg_thelook__users",
        "stg_thelook__orders",
        "stg_thelook__order_items",
        "stg_thelook__products",
        "int_orders",
        "int_purchase_items",
        "int_customer_history",
    }
    # int_customer_changes drives incremental builds only; a full build does not read it.
    assert "int_customer_changes" not in {m.name for m in compiled.models}


def _engine(shop: Shop, compiled: Any) -> FeatureEngine:
    from serving.snapshot import WarehouseSnapshot

    snapshot = WarehouseSnapshot.load(shop.home / "warehouse.duckdb")
    try:
        return FeatureEngine(compiled, snapshot.products())
    finally:
        snapshot.close()


def _history(shop: Shop, customer_id: int) -> History:
    body = shop.history_request(customer_id)
    return History(
        customer=_typed(body["customer"]),
        orders=[_typed(o) for o in body["orders"]],
        items=[_typed(i) for i in body["items"]],
    )


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: dt.datetime.fromisoformat(v) if k.endswith("_at") and isinstance(v, str) else v
        for k, v in row.items()
    }


def _squashed(history: History) -> History:
    """The same history with order and item ids renumbered 1, 2, ... in their order: the
    ids every such history shares."""
    orders = {o: n for n, o in enumerate(sorted({i["order_id"] for i in history.items}), 1)}
    items = {i: n for n, i in enumerate(sorted(i["id"] for i in history.items), 1)}
    return History(
        customer=history.customer,
        orders=[
            {**o, "order_id": orders[o["order_id"]]}
            for o in history.orders
            if o["order_id"] in orders
        ],
        items=[
            {**i, "order_id": orders[i["order_id"]], "id": items[i["id"]]} for i in history.items
        ],
    )


def test_a_batch_gives_each_history_the_rows_it_gets_alone(shop: Shop, compiled: Any) -> None:
    """Histories of one batch get surrogate ids: the same customer twice, and customers
    whose order and item ids collide, come out as each does alone, and as the batch's
    customer_features has them."""
    engine = _engine(shop, compiled)
    ids = [int(i) for i in shop.features["customer_id"].iloc[::97]]
    histories = [_history(shop, i) for i in ids]
    squashed = [_squashed(h) for h in histories[:3]]
    assert squashed[0].items[0]["id"] == squashed[1].items[0]["id"] == 1
    batch = [*histories, histories[0], *squashed]
    together = engine.compute(batch, shop.as_of)
    alone = [engine.compute([h], shop.as_of)[0] for h in batch]
    assert together == alone
    assert together[len(histories)] == together[0]
    assert together[len(histories) + 1 :] == together[:3]
    for customer_id, row in zip(ids, together, strict=False):
        assert row == shop.feature_row(customer_id)
    engine.close()


def test_no_purchase_before_as_of_gives_no_row(shop: Shop, compiled: Any) -> None:
    engine = _engine(shop, compiled)
    customer_id = int(shop.features["customer_id"].iloc[0])
    history = _history(shop, customer_id)
    # An order's time is its orders row's when it has one, its earliest item's otherwise.
    first = min(row["created_at"] for row in [*history.items, *history.orders])
    assert engine.compute([history], first.date()) == [None]
    cancelled = History(
        customer=history.customer,
        orders=history.orders,
        items=[{**i, "status": "Cancelled"} for i in history.items],
    )
    assert engine.compute([cancelled], shop.as_of) == [None]
    engine.close()


def test_compiles_are_cached_by_project_and_vars(shop: Shop, compiled: Any, tmp_path: Path) -> None:
    """A restart with nothing changed reuses the compile; other vars are another key."""
    from orchestration.dbt import DBT_PROJECT_DIR
    from serving.compiled import compile_key

    assert compile_key(DBT_PROJECT_DIR, compiled.dbt_vars) == compiled.key
    other = {**compiled.dbt_vars, "sequence_length": 3}
    assert compile_key(DBT_PROJECT_DIR, other) != compiled.key
    cached = shop.home / "serving" / "compiled" / f"{compiled.key}.json"
    assert cached.exists()
